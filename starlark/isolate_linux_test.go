package starlark

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestAddressLimit checks what the watchdog cannot see in time: with the
// child's limits, the kernel refuses one allocation of AddressLimit bytes,
// before any of it is touched, and the Go runtime says it is out of
// memory (which bottle reports as the profile needing too much).
func TestAddressLimit(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=allocate")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !outOfMemory(cmd.ProcessState, stderr.String()) {
		t.Fatalf("the allocation ended with %v, %q, stderr:\n%s", err, stdout.String(), firstLine(stderr.String()))
	}
	// The runtime says "runtime: out of memory: cannot allocate ..." before
	// its "fatal error: out of memory" when it knows the size.
	if first := firstLine(stderr.String()); !strings.Contains(first, "out of memory") ||
		!strings.HasPrefix(first, "fatal error: ") && !strings.HasPrefix(first, "runtime: out of memory") {
		t.Errorf("stderr does not hold the runtime's out of memory error:\n%s", firstLine(stderr.String()))
	}
	if peak, ok := PeakMemory(cmd.ProcessState); !ok || peak > 128<<20 {
		t.Errorf("peak memory %d MiB (%v): the allocation was touched", peak>>20, ok)
	}
}
