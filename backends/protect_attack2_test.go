package backends

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

// nestedRepo makes a repository's .git directory (config and hooks/) at
// rel under ws.
func nestedRepo(t *testing.T, ws, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(ws, rel, ".git", "hooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, rel, ".git", "config"), []byte("[core]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func protectsConfig(t *testing.T, ws, rel string) bool {
	t.Helper()
	st, err := Claim(filepath.Join(t.TempDir(), "state", "slug"))
	if err != nil {
		t.Fatal(err)
	}
	defer RemovePlaceholders(st.Dir)
	ops, err := Protect(&plan.Plan{Mounts: []plan.Mount{{HostPath: ws, Target: "/w", Protect: plan.DefaultProtect}}}, st)
	if err != nil {
		t.Logf("Protect refused: %v", err)
		return true // refusing to start is safe
	}
	op, ok := opsByTarget(ops)["/w/"+rel+"/.git/config"]
	return ok && op.ReadOnly
}

// TestProtectRepoThreeBelow: the documentation promises the git paths of
// every repository "up to three directories below the mount" (a mount of
// a directory of projects, ~/src/github.com/org/proj style). The walk
// stops one level short: a repository at a/b/c is not searched, so the
// agent can write its .git/config (core.fsmonitor) and the user's next
// git status in it runs the agent's command on the host.
func TestProtectRepoThreeBelow(t *testing.T) {
	ws := t.TempDir()
	nestedRepo(t, ws, "a/b/c")
	if !protectsConfig(t, ws, "a/b/c") {
		t.Errorf("a repository three directories below the mount: its .git/config is writable")
	}
}

// TestProtectRepoScanBudget: the search for nested repositories stops
// silently after maxRepoScan directories. An agent that makes that many
// empty directories in one run (they sort before the user's projects)
// leaves every repository after them unprotected in the next run, and no
// one is told. Exhausting the budget must refuse to start (or the search
// must not be exhaustible by the agent), not drop protection.
func TestProtectRepoScanBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 3,000 directories")
	}
	defer func(n int) { maxRepoScan = n }(maxRepoScan)
	maxRepoScan = 3000
	ws := t.TempDir()
	for i := 0; i < maxRepoScan; i++ {
		if err := os.MkdirAll(filepath.Join(ws, "aaa", fmt.Sprintf("%05d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	nestedRepo(t, ws, "proj")
	if !protectsConfig(t, ws, "proj") {
		t.Errorf("ESCAPE: after %d empty directories the agent made, the user's repository proj/ has a writable .git/config", maxRepoScan)
	}
}
