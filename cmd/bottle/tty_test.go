package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/creack/pty"
)

// TestNoTerminalQueries runs bottle on a terminal and checks that it writes
// no escape sequence: a dependency that probes the terminal at start-up
// (as bubbletea v1's init did, for its background colour) makes every
// command wait for an answer some terminals never send, and the answer can
// end up in the agent's input.
func TestNoTerminalQueries(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary runs as bottle when invoked by that name (see TestMain).
	bottle := filepath.Join(t.TempDir(), "bottle")
	if err := os.Symlink(exe, bottle); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"version"}, {"start", "--dry-run"}} {
		cmd := exec.Command(bottle, args...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+cmd.Dir, "TERM=xterm-256color")
		tty, err := pty.Start(cmd)
		if err != nil {
			t.Skipf("no pseudo-terminal here: %v", err)
		}
		out, _ := io.ReadAll(tty) // ends with EIO once bottle exits
		tty.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("bottle %v: %v\n%s", args, err, out)
		}
		if i := bytes.IndexByte(out, 0x1b); i >= 0 {
			t.Errorf("bottle %v wrote an escape sequence to the terminal: %q", args, out[i:min(len(out), i+24)])
		}
		if !bytes.Contains(out, []byte("bottle")) && !bytes.Contains(out, []byte("profile")) {
			t.Errorf("bottle %v printed %q", args, out)
		}
	}
}
