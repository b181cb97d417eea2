package guest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/internal/netns"
)

// controlScript is the agent of the control tests: it prints the sha256 of
// $BOTTLE_TEST_TOKEN (never the token, and never in an argument), "ready",
// and waits; SIGTERM and SIGINT run traps that print and exit 7 and 8.
const controlScript = `trap 'echo TERM-trapped; exit 7' TERM
trap 'echo INT-trapped; exit 8' INT
printf %s "$BOTTLE_TEST_TOKEN" | sha256sum
echo ready
while :; do sleep 0.05; done`

// controlRun is bottle guest, with --control, running controlScript in a
// network namespace with only lo (the stand-in for a guest with no
// network device), against a ControlServer of the test.
type controlRun struct {
	srv    *ControlServer
	sock   string
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr *bytes.Buffer
	token  string
	waited chan error
}

func startControlRun(t *testing.T) *controlRun {
	t.Helper()
	netns.Require(t)
	b := make([]byte, 24)
	rand.Read(b)
	token := "tok_" + hex.EncodeToString(b)
	sock := filepath.Join(t.TempDir(), "control.sock")
	srv, err := ListenControl(sock, []string{"BOTTLE_TEST_TOKEN=" + token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	argv := helperCommand(t, "guest", "--control", sock, "--", "/bin/sh", "-c", controlScript)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := netns.Command(ctx, argv...)
	cmd.Env = helperEnviron()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &controlRun{srv: srv, sock: sock, cmd: cmd, stdout: bufio.NewReader(out), stderr: &bytes.Buffer{}, token: token, waited: make(chan error, 1)}
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); <-r.waited })
	// The pipe is read to its end before Wait, in wait.
	sum := sha256.Sum256([]byte(token))
	if line := r.line(t); line != hex.EncodeToString(sum[:])+"  -" {
		t.Fatalf("the command's $BOTTLE_TEST_TOKEN hashes to %q, want the token's hash (stderr: %s)", line, r.stderr)
	}
	if line := r.line(t); line != "ready" {
		t.Fatalf("command printed %q, want ready (stderr: %s)", line, r.stderr)
	}
	go func() { r.waited <- cmd.Wait() }()
	return r
}

func (r *controlRun) line(t *testing.T) string {
	t.Helper()
	s, err := r.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("read the command's output: %v (stderr: %s)", err, r.stderr)
	}
	return strings.TrimSuffix(s, "\n")
}

// wait returns bottle guest's exit code and the rest of its output.
func (r *controlRun) wait(t *testing.T) (int, string) {
	t.Helper()
	rest, _ := io.ReadAll(r.stdout)
	select {
	case err := <-r.waited:
		r.waited <- err
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("wait for bottle guest: %v", err)
		}
		return r.cmd.ProcessState.ExitCode(), string(rest)
	case <-time.After(30 * time.Second):
		t.Fatalf("bottle guest did not exit (stderr: %s)", r.stderr)
	}
	return 0, ""
}

// TestControlSignalsAndExitCode sends signals over the control channel:
// each reaches the command (its trap runs), and the command's exit code
// comes back over the channel and as bottle guest's own, 128+N for a
// command killed by signal N.
func TestControlSignalsAndExitCode(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		out  string
		code int
	}{
		{syscall.SIGTERM, "TERM-trapped\n", 7},
		{syscall.SIGINT, "INT-trapped\n", 8},
		{syscall.SIGKILL, "", 128 + 9},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			r := startControlRun(t)
			if err := r.srv.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			code, out := r.wait(t)
			if out != tc.out || code != tc.code {
				t.Errorf("after %v: exit %d, output %q; want %d, %q (stderr: %s)", tc.sig, code, out, tc.code, tc.out, r.stderr)
			}
			if got, ok := r.srv.ExitCode(timeout(t, 5*time.Second)); !ok || got != tc.code {
				t.Errorf("exit code over the control channel: %d, %t; want %d", got, ok, tc.code)
			}
		})
	}
}

