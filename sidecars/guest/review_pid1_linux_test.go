package guest

import (
	"bufio"
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

// TestLockdownDiesWithGuest: when bottle guest dies (SIGKILL, the OOM
// killer, a crash), its PR_SET_PDEATHSIG must take the lockdown's pid 1
// with it, and so the whole agent. With User set, as the smolmachines
// backend always does, pid 1 changes its uid, and a change of uid clears
// the parent-death signal: pid 1 and the agent run on with nobody to stop
// them (no control channel, no dead man's switch, nobody to report to).
func TestLockdownDiesWithGuest(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: switching to another user needs root")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "home")
	beat := filepath.Join(dir, "beat")
	lock := Lockdown{DropCaps: true, User: "4321:4322", Home: home}
	argv := helperCommand(t, "guest", "--lockdown", lock.String(), "--",
		"/bin/sh", "-c", `while :; do date +%s%N > "$1"; sleep 0.05; done`, "sh", beat)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, func() bool { _, err := os.Stat(beat); return err == nil }, "the command never ran")
	// pid 1 of the namespace, as this test sees it, to clean up after.
	init := childOf(t, cmd.Process.Pid)
	t.Cleanup(func() { syscall.Kill(init, syscall.SIGKILL) })

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	time.Sleep(300 * time.Millisecond)
	before, _ := os.ReadFile(beat)
	time.Sleep(500 * time.Millisecond)
	after, _ := os.ReadFile(beat)
	if string(before) != string(after) {
		t.Errorf("bottle guest was killed, yet its lockdown's pid 1 (%d) and the command run on", init)
	}
}

// TestLockdownSignalDuringSetup: a signal bottle guest passes on while the
// lockdown is still being set up (the host stops bottle right after the
// start) must not be lost nor turned into a made-up exit code. pid 1 of a
// PID namespace ignores a signal it has no handler for, and Go's runtime,
// not yet told to catch the signal, "dies" of it by raising it again,
// which pid 1 ignores too, then exits 2: bottle reports that the agent
// exited 2, though it never ran. (Before Go's handlers are installed the
// signal is dropped instead, and the command runs as if never stopped.)
//
// Many NoSuid entries (a relative path, to keep the argument short) make
// the setup last long enough to land the signal in it every time.
func TestLockdownSignalDuringSetup(t *testing.T) {
	cmd, marker, start := startSlowLockdown(t)
	defer cmd.Process.Kill()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	code, _ := exitCode(cmd.ProcessState, werr)
	if code != 128+int(syscall.SIGTERM) {
		_, err := os.Stat(marker)
		t.Errorf("SIGTERM during the lockdown's setup: bottle guest exited %d after %v (command ran: %v), want %d",
			code, time.Since(start).Round(time.Millisecond), err == nil, 128+int(syscall.SIGTERM))
	}
}

// TestLockdownTerminalHangup: an interactive shell on a terminal (smolvm
// exec -it) makes a process group of its own when it does not lead one.
// Without a lockdown the command leads the group bottle guest signals, so
// a SIGHUP bottle guest passes on (the host's stop) reaches it. Under a
// lockdown the command is pid 1's child in pid 1's group: the shell moves
// out of it, pid 1 swallows the signal, and the agent never hears of the
// stop.
func TestLockdownTerminalHangup(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("skipping: no bash")
	}
	for _, locked := range []bool{false, true} {
		ptm, pts, err := pty.Open()
		if err != nil {
			t.Skipf("skipping: no pseudo-terminal: %v", err)
		}
		args := []string{}
		if locked {
			args = append(args, "--lockdown", Lockdown{DropCaps: true}.String())
		}
		argv := helperCommand(t, "guest", append(args, "--", bash, "--norc", "--noprofile", "-i")...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(helperEnviron(), "PS1=$ ")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pts.Close()
		seen := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(ptm)
			once := false
			for sc.Scan() {
				if !once && strings.Contains(sc.Text(), "READY") {
					once = true
					close(seen)
				}
			}
		}()
		ptm.WriteString("echo RE\"\"ADY\n") // the terminal echoes the line: match the output
		select {
		case <-seen:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("locked %v: the shell never answered", locked)
		}
		time.Sleep(300 * time.Millisecond) // back at its prompt
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
			if code := cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGHUP) {
				t.Errorf("locked %v: bottle guest exited %d (%v) after SIGHUP, want %d", locked, code, cmd.ProcessState, 128+int(syscall.SIGHUP))
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("locked %v: the shell did not get the SIGHUP bottle guest passed on", locked)
		}
		ptm.Close()
	}
}

