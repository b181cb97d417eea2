//go:build linux

package smolvm

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needRoot skips tests that emulate the guest: namespaces, mounts and
// chroot need root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("emulating the guest needs root")
	}
}

// runningMachine creates and starts machine "m" from an archive whose
// config is cfg, with extra create arguments.
func (h *harness) runningMachine(cfg map[string]any, args ...string) {
	h.t.Helper()
	img := h.imageTar("img.tar", cfg)
	h.must(0, append([]string{"machine", "create", "--name", "m", "--image", img}, args...)...)
	h.must(0, "machine", "start", "--name", "m")
}

var sleeper = map[string]any{"Cmd": []string{"sleep", "1000"}}

func TestExecExitStatus(t *testing.T) {
	needRoot(t)
	h := newHarness(t)
	h.runningMachine(sleeper)
	h.must(0, "machine", "exec", "--name", "m", "--", "true")
	h.must(42, "machine", "exec", "--name", "m", "--", "sh", "-c", "exit 42")
	h.must(42, "machine", "exec", "--name", "m", "-i", "--", "sh", "-c", "exit 42")
	// Killed by signal N: 128+N.
	h.must(128+9, "machine", "exec", "--name", "m", "--", "sh", "-c", "kill -9 $$")
	h.must(128+15, "machine", "exec", "--name", "m", "-i", "--", "sh", "-c", "kill -15 $$")
	// crun cannot find the command: its message on stderr, exit 255.
	_, errs := h.must(255, "machine", "exec", "--name", "m", "--", "no-such-command")
	if errs != "executable file `no-such-command` not found in $PATH: No such file or directory\n" {
		t.Errorf("exec of a missing command: %q", errs)
	}
	_, errs = h.must(255, "machine", "exec", "--name", "m", "--", "/nonexistent/program")
	if errs != "executable file `/nonexistent/program` not found in $PATH: No such file or directory\n" {
		t.Errorf("exec of a missing path: %q", errs)
	}
	noexec := h.write("noexec", "#!/bin/sh\n")
	_, errs = h.must(255, "machine", "exec", "--name", "m", "--", noexec)
	if errs != "open executable: Permission denied\n" {
		t.Errorf("exec of a file without x bits: %q", errs)
	}
	_, errs = h.must(255, "machine", "exec", "--name", "m", "--", "/")
	if errs != "open executable: Operation not permitted\n" {
		t.Errorf("exec of a directory: %q", errs)
	}
	// Output of a non-interactive exec arrives whole; stdin is empty.
	h.stdin = "typed\n"
	out, _ := h.must(0, "machine", "exec", "--name", "m", "--", "sh", "-c", "cat; echo done")
	if out != "done\n" {
		t.Errorf("non-interactive exec read stdin: %q", out)
	}
	out, _ = h.must(0, "machine", "exec", "--name", "m", "-i", "--", "sh", "-c", "cat; echo done")
	if out != "typed\ndone\n" {
		t.Errorf("interactive exec stdin: %q", out)
	}
	// -t gives the command a terminal, -i pipes.
	h.stdin = ""
	h.must(0, "machine", "exec", "--name", "m", "-t", "--", "sh", "-c", "test -t 0 && test -t 1")
	h.must(1, "machine", "exec", "--name", "m", "-i", "--", "sh", "-c", "test -t 0 || test -t 1")
	// The exec ends when its command does, even if a child keeps the
	// output open: with -t too, where the child may survive the hangup of
	// the terminal (it ignores SIGHUP here).
	for _, flag := range []string{"-i", "-t"} {
		for _, script := range []string{"sleep 30 & echo started", "trap '' HUP; sleep 30 & echo started"} {
			begin := time.Now()
			h.must(0, "machine", "exec", "--name", "m", flag, "--", "sh", "-c", script)
			if d := time.Since(begin); d > 5*time.Second {
				t.Errorf("exec %s of %q waited %v for a background child", flag, script, d)
			}
		}
	}
}

