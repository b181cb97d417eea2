package guest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockdownWorkdirBelowMounts: `bottle guest --workdir DIR` enters DIR
// before the command's lockdown namespace binds the protected paths, so
// the command's working directory is the directory *under* the NoSuid
// bind of the workspace (and under every pin and read-only bind made on
// top of it). Relative paths from there never cross those mounts: the
// agent, started in its workspace as the smolmachines backend does by
// default, can write .git/config and .git/hooks, which run on the host.
func TestLockdownWorkdirBelowMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the smolvm workload is root")
	}
	ws, lock := gitWorkspace(t)
	// No cd: the command starts where bottle guest's --workdir put it.
	script := `echo '[core] fsmonitor = x' >> .git/config 2>/dev/null && echo PLANTED-config
	echo x > .git/hooks/pre-commit 2>/dev/null && echo PLANTED-hook
	mv .git .git-old 2>/dev/null && echo PLANTED-rename
	echo done`
	argv := helperCommand(t, "guest", "--lockdown", lock.String(), "--", "/bin/sh", "-c", script)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = helperEnviron()
	cmd.Dir = ws // what GuestCmd.Run's os.Chdir(c.Workdir) does
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("guest: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "PLANTED") {
		t.Errorf("from its starting directory the command got past the lockdown:\n%s", out)
	}
	checkGitConfig(t, ws)
}

// gitWorkspace makes a workspace holding .git/config and .git/hooks, and
// the lockdown the smolmachines backend gives it: the workspace nosuid,
// .git pinned, its config and hooks read-only, no capabilities.
func gitWorkspace(t *testing.T) (string, Lockdown) {
	t.Helper()
	ws := t.TempDir()
	if err := os.MkdirAll(filepath.Join(ws, ".git", "hooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, ".git", "config"), []byte("[core]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lock := Lockdown{
		NoSuid: []string{ws},
		Binds: []Bind{
			{Path: filepath.Join(ws, ".git")},
			{Path: filepath.Join(ws, ".git", "config"), ReadOnly: true},
			{Path: filepath.Join(ws, ".git", "hooks"), ReadOnly: true},
		},
		DropCaps: true,
	}
	return ws, lock
}

// checkGitConfig fails t when the command changed gitWorkspace's config.
func checkGitConfig(t *testing.T, ws string) {
	t.Helper()
	if b, _ := os.ReadFile(filepath.Join(ws, ".git", "config")); string(b) != "[core]\n" {
		t.Errorf(".git/config changed: %q", b)
	}
}
