package guest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLockdown runs a command under a Lockdown with real mounts in a
// namespace of its own: it cannot change, rename, remove or unmount the
// protected paths, nor create one that did not exist (its placeholder is
// read-only too), but it can write the rest of the mount; it has no
// capabilities and no_new_privs; and nothing of it is left in the test's
// own mount namespace.
func TestLockdown(t *testing.T) {
	ws := t.TempDir()
	for _, d := range []string{".git/hooks", ".claude"} {
		if err := os.MkdirAll(filepath.Join(ws, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ws, ".git", "config"), []byte("[core]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, ".envrc"), nil, 0o644); err != nil { // a placeholder
		t.Fatal(err)
	}
	lock := Lockdown{
		NoSuid: []string{ws},
		Binds: []Bind{
			{Path: filepath.Join(ws, ".claude"), ReadOnly: true},
			{Path: filepath.Join(ws, ".envrc"), ReadOnly: true},
			{Path: filepath.Join(ws, ".git")},
			{Path: filepath.Join(ws, ".git", "config"), ReadOnly: true},
			{Path: filepath.Join(ws, ".git", "hooks"), ReadOnly: true},
		},
		DropCaps: true,
	}
	script := `cd "$1"
	echo '[core] fsmonitor = x' >> .git/config 2>/dev/null && echo PLANTED-config
	echo x > .git/hooks/pre-commit 2>/dev/null && echo PLANTED-hook
	mv .git .git-old 2>/dev/null && echo PLANTED-rename
	rm .git/config 2>/dev/null && echo PLANTED-rm
	echo x > .envrc 2>/dev/null && echo PLANTED-envrc
	mkdir .claude/x 2>/dev/null && echo PLANTED-claude
	umount .git/config 2>/dev/null && echo PLANTED-umount
	umount -l .git 2>/dev/null && echo PLANTED-umount-git
	echo work > work.txt && touch .git/index && echo WORK
	grep -E '^(CapEff|CapBnd|CapPrm|CapInh|NoNewPrivs):' /proc/self/status`
	argv := helperCommand(t, "guest", "--lockdown", lock.String(), "--", "/bin/sh", "-c", script, "sh", ws)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "operation not permitted") && os.Geteuid() != 0 {
			t.Skipf("skipping: this host allows no user namespaces to an unprivileged user: %s", out)
		}
		t.Fatalf("guest: %v\n%s", err, out)
	}
	s := string(out)
	if strings.Contains(s, "PLANTED") {
		t.Errorf("the command got past the lockdown:\n%s", s)
	}
	if !strings.Contains(s, "WORK") {
		t.Errorf("the command could not write the workspace:\n%s", s)
	}
	for _, want := range []string{"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "CapPrm:\t0000000000000000", "CapInh:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q:\n%s", want, s)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ws, ".git", "config")); string(b) != "[core]\n" {
		t.Errorf(".git/config changed: %q", b)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), ws) {
		t.Errorf("a lockdown mount leaked into the test's namespace:\n%s", mi)
	}
}

// TestLockdownFailsClosed: when a path cannot be protected, the command
// does not run.
func TestLockdownFailsClosed(t *testing.T) {
	ws := t.TempDir()
	marker := filepath.Join(ws, "ran")
	lock := Lockdown{Binds: []Bind{{Path: filepath.Join(ws, "missing"), ReadOnly: true}}}
	argv := helperCommand(t, "guest", "--lockdown", lock.String(), "--", "/bin/sh", "-c", "touch "+marker)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("guest succeeded:\n%s", out)
	}
	if code := cmd.ProcessState.ExitCode(); code != ExitSetupFailed {
		t.Errorf("exit code %d, want %d:\n%s", code, ExitSetupFailed, out)
	}
	if !strings.Contains(string(out), "lockdown: make read-only "+filepath.Join(ws, "missing")) {
		t.Errorf("the error does not name the path:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran without its lockdown")
	}
}

