package guest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestLockdownStopAfterResizesDuringSetup: pid 1 catches the signals it is
// passed on a channel of 16 and reads it only once the setup is done; Go
// drops a signal whose channel is full. A terminal being resized while the
// lockdown is set up (a drag of the window sends a SIGWINCH per step, each
// passed on) fills the channel, and a stop that follows is lost: the
// command runs as if bottle had never been stopped.
func TestLockdownStopAfterResizesDuringSetup(t *testing.T) {
	cmd, marker, start := startSlowLockdown(t)
	defer cmd.Process.Kill()
	for range 40 {
		cmd.Process.Signal(syscall.SIGWINCH)
		time.Sleep(3 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Since(start)
	werr := cmd.Wait()
	code, _ := exitCode(cmd.ProcessState, werr)
	_, err := os.Stat(marker)
	if code != 128+int(syscall.SIGTERM) || err == nil {
		t.Errorf("SIGTERM after 40 SIGWINCH during the lockdown's setup (sent at %v): bottle guest exited %d after %v (command ran: %v), want %d and no command",
			sent.Round(time.Millisecond), code, time.Since(start).Round(time.Millisecond), err == nil, 128+int(syscall.SIGTERM))
	}
}

// TestLockdownCtrlCAtStart: bottle guest holds the signals it passes on
// until pid 1 catches them, but on a terminal pid 1's group is the
// foreground one from its start, so a Ctrl-C typed then comes from the
// terminal, held by nobody. Once Go's runtime has its handlers and before
// pid 1 asks for SIGINT, the runtime "dies" of it: pid 1 ignores the
// raised signal and exits 2, which bottle reports as the agent's exit code
// though the agent never ran. (Earlier still, the Ctrl-C is dropped.)
func TestLockdownCtrlCAtStart(t *testing.T) {
	codes := map[int]int{}
	for range 20 {
		ptm, pts, err := pty.Open()
		if err != nil {
			t.Skipf("skipping: no pseudo-terminal: %v", err)
		}
		argv := helperCommand(t, "guest", "--lockdown", Lockdown{DropCaps: true}.String(), "--", "/bin/sh", "-c", "sleep 5")
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = helperEnviron()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pts.Close()
		go func() {
			b := make([]byte, 4096)
			for {
				if _, err := ptm.Read(b); err != nil {
					return
				}
			}
		}()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		// Type Ctrl-C over and over from the moment pid 1 exists.
		children := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/*/children"
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			tasks, _ := filepath.Glob(children)
			found := false
			for _, f := range tasks {
				if b, _ := os.ReadFile(f); strings.TrimSpace(string(b)) != "" {
					found = true
				}
			}
			if found {
				break
			}
		}
	typing:
		for deadline := time.Now().Add(20 * time.Second); ; {
			select {
			case <-done:
				break typing
			default:
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				<-done
				t.Fatal("bottle guest never stopped under Ctrl-C")
			}
			ptm.Write([]byte{3})
			time.Sleep(150 * time.Microsecond)
		}
		ptm.Close()
		code := cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		codes[code]++
	}
	if len(codes) != 1 || codes[128+int(syscall.SIGINT)] == 0 {
		t.Errorf("Ctrl-C on the terminal as the lockdown starts: bottle guest's exit codes (code: times) %v, want only %d",
			codes, 128+int(syscall.SIGINT))
	}
}
