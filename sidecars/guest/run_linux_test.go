package guest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/internal/netns"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// runCaptured runs Run with stdout and stderr going to temporary files and
// returns what they got.
func runCaptured(t *testing.T, forwards []Forward, argv ...string) (code int, stdout, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	out, err1 := os.Create(filepath.Join(dir, "stdout"))
	errf, err2 := os.Create(filepath.Join(dir, "stderr"))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	defer errf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, err = Run(ctx, forwards, argv, Stdio{Stdout: out, Stderr: errf}, Lockdown{}, nil)
	o, _ := os.ReadFile(out.Name())
	e, _ := os.ReadFile(errf.Name())
	return code, string(o), string(e), err
}

func TestRunExitCode(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"echo out; echo err >&2; exit 255", 255},
		{"kill -TERM $$", 128 + 15},
		{"kill -KILL $$", 128 + 9},
	} {
		code, stdout, stderr, err := runCaptured(t, nil, "/bin/sh", "-c", tc.script)
		if err != nil || code != tc.want {
			t.Errorf("sh -c %q: Run = %d, %v; want %d, nil", tc.script, code, err, tc.want)
		}
		if tc.want == 255 && (stdout != "out\n" || stderr != "err\n") {
			t.Errorf("sh -c %q: stdout %q, stderr %q; want the command's own output", tc.script, stdout, stderr)
		}
	}
}

func TestRunCannotStart(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		argv []string
		want int
	}{
		{[]string{"bottle-no-such-command"}, ExitNotFound},
		{[]string{"/no/such/command"}, ExitNotFound},
		{[]string{notExec}, ExitCannotInvoke},
		{nil, ExitSetupFailed},
	} {
		code, _, _, err := runCaptured(t, nil, tc.argv...)
		if err == nil || code != tc.want {
			t.Errorf("Run(%q) = %d, %v; want %d and an error", tc.argv, code, err, tc.want)
		}
	}
}

// TestRunMissingSocket: a missing sidecar socket stops bottle guest before
// the command starts, and the error names the socket.
func TestRunMissingSocket(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "egress.sock")
	marker := filepath.Join(dir, "started")
	f, err := ParseForward("127.0.0.1:3128=" + missing)
	if err != nil {
		t.Fatal(err)
	}
	code, _, _, err := runCaptured(t, []Forward{f}, "/bin/sh", "-c", "touch "+marker)
	if code != ExitSetupFailed || err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Run = %d, %v; want %d and an error naming %s", code, err, ExitSetupFailed, missing)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran although its sidecar socket is missing")
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// httpUnixServer serves a fixed body over HTTP on a unix socket in a
// temporary directory and returns the socket's path.
func httpUnixServer(t testing.TB, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sidecar.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path
}

// TestRunRelays: the command reaches the sidecar through the forward while
// it runs, and the listener is gone once Run returns.
func TestRunRelays(t *testing.T) {
	sock := httpUnixServer(t, "hello from the sidecar")
	port := freePort(t)
	f, err := ParseForward("127.0.0.1:" + strconv.Itoa(port) + "=" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(helperEnv, "1")
	code, stdout, stderr, err := runCaptured(t, []Forward{f}, helperCommand(t, "probe", "http=http://127.0.0.1:"+strconv.Itoa(port)+"/")...)
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v; stderr:\n%s", code, err, stderr)
	}
	outcomes, err := netns.ParseOutcomes(strings.NewReader(stdout))
	if err != nil {
		t.Fatal(err)
	}
	if o := outcomes[0]; !o.Reached || o.Status != http.StatusOK || o.Body != "hello from the sidecar" {
		t.Errorf("probe through the relay: %+v", o)
	}
	if c, err := net.Dial("tcp", f.Listen.String()); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Run returned", f.Listen)
	}
}

// TestRunForwardsSignals sends signals to a bottle guest process and checks
// its command receives each, and that it exits with the command's code.
func TestRunForwardsSignals(t *testing.T) {
	argv := helperCommand(t, "guest", append([]string{"--"}, helperCommand(t, "signals")...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := bufio.NewScanner(stdout)
	next := func() string {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			if out.Scan() {
				got <- out.Text()
			}
			close(got)
		}()
		select {
		case line := <-got:
			return line
		case <-time.After(20 * time.Second):
			t.Fatal("timed out waiting for the command's output")
			return ""
		}
	}
	if line := next(); line != "ready" {
		t.Fatalf("first line %q, want ready", line)
	}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGWINCH, syscall.SIGQUIT, syscall.SIGINT, syscall.SIGTERM} {
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if got, want := next(), unix.SignalName(sig); got != want {
			t.Fatalf("after sending %s to bottle guest the command reported %q", want, got)
		}
	}
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("bottle guest exited %d (%v), want the command's 3", code, err)
	}
}