// TestLockdownKernel: uid 0 without capabilities may still write what
// only file permissions guard: /proc/sys, /sys, the guest's disks in
// /dev. Under a lockdown none of them can be written, /dev holds only the
// harmless nodes, and the terminal nodes still work.
func TestLockdownKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the kernel's root-only interfaces matter when the agent is uid 0; run as root")
	}
	script := `ls /dev | tr '\n' ' '; echo
	echo 1 > /proc/sys/kernel/sysrq 2>/dev/null && echo WROTE-proc-sys
	echo x > /proc/sysrq-trigger 2>/dev/null && echo WROTE-sysrq
	for f in /sys/kernel/uevent_helper /sys/kernel/mm/ksm/run; do [ -e $f ] && (echo 0 > $f) 2>/dev/null && echo WROTE-$f; done
	head -c1 /proc/kcore >/dev/null 2>&1 && echo READ-kcore
	echo ok > /dev/null && head -c4 /dev/zero | wc -c`
	lock := Lockdown{DropCaps: true}
	argv := helperCommand(t, "guest", "--lockdown", lock.String(), "--", "/bin/sh", "-c", script)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("guest: %v\n%s", err, out)
	}
	s := string(out)
	if strings.Contains(s, "WROTE") || strings.Contains(s, "READ-kcore") {
		t.Errorf("the command reached the kernel:\n%s", s)
	}
	devs := strings.Fields(strings.SplitN(s, "\n", 2)[0])
	for _, d := range devs {
		if !slices.Contains([]string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin", "stdout", "stderr"}, d) {
			t.Errorf("/dev holds %s", d)
		}
	}
	if !strings.Contains(s, "\n4\n") {
		t.Errorf("/dev/zero does not work:\n%s", s)
	}
}

// TestLockdownUser: with User the command runs as that uid and gid, which
// has a passwd entry and a private, writable HOME, and still writes the
// workspace.
func TestLockdownUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: switching to another user needs root")
	}
	ws := t.TempDir()
	if err := os.Chmod(ws, 0o777); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "home")
	// The test's own temporary directories are 0700.
	if err := os.Chmod(filepath.Dir(ws), 0o755); err != nil {
		t.Fatal(err)
	}
	lock := Lockdown{DropCaps: true, User: "4321:4322", Home: home, NoSuid: []string{ws}}
	argv := helperCommand(t, "guest", "--lockdown", lock.String(), "--",
		"/bin/sh", "-c", `id -u; id -g; echo "HOME=$HOME"; grep '^bottle:' /etc/passwd; touch "$HOME/x" && echo HOME-OK; touch "$1/y" && echo WS-OK`, "sh", ws)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("guest: %v\n%s", err, out)
	}
	for _, want := range []string{"4321\n4322\n", "HOME=" + home + "\n", "bottle:x:4321:4322:bottle agent:" + home + ":/bin/sh", "HOME-OK", "WS-OK"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q:\n%s", want, out)
		}
	}
	if fi, err := os.Stat(filepath.Join(ws, "y")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 4321 {
		t.Errorf("the file the command wrote is not the user's: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, "x")); err == nil {
		t.Error("HOME was not private to the command (the file is on the host)")
	}
}

// TestLockdownSetuid: no call the command makes can leave a setuid or
// setgid file in the shared directory, while ordinary modes still work.
// Without the lockdown the same helper plants them (the control).
func TestLockdownSetuid(t *testing.T) {
	for _, locked := range []bool{false, true} {
		dir := t.TempDir()
		args := []string{"guest"}
		if locked {
			args = append(args, "--lockdown", Lockdown{DropCaps: true}.String())
		}
		exe := helperCommand(t, "setuid")[0]
		argv := helperCommand(t, args[0], append(args[1:], "--", exe, "setuid", dir)...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = helperEnviron()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("locked %v: %v\n%s", locked, err, out)
		}
		s := string(out)
		if !strings.Contains(s, "ORDINARY-OK") {
			t.Errorf("locked %v: ordinary modes failed:\n%s", locked, s)
		}
		planted := strings.Count(s, "PLANTED-")
		if locked && planted > 0 {
			t.Errorf("the command left setuid or setgid files:\n%s", s)
		}
		if !locked && planted < 6 {
			t.Errorf("control: only %d plants worked without the lockdown, want 6:\n%s", planted, s)
		}
	}
}

// TestLockdownPIDNamespace: the command under a lockdown is the child of
// pid 1 of a PID namespace of its own, with a /proc of that namespace. It
// sees no process outside (bottle guest's included, which it could
// otherwise stop or signal), cannot stop its pid 1, and a process it put
// in a session of its own ends when the command does: the kernel kills
// the namespace with its pid 1.
func TestLockdownPIDNamespace(t *testing.T) {
	dir := t.TempDir()
	script := `echo "pid=$$"
	echo "procs=$(ls -d /proc/[0-9]* | wc -l)"
	kill -STOP 1 2>/dev/null; kill -KILL 1 2>/dev/null
	setsid sh -c 'while :; do touch "$1/beat"; sleep 0.05; done' sh "$1" </dev/null >/dev/null 2>&1 &
	sleep 0.3
	echo "init=$(tr '\0' ' ' < /proc/1/cmdline)"`
	argv := helperCommand(t, "guest", "--lockdown", Lockdown{DropCaps: true}.String(), "--", "/bin/sh", "-c", script, "sh", dir)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("guest: %v\n%s", err, out)
	}
	s := string(out)
	// pid 1's threads take the first few numbers.
	var pid, procs int
	fmt.Sscanf(s[strings.Index(s, "pid=")+len("pid="):], "%d", &pid)
	fmt.Sscanf(s[strings.Index(s, "procs=")+len("procs="):], "%d", &procs)
	if pid < 2 || pid > 64 {
		t.Errorf("the command's pid is %d, not one of a new PID namespace:\n%s", pid, s)
	}
	if procs < 2 || procs > 6 {
		t.Errorf("the command sees %d processes, want its own few:\n%s", procs, s)
	}
	if !strings.Contains(s, "init="+argv[0]+" guest "+LockdownFlag) {
		t.Errorf("pid 1 is not bottle guest's lockdown, or a kill from inside stopped it:\n%s", s)
	}
	// The setsid loop ended with the command.
	beat := filepath.Join(dir, "beat")
	if _, err := os.Stat(beat); err != nil {
		t.Fatalf("the setsid loop never ran: %v\n%s", err, s)
	}
	for i := 0; i < 3; i++ {
		os.Remove(beat)
		time.Sleep(200 * time.Millisecond)
		if _, err := os.Stat(beat); err == nil {
			continue
		}
		return
	}
	t.Errorf("a process the command put in a session of its own outlived it")
}