func TestExecEnvironment(t *testing.T) {
	needRoot(t)
	h := newHarness(t)
	t.Setenv("FAKE_SMOLVM_HOST_ONLY", "leak")
	h.env["CREATE_SECRET"] = "s1"
	h.env["EXEC_SECRET"] = "s2"
	h.env["FORWARDED"] = "from-create"
	sf := h.write("Smolfile", "env = [\"SF=smolfile\", \"OVER=smolfile\"]\n[secrets]\nFILE_SECRET = { from_file = \""+h.write("secret", "s3\n")+"\" }\n")
	h.runningMachine(map[string]any{"Cmd": []string{"sleep", "1000"}, "Env": []string{"PATH=/usr/bin:/bin", "IMG=image", "OVER=image"}},
		"-s", sf, "-e", "CE=create", "-e", "FORWARDED", "--secret-env", "CS=CREATE_SECRET")
	h.env["FORWARDED"] = "changed"
	out, _ := h.must(0, "machine", "exec", "--name", "m", "-e", "XE=exec", "-e", "OVER=exec", "--secret-env", "ES=EXEC_SECRET", "--", "env")
	got := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(got)
	want := []string{"CE=create", "CS=s1", "ES=s2", "FILE_SECRET=s3", "FORWARDED=from-create", "HOME=/root", "IMG=image", "OVER=exec", "PATH=/usr/bin:/bin", "SF=smolfile", "XE=exec"}
	if !slices.Equal(got, want) {
		t.Errorf("exec env:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// -t adds TERM; an image without PATH gets crun exec's default.
	h2 := newHarness(t)
	h2.runningMachine(sleeper)
	out, _ = h2.must(0, "machine", "exec", "--name", "m", "-t", "--", "env")
	// A pty turns "\n" into "\r\n".
	got = strings.Split(strings.TrimSpace(strings.ReplaceAll(out, "\r", "")), "\n")
	slices.Sort(got)
	want = []string{"HOME=/root", "PATH=" + defaultContainerPath, "TERM=xterm-256color"}
	if !slices.Equal(got, want) {
		t.Errorf("exec -t env: %q, want %q", got, want)
	}
	// An unset host variable behind --secret-env fails before anything runs.
	_, errs := h2.must(1, "machine", "exec", "--name", "m", "--secret-env", "T=UNSET_VAR", "--", "true")
	if errs != "Error: config operation failed: resolve secret 'T': env_unset\n" {
		t.Errorf("unset secret: %q", errs)
	}
}

// TestGuestView checks what an exec'd command sees: the volumes at their
// guest paths (read-only honoured), the mount-sockets, a network
// namespace with only lo, a /run of its own — and that building it
// created nothing on the host.
func TestGuestView(t *testing.T) {
	needRoot(t)
	h := newHarness(t)
	rw := h.mkdir("rw")
	ro := h.mkdir("ro")
	h.write("ro/file", "x")
	nested := h.mkdir("nested")
	// A socket the host serves, and its guest path under a directory that
	// does not exist on the host.
	sock := filepath.Join(h.dir, "host.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "host got %s", line)
			c.Close()
		}
	}()
	guestDir := "/opt/fake-smolvm-test-" + strconv.Itoa(os.Getpid())
	if _, err := os.Stat(guestDir); err == nil {
		t.Fatalf("%s exists on the host", guestDir)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sockcat := filepath.Join(h.dir, "sockcat")
	if err := os.Symlink(exe, sockcat); err != nil {
		t.Fatal(err)
	}
	before := rootEntries(t)
	h.runningMachine(sleeper, "-v", rw+":"+guestDir+"/rw", "-v", ro+":"+guestDir+"/ro:ro", "-v", nested+":"+rw+"/inner",
		"--mount-socket", sock+":/run/bottle/egress.sock", "--mount-socket", sock+":"+ro+"/in-ro.sock")

	exec := func(script string) string {
		out, _ := h.must(0, "machine", "exec", "--name", "m", "--", "sh", "-c", script)
		return out
	}
	if out := exec("echo hi > " + guestDir + "/rw/f && cat " + guestDir + "/rw/f"); out != "hi\n" {
		t.Errorf("rw volume: %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "f")); err != nil || string(b) != "hi\n" {
		t.Errorf("rw volume write did not reach the host: %q %v", b, err)
	}
	if out := exec("cat " + guestDir + "/ro/file; touch " + guestDir + "/ro/new 2>/dev/null || echo refused"); out != "xrefused\n" {
		t.Errorf("ro volume: %q", out)
	}
	if out := exec("ls /sys/class/net; grep -c : /proc/net/dev"); out != "lo\n1\n" {
		t.Errorf("network view: %q", out)
	}
	if out := exec("ls -A /run"); out != "bottle\n" {
		t.Errorf("/run holds %q", out)
	}
	if out := exec("stat -c %a /run/bottle/egress.sock; " + sockcat + " /run/bottle/egress.sock ping"); out != "777\nhost got ping\n" {
		t.Errorf("mount-socket: %q", out)
	}
	if out := exec(sockcat + " " + ro + "/in-ro.sock pong"); out != "host got pong\n" {
		t.Errorf("mount-socket inside a host directory: %q", out)
	}
	// The host is unchanged: no mount points or socket nodes created.
	for _, p := range []string{guestDir, filepath.Join(ro, "in-ro.sock"), filepath.Join(rw, "inner")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was created on the host (%v)", p, err)
		}
	}
	if after := rootEntries(t); !slices.Equal(before, after) {
		t.Errorf("host / changed:\nbefore %v\nafter  %v", before, after)
	}
	if out := exec("echo nested > " + rw + "/inner/n; ls " + guestDir); out != "ro\nrw\n" {
		t.Errorf("guest dir listing: %q", out)
	}
	if _, err := os.Stat(filepath.Join(nested, "n")); err != nil {
		t.Errorf("nested volume: %v", err)
	}
	h.must(0, "machine", "stop", "--name", "m")
}

func rootEntries(t *testing.T) []string {
	t.Helper()
	des, err := os.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// TestStartWorkload checks that start runs the machine's command detached,
// that stop kills it, and that a command crun cannot run fails the start.
func TestStartWorkload(t *testing.T) {
	needRoot(t)
	h := newHarness(t)
	ws := h.mkdir("ws")
	sf := h.write("Smolfile", `cmd = ["sh", "-c", "echo $$ > /ws/pid; exec sleep 1000"]`+"\n")
	img := h.imageTar("img.tar", map[string]any{"Cmd": []string{"false"}})
	h.must(0, "machine", "create", "--name", "m", "--image", img, "-s", sf, "-v", ws+":/ws")
	out, _ := h.must(0, "machine", "start", "--name", "m")
	if out != "Machine 'm' running (PID: 4242)\n" {
		t.Errorf("start stdout = %q", out)
	}
	pidFile := filepath.Join(ws, "pid")
	waitFile(t, pidFile)
	pid := readPid(t, pidFile)
	if !alive(pid) {
		t.Fatalf("workload %d is not running", pid)
	}
	out, _ = h.must(0, "machine", "start", "--name", "m")
	if out != "Machine 'm' already running (PID: 4242)\n" {
		t.Errorf("second start = %q", out)
	}
	out, _ = h.must(0, "machine", "stop", "--name", "m")
	if out != "Stopping machine 'm'...\nStopped machine: m\n" {
		t.Errorf("stop = %q", out)
	}
	if alive(pid) {
		t.Errorf("workload %d survived stop", pid)
	}
	out, _ = h.must(0, "machine", "stop", "--name", "m")
	if out != "Machine 'm' is not running (state: stopped)\n" {
		t.Errorf("stop of a stopped machine = %q", out)
	}

	for _, cmd := range []string{`["no-such-command"]`, `["/etc/passwd"]`} {
		h.write("Smolfile", "cmd = "+cmd+"\n")
		h.must(0, "machine", "create", "--name", "bad", "--image", img, "-s", sf)
		_, errs := h.must(1, "machine", "start", "--name", "bad")
		if !strings.HasSuffix(errs, "Error: agent operation failed: start background CMD: agent operation failed: run container detached: crun create failed: \n") {
			t.Errorf("start with cmd %s: %q", cmd, errs)
		}
		out, _ = h.must(0, "machine", "status", "--name", "bad")
		if out != "Machine 'bad': created\n" {
			t.Errorf("after a failed start: %q", out)
		}
		h.must(0, "machine", "delete", "-f", "--name", "bad")
	}
	// No command anywhere: smolvm's agent has nothing to run.
	h.must(0, "machine", "create", "--name", "none", "--image", h.imageTar("bare.tar", map[string]any{}))
	_, errs := h.must(1, "machine", "start", "--name", "none")
	if !strings.Contains(errs, "Error: agent operation failed: start background CMD: agent operation failed: run container detached: no command given and image 'local:") {
		t.Errorf("start without a command: %q", errs)
	}
}

// readPid waits up to ten seconds for path to hold a pid: the shell
// creates the file before it writes to it.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if err == nil {
			var pid int
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return pid
			}
		}
		last = err
	}
	t.Fatalf("no pid in %s: %v", path, last)
	return 0
}

