package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hwameistor.io/local/internal/vm"
)

func TestRun(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "bg.log")
	for _, tc := range []struct {
		name      string
		req       vm.Request
		wantCode  int
		wantOut   string
		wantErr   string
		wantStdin bool
	}{
		{name: "ping", req: vm.Request{ID: 1, Ping: true}},
		{name: "exit code and streams", req: vm.Request{ID: 2, Argv: []string{"sh", "-c", "echo out $X; echo err >&2; exit 3"}, Env: []string{"X=1"}}, wantCode: 3, wantOut: "out 1\n"},
		{name: "stdin", req: vm.Request{ID: 3, Argv: []string{"cat"}, Stdin: []byte("in")}, wantOut: "in"},
		{name: "missing program", req: vm.Request{ID: 4, Argv: []string{"/no/such"}}, wantCode: -1, wantErr: "no such file"},
		{name: "empty", req: vm.Request{ID: 5}, wantCode: -1, wantErr: "empty command"},
		{name: "timeout kills the session", req: vm.Request{ID: 6, Argv: []string{"sh", "-c", "sleep 30 & sleep 30"}, TimeoutSeconds: 1}, wantCode: -1, wantErr: "timed out after 1s"},
		{name: "background", req: vm.Request{ID: 7, Argv: []string{"sh", "-c", "echo bg"}, Background: true, LogPath: logPath}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp := run(tc.req)
			if resp.ID != tc.req.ID || resp.ExitCode != tc.wantCode || string(resp.Stdout) != tc.wantOut || !strings.Contains(resp.Error, tc.wantErr) {
				t.Errorf("run = %+v (stdout %q, error %q); want code %d, stdout %q, error containing %q", resp, resp.Stdout, resp.Error, tc.wantCode, tc.wantOut, tc.wantErr)
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
			if tc.req.Background && resp.PID == 0 {
				t.Error("a background command has no PID")
			}
		})
	}
	for i := 0; i < 50; i++ {
		if b, _ := os.ReadFile(logPath); string(b) == "bg\n" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Error("the background command's output never reached its log")
}

// TestServe: requests in, one answer per request out, garbage skipped,
// a port that reports end of file while the host is away waited on.
func TestServe(t *testing.T) {
	in := strings.NewReader("not json\n" + `{"id":1,"argv":["echo","a"]}` + "\n" + `{"id":2,"ping":true}` + "\n")
	var out bytes.Buffer
	serve(io.MultiReader(in, eofThenClosed{}), &out)
	got := map[int64]vm.Response{}
	dec := json.NewDecoder(&out)
	for dec.More() {
		var r vm.Response
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		got[r.ID] = r
	}
	if len(got) != 2 || string(got[1].Stdout) != "a\n" {
		t.Errorf("answers %+v", got)
	}
}

// eofThenClosed ends serve's loop with an error that is not io.EOF.
type eofThenClosed struct{}

func (eofThenClosed) Read([]byte) (int, error) { return 0, os.ErrClosed }

func TestPatientReader(t *testing.T) {
	r := &patientReader{r: &flaky{reads: []string{"", "", "x"}}}
	b := make([]byte, 4)
	n, err := r.Read(b)
	if err != nil || string(b[:n]) != "x" {
		t.Errorf("Read = %q, %v; want the data after two ends of file", b[:n], err)
	}
}

type flaky struct{ reads []string }

func (f *flaky) Read(b []byte) (int, error) {
	s := f.reads[0]
	f.reads = f.reads[1:]
	if s == "" {
		return 0, io.EOF
	}
	return copy(b, s), nil
}
