package backends

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

func gitT(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestProtectMountSourceSymlinkUnderWritableMount: a profile that mounts
// a directory of the workspace (mount("./cache", "/cache")) lets the agent
// replace that directory with a symbolic link during one run; the next run
// then binds whatever the link names on the host (any directory: $HOME,
// ~/.ssh, /) into the sandbox, with the same digest and no new approval.
// Protect even creates its placeholders (.envrc, .git/, .mcp.json, ...)
// in the link's target. A mount source that is, or passes through, a
// symbolic link inside another writable mount must be refused like a
// symlinked protected path.
func TestProtectMountSourceSymlinkUnderWritableMount(t *testing.T) {
	for _, ro := range []bool{false, true} {
		ws := t.TempDir()
		outside := t.TempDir() // stands for the user's $HOME
		if err := os.Symlink(outside, filepath.Join(ws, "cache")); err != nil {
			t.Fatal(err)
		}
		p := &plan.Plan{Mounts: []plan.Mount{
			{HostPath: ws, Target: "/workspace", Protect: plan.DefaultProtect},
			{HostPath: filepath.Join(ws, "cache"), Target: "/cache", ReadOnly: ro, Protect: plan.DefaultProtect},
		}}
		st, err := Claim(filepath.Join(t.TempDir(), "state", "slug"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Protect(p, st)
		if !errors.Is(err, ErrProtectSymlink) {
			t.Errorf("read-only %v: a mount source the agent replaced with a symlink: %v, want ErrProtectSymlink", ro, err)
		}
		if ents, _ := os.ReadDir(outside); len(ents) > 0 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("read-only %v: Protect created placeholders in the symlink's target: %v", ro, names)
		}
		RemovePlaceholders(st.Dir)
	}
}

// TestProtectLinkedWorktree: git in a linked worktree (git worktree add
// ../feature) reads its config from the directory named by
// .git/worktrees/<id>/commondir. That file is inside the workspace's
// pinned, writable .git: the agent points it at a directory of its own
// holding a config with core.fsmonitor, and the user's next git status in
// the linked worktree, outside the sandbox, runs the agent's command.
func TestProtectLinkedWorktree(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	ws := filepath.Join(dir, "main")
	gitT(t, "init", "-q", ws)
	gitT(t, "-C", ws, "commit", "-q", "--allow-empty", "-m", "a")
	gitT(t, "-C", ws, "worktree", "add", "-q", filepath.Join(dir, "feature"))
	ops, err := Protect(protectPlan(ws), nil)
	if err != nil {
		t.Fatal(err)
	}
	covered := func(target string) bool {
		for _, op := range ops {
			if op.ReadOnly && (op.Target == target || strings.HasPrefix(target, op.Target+"/")) {
				return true
			}
		}
		return false
	}
	for _, f := range []string{"commondir", "config.worktree"} {
		target := "/workspace/.git/worktrees/feature/" + f
		if !covered(target) {
			t.Errorf("%s is writable by the agent", target)
		}
	}
}

// TestProtectOverlappingMounts: protected paths are computed per mount,
// relative to its root, so a second writable mount of a directory above
// the workspace (mount("..", "/src"), to reach sibling repositories)
// makes the workspace's own .git/config writable at /src/<ws>/.git/config,
// as well as every sibling repository's.
func TestProtectOverlappingMounts(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	parent := t.TempDir()
	ws := filepath.Join(parent, "proj")
	gitT(t, "init", "-q", ws)
	p := &plan.Plan{Mounts: []plan.Mount{
		{HostPath: ws, Target: "/workspace", Protect: plan.DefaultProtect},
		{HostPath: parent, Target: "/src", Protect: plan.DefaultProtect},
	}}
	ops, err := Protect(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Target == "/src/proj/.git/config" && op.ReadOnly {
			return
		}
	}
	t.Errorf("the workspace's .git/config is writable through the second mount at /src/proj/.git/config ")
}

// TestProtectNestedMountPlaceholderAlias: with mount(".", "/workspace")
// and mount("./sub", "/sub"), the placeholders Protect makes for /sub
// (an empty .git/ when sub is not a repository) are read-only at /sub
// only: the agent fills sub/.git through /workspace/sub/.git (a config
// with core.fsmonitor, HEAD, objects, refs), RemovePlaceholders keeps the
// directory because it is no longer empty, and the user's next git
// status in sub, or a shell prompt that runs it, runs the agent's
// command. Each protected host path must be read-only in every writable
// mount that contains it.
func TestProtectNestedMountPlaceholderAlias(t *testing.T) {
	ws := t.TempDir()
	if err := os.Mkdir(filepath.Join(ws, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{Mounts: []plan.Mount{
		{HostPath: ws, Target: "/workspace", Protect: plan.DefaultProtect},
		{HostPath: filepath.Join(ws, "sub"), Target: "/sub", Protect: plan.DefaultProtect},
	}}
	st, err := Claim(filepath.Join(t.TempDir(), "state", "slug"))
	if err != nil {
		t.Fatal(err)
	}
	defer RemovePlaceholders(st.Dir)
	ops, err := Protect(p, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/sub/.git", "/workspace/sub/.git"} {
		if op, ok := opsByTarget(ops)[want]; !ok || !op.ReadOnly {
			t.Errorf("%s is writable by the agent", want)
		}
	}
}
