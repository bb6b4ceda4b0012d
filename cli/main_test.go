package cli

import (
	"os"
	"sync"
	"testing"

	"hwameistor.io/local/internal/testenv"
)

var (
	envOnce sync.Once
	env     *testenv.Env
	envErr  error
)

// controlPlane starts etcd and kube-apiserver with the CRDs on first use
// and returns them; TestMain stops them. The package's other tests need no
// control plane, so `go test -run TestPlanDrain` runs without one.
func controlPlane(t *testing.T) *testenv.Env {
	t.Helper()
	envOnce.Do(func() { env, envErr = testenv.Start() })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return env
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		_ = env.Stop()
	}
	os.Exit(code)
}