// TestControlSecretNotInArguments checks, while the command runs with the
// secret in its environment, that no process's arguments hold it.
func TestControlSecretNotInArguments(t *testing.T) {
	r := startControlRun(t)
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone
		}
		seen++
		if bytes.Contains(b, []byte(r.token)) {
			t.Errorf("%s holds the secret: %q", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	// The guest's own process, and the command's, are among them.
	guestCmdline, err := os.ReadFile("/proc/" + strconv.Itoa(r.cmd.Process.Pid) + "/cmdline")
	if err != nil || !bytes.Contains(guestCmdline, []byte("--control")) || seen < 3 {
		t.Fatalf("did not read bottle guest's arguments (%q, %v; %d processes)", guestCmdline, err, seen)
	}
	r.srv.Signal(syscall.SIGTERM)
	if code, _ := r.wait(t); code != 7 {
		t.Errorf("exit %d, want 7", code)
	}
}

// TestControlHostGone is the dead man's switch: when the host's end of the
// control channel closes, bottle guest stops the command (its TERM trap
// runs) and says why.
func TestControlHostGone(t *testing.T) {
	r := startControlRun(t)
	r.srv.Close()
	code, out := r.wait(t)
	if code != 7 || out != "TERM-trapped\n" {
		t.Errorf("exit %d, output %q; want 7 and the TERM trap", code, out)
	}
	if !strings.Contains(r.stderr.String(), "control channel closed") {
		t.Errorf("stderr does not say why the command was stopped: %s", r.stderr)
	}
}

// TestControlOneConnection: once bottle guest is connected, any other
// connection (the command's own) is closed unanswered: it gets neither
// the secrets nor a way to send an exit code.
func TestControlOneConnection(t *testing.T) {
	r := startControlRun(t)
	c, err := net.Dial("unix", r.sock)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(`{"exit":0}` + "\n"))
	b, err := io.ReadAll(c)
	c.Close()
	// Closed with the test's line unread, the connection may end in a reset.
	if len(b) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("a second connection read %q, %v; want nothing and its end", b, err)
	}
	r.srv.Signal(syscall.SIGTERM)
	if code, _ := r.wait(t); code != 7 {
		t.Errorf("exit %d, want 7", code)
	}
	if got, ok := r.srv.ExitCode(timeout(t, 5*time.Second)); !ok || got != 7 {
		t.Errorf("exit code %d, %t; want 7 from bottle guest, not the second connection's 0", got, ok)
	}
	if n := r.srv.Refused(); n != 1 {
		t.Errorf("Refused() = %d, want 1", n)
	}
}

// TestControlSignalBeforeConnect: a signal sent before bottle guest
// connects is delivered once it has.
func TestControlSignalBeforeConnect(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	srv, err := ListenControl(sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Signal(syscall.SIGTERM)
	c, err := DialControl(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Env) != 0 {
		t.Errorf("Env = %q, want none", c.Env)
	}
	select {
	case sig := <-c.Signals():
		if sig != syscall.SIGTERM {
			t.Errorf("signal %v, want SIGTERM", sig)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the queued signal did not arrive")
	}
}

// TestControlRejectsBadInput: malformed environment entries are refused
// at the host, and a host that sends no environment first fails the dial.
func TestControlRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	if _, err := ListenControl(filepath.Join(dir, "a.sock"), []string{"NOEQUALS"}); err == nil {
		t.Error("ListenControl accepted an entry without =")
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "b.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte(`{"signal":15}` + "\n"))
			c.Close()
		}
	}()
	if _, err := DialControl(context.Background(), filepath.Join(dir, "b.sock")); err == nil || !strings.Contains(err.Error(), "no environment") {
		t.Errorf("DialControl = %v, want an error about the missing environment", err)
	}
}

// BenchmarkGuestStart measures bottle guest running `true` to its end, as
// a process, without a control channel (the baseline) and with one: the
// dial, the environment with one secret, and the exit code sent back.
func BenchmarkGuestStart(b *testing.B) {
	run := func(b *testing.B, args ...string) {
		argv := helperCommand(b, "guest", append(args, "--", "/bin/true")...)
		for b.Loop() {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = helperEnviron()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("bottle guest: %v\n%s", err, out)
			}
		}
	}
	b.Run("baseline", func(b *testing.B) { run(b) })
	b.Run("control", func(b *testing.B) {
		sock := filepath.Join(b.TempDir(), "control.sock")
		for b.Loop() {
			b.StopTimer()
			srv, err := ListenControl(sock, []string{"TOKEN=secret"})
			if err != nil {
				b.Fatal(err)
			}
			argv := helperCommand(b, "guest", "--control", sock, "--", "/bin/true")
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = helperEnviron()
			b.StartTimer()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("bottle guest: %v\n%s", err, out)
			}
			if code, ok := srv.ExitCode(timeout(b, 5*time.Second)); !ok || code != 0 {
				b.Fatalf("exit code %d, %t", code, ok)
			}
			b.StopTimer()
			srv.Close()
			b.StartTimer()
		}
	})
}

// timeout is a context that ends after d or with the test.
func timeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
