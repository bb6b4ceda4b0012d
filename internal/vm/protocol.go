package vm

// The command channel between the harness and a guest: one JSON object per
// line each way over the guest's virtio serial port "hwvm.cmd". Requests
// carry an ID; the guest answers each in its own goroutine, so a long
// command does not hold up the others.

// PortName is the name of the virtio serial port the guest agent serves.
const PortName = "hwvm.cmd"

// Request asks the guest agent to run a command.
type Request struct {
	ID int64 `json:"id"`
	// Ping only asks for an answer (the harness polls with it until the
	// agent is up).
	Ping bool     `json:"ping,omitempty"`
	Argv []string `json:"argv,omitempty"`
	// Env is added to the agent's environment.
	Env   []string `json:"env,omitempty"`
	Dir   string   `json:"dir,omitempty"`
	Stdin []byte   `json:"stdin,omitempty"`
	// TimeoutSeconds kills the command's process group when it runs longer
	// (0: no limit).
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// Background starts the command in its own session with its output
	// appended to LogPath and answers at once with its PID.
	Background bool   `json:"background,omitempty"`
	LogPath    string `json:"logPath,omitempty"`
}

// Response is the guest agent's answer to one Request.
type Response struct {
	ID       int64  `json:"id"`
	ExitCode int    `json:"exitCode"`
	Stdout   []byte `json:"stdout,omitempty"`
	Stderr   []byte `json:"stderr,omitempty"`
	PID      int    `json:"pid,omitempty"`
	// Error says why the command could not run at all (not found, timed
	// out); a command that ran and failed has only a non-zero ExitCode.
	Error string `json:"error,omitempty"`
}