// TestLockdownInheritedDescriptor: a descriptor bottle guest inherited
// (from smolvm's agent, a wrapper, a test harness) was opened in the mount
// namespace outside the lockdown's, and pid 1 passes it on to the command:
// a directory descriptor of the workspace reaches .git/config and the
// hooks around every bind. The lockdown must not leave the command any
// descriptor but its stdio.
func TestLockdownInheritedDescriptor(t *testing.T) {
	ws, lock := gitWorkspace(t)
	d, err := os.Open(ws)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	script := `for fd in /proc/self/fd/*; do
		echo '[core] fsmonitor = x' >> "$fd/.git/config" 2>/dev/null && echo "PLANTED-config via $fd"
		echo x > "$fd/.git/hooks/pre-commit" 2>/dev/null && echo "PLANTED-hook via $fd"
	done; echo done`
	argv := helperCommand(t, "guest", "--lockdown", lock.String(), "--", "/bin/sh", "-c", script)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	cmd.ExtraFiles = []*os.File{d}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("guest: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "PLANTED") {
		t.Errorf("through a descriptor bottle guest inherited the command got past the lockdown:\n%s", out)
	}
	checkGitConfig(t, ws)
}

// TestLockdownWorkdirPWD: the lockdown enters its working directory again
// by name, and os.Getwd takes that name from $PWD whenever $PWD names the
// same directory. A $PWD of /proc/self/cwd always does, and entering it
// stays in the directory under the binds, as before the re-entry. $PWD is
// whatever smolvm's exec and the profile's environment set: the re-entry
// should ask the kernel for the directory's name, not the environment.
func TestLockdownWorkdirPWD(t *testing.T) {
	ws, lock := gitWorkspace(t)
	script := `echo '[core] fsmonitor = x' >> .git/config 2>/dev/null && echo PLANTED-config
	echo x > .git/hooks/pre-commit 2>/dev/null && echo PLANTED-hook
	echo done`
	argv := helperCommand(t, "guest", "--lockdown", lock.String(), "--", "/bin/sh", "-c", script)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(helperEnviron(), "PWD=/proc/self/cwd")
	cmd.Dir = ws
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("guest: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "PLANTED") {
		t.Errorf("with PWD=/proc/self/cwd the command started under the binds:\n%s", out)
	}
	checkGitConfig(t, ws)
}

// startSlowLockdown starts bottle guest under a lockdown whose setup lasts
// long enough to land signals in it every time (6000 NoSuid entries, of a
// relative path to keep the argument short), for a command that touches
// marker. It returns 100 ms after the start, with the start's time.
func startSlowLockdown(t *testing.T) (cmd *exec.Cmd, marker string, start time.Time) {
	t.Helper()
	dir := t.TempDir()
	lock := Lockdown{DropCaps: true}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for range 6000 {
		lock.NoSuid = append(lock.NoSuid, "d")
	}
	marker = filepath.Join(dir, "ran")
	argv := helperCommand(t, "guest", "--lockdown", lock.String(), "--",
		"/bin/sh", "-c", `touch "$1"; sleep 3`, "sh", marker)
	cmd = exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	cmd.Dir = dir
	start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	return cmd, marker, start
}

// waitFor polls cond for up to 20 seconds.
func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal(msg)
}

// childOf returns the one child process of pid.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		if fs := strings.Fields(string(b)); len(fs) > 0 {
			n, err := strconv.Atoi(fs[0])
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("process %d has no child", pid)
	return 0
}
