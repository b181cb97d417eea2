package guest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