// BenchmarkLockdownStart measures bottle guest running `true` with the
// smolmachines lockdown (new mount and PID namespaces, a /proc, no
// capabilities, the seccomp filter, pid 1 waiting for the command) beside
// the same run without a lockdown.
func BenchmarkLockdownStart(b *testing.B) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"baseline", nil},
		{"lockdown", []string{"--lockdown", Lockdown{DropCaps: true}.String()}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			argv := helperCommand(b, "guest", append(tc.args, "--", "/bin/true")...)
			for b.Loop() {
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Env = helperEnviron()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("bottle guest: %v\n%s", err, out)
				}
			}
		})
	}
}

// TestLockdownPID1SurvivesSignals: the command sends pid 1 every signal a
// process may send it but those pid 1 passes on to the command's group
// (which would come back to the command); pid 1 dies of none (it would
// take the command with it and report a made-up code), and the command's
// own exit code is the result.
func TestLockdownPID1SurvivesSignals(t *testing.T) {
	script := `for s in USR1 USR2 ALRM PIPE ABRT TRAP SYS BUS FPE SEGV ILL VTALRM PROF XCPU XFSZ STKFLT PWR TTIN TTOU TSTP STOP KILL; do
		kill -s $s 1 2>/dev/null
	done
	sleep 0.3
	exit 5`
	argv := helperCommand(t, "guest", "--lockdown", Lockdown{DropCaps: true}.String(), "--", "/bin/sh", "-c", script)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 5 {
		t.Errorf("bottle guest exited %d after the command signalled pid 1, want the command's 5:\n%s", code, out)
	}
}