func alive(pid int) bool {
	_, ok := procStart(pid)
	return ok
}

// TestExecSignals checks what happens when the smolvm exec process itself
// is killed: smolvm forwards no signal; an interactive command keeps
// running until the machine stops, a non-interactive one is killed.
func TestExecSignals(t *testing.T) {
	needRoot(t)
	h := newHarness(t)
	ws := h.mkdir("ws")
	h.runningMachine(sleeper, "-v", ws+":/ws")
	for _, tc := range []struct {
		flag     string
		survives bool
	}{{"-i", true}, {"--stream", false}, {"", false}} {
		pidFile := filepath.Join(ws, "pid"+tc.flag)
		args := []string{"machine", "exec", "--name", "m"}
		if tc.flag != "" {
			args = append(args, tc.flag)
		}
		args = append(args, "--", "sh", "-c", "echo $$ > "+filepath.Join("/ws", filepath.Base(pidFile))+"; exec sleep 1000")
		cmd := exec.Command("/proc/self/exe", args...)
		cmd.Args[0] = "smolvm"
		for k, v := range h.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFile(t, pidFile)
		pid := readPid(t, pidFile)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			t.Fatalf("exec %s: the stand-in did not die of SIGTERM: %v", tc.flag, err)
		}
		// A command the agent kills takes a moment to die on a loaded
		// machine: wait for it, up to 5 s; one that survives must still
		// be alive after the same 100 ms the kill would take unloaded.
		time.Sleep(100 * time.Millisecond)
		for deadline := time.Now().Add(5 * time.Second); !tc.survives && alive(pid) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) != tc.survives {
			t.Errorf("exec %s: command alive = %v after the client died, want %v", tc.flag, alive(pid), tc.survives)
		}
		if tc.survives {
			h.must(0, "machine", "stop", "--name", "m")
			if alive(pid) {
				t.Errorf("exec %s: command survived machine stop", tc.flag)
			}
			h.must(0, "machine", "start", "--name", "m")
		}
	}
}

// sockcat is a tiny Unix-socket client the guest runs (the guest view
// shares the host's binaries, and nc may be missing): it sends args[1]
// and a newline to the socket args[0] and prints the answer.
func sockcat(args []string) int {
	c, err := net.Dial("unix", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	fmt.Fprintf(c, "%s\n", args[1])
	line, err := bufio.NewReader(c).ReadString('\n')
	fmt.Print(line)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