// TestRunTerminal runs bottle guest on a pseudo-terminal, as smolvm exec -it
// does: the command must get the terminal as its foreground process group,
// so window-size changes and Ctrl-C reach it from the terminal, once.
func TestRunTerminal(t *testing.T) {
	ptm, pts, err := pty.Open()
	if err != nil {
		t.Skipf("skipping: no pseudo-terminal: %v", err)
	}
	defer ptm.Close()
	argv := helperCommand(t, "guest", append([]string{"--"}, helperCommand(t, "tty")...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	defer cmd.Process.Kill()

	output := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(ptm)
		for sc.Scan() {
			output <- strings.TrimSpace(sc.Text())
		}
		close(output)
	}()
	next := func() string {
		t.Helper()
		select {
		case line, ok := <-output:
			if !ok {
				t.Fatal("terminal closed early")
			}
			return line
		case <-time.After(20 * time.Second):
			t.Fatal("timed out waiting for the command's output")
			return ""
		}
	}
	if line := next(); line != "foreground=true" {
		t.Fatalf("command on the terminal reported %q, want foreground=true", line)
	}
	if err := pty.Setsize(ptm, &pty.Winsize{Cols: 123, Rows: 45}); err != nil {
		t.Fatal(err)
	}
	if line := next(); line != "size=123x45" {
		t.Fatalf("after resizing the terminal the command reported %q", line)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("bottle guest on a terminal: %v", err)
	}
}

// TestRunContextDone: when Run's context ends, the command gets SIGTERM and
// Run still returns its exit code.
func TestRunContextDone(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			if _, err := os.Stat(ready); err == nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	script := `trap 'exit 5' TERM; touch ` + ready + `; sleep 60 & wait`
	start := time.Now()
	code, err := Run(ctx, nil, []string{"/bin/sh", "-c", script}, Stdio{}, Lockdown{}, nil)
	if err != nil || code != 5 {
		t.Errorf("Run after its context ended = %d, %v; want the command's 5 from its TERM trap", code, err)
	}
	if d := time.Since(start); d >= KillDelay {
		t.Errorf("Run took %v: the command did not get SIGTERM", d)
	}
}

// TestRunStopsWhenSidecarsAreGone: once every sidecar socket refuses
// connections for SidecarsGoneAfter (bottle was killed and its sidecars
// stopped), the command gets SIGTERM: the sandbox does not run on
// unwatched.
func TestRunStopsWhenSidecarsAreGone(t *testing.T) {
	defer func(d time.Duration) { SidecarsGoneAfter = d }(SidecarsGoneAfter)
	SidecarsGoneAfter = 400 * time.Millisecond
	dir := t.TempDir()
	sock := filepath.Join(dir, "egress.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ready := filepath.Join(dir, "ready")
	go func() {
		for {
			if _, err := os.Stat(ready); err == nil {
				// The sidecars go: nothing listens on the socket any more.
				time.Sleep(3 * SidecarsGoneAfter)
				ln.Close()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	f, err := ParseForward("127.0.0.1:" + strconv.Itoa(freePort(t)) + "=" + sock)
	if err != nil {
		t.Fatal(err)
	}
	fw := []Forward{f}
	start := time.Now()
	code, _, stderr, err := runCaptured(t, fw, "/bin/sh", "-c", `trap 'exit 5' TERM; touch `+ready+`; sleep 60 & wait`)
	if err != nil || code != 5 {
		t.Errorf("Run = %d, %v; want the command's 5 from its TERM trap", code, err)
	}
	if d := time.Since(start); d > 10*SidecarsGoneAfter+2*time.Second {
		t.Errorf("the command ran %v after the sidecars went", d)
	}
	if !strings.Contains(stderr, "the sidecars are gone") {
		t.Errorf("no word of why the command stopped: %q", stderr)
	}
}
