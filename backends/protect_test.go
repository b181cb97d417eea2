package backends

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

func protectPlan(ws string, extra ...string) *plan.Plan {
	list := append(slices.Clone(plan.DefaultProtect), extra...)
	slices.Sort(list)
	return &plan.Plan{Mounts: []plan.Mount{
		{HostPath: ws, Target: "/workspace", Protect: list},
		{HostPath: filepath.Join(ws, "ro"), Target: "/ro", ReadOnly: true},
	}}
}

func opsByTarget(ops []ProtectOp) map[string]ProtectOp {
	m := map[string]ProtectOp{}
	for _, op := range ops {
		m[op.Target] = op
	}
	return m
}

// TestProtectRepository: in a git repository, .git is pinned, the
// existing protected paths are read-only, and the missing ones get
// placeholders that host git tolerates and RemovePlaceholders takes away.
func TestProtectRepository(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	ws := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", ws).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	if err := os.Mkdir(filepath.Join(ws, ".vscode"), 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := Claim(filepath.Join(t.TempDir(), "state", "slug"))
	if err != nil {
		t.Fatal(err)
	}
	ops, err := Protect(protectPlan(ws, "secrets/key.pem"), st)
	if err != nil {
		t.Fatal(err)
	}
	got := opsByTarget(ops)
	want := map[string]bool{ // target -> read-only
		"/workspace/.git":                 false,
		"/workspace/.git/config":          true,
		"/workspace/.git/hooks":           true,
		"/workspace/.git/commondir":       true,
		"/workspace/.git/config.worktree": true,
		"/workspace/.git/modules":         true,
		"/workspace/.git/worktrees":       true,
		"/workspace/.gitmodules":          true,
		"/workspace/.envrc":               true,
		"/workspace/.mcp.json":            true,
		"/workspace/.claude":              true,
		"/workspace/.vscode":              true,
		"/workspace/.idea":                true,
		"/workspace/secrets":              true, // missing: the directory is the placeholder
	}
	for target, ro := range want {
		op, ok := got[target]
		if !ok {
			t.Errorf("no mount for %s", target)
			continue
		}
		if op.ReadOnly != ro {
			t.Errorf("%s: read-only %v, want %v", target, op.ReadOnly, ro)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d mounts, want %d: %+v", len(got), len(want), ops)
	}
	if ops[0].Target != "/workspace/.git" && strings.Count(ops[0].Target, "/") != 2 {
		t.Errorf("parents must come first: %+v", ops)
	}
	for i := 1; i < len(ops); i++ {
		if strings.Count(ops[i].Target, "/") < strings.Count(ops[i-1].Target, "/") {
			t.Errorf("mount %s after the deeper %s", ops[i].Target, ops[i-1].Target)
		}
	}
	// The placeholders exist now, and git on the host still works.
	if b, err := os.ReadFile(filepath.Join(ws, ".git", "commondir")); err != nil || string(b) != ".\n" {
		t.Errorf(".git/commondir placeholder: %q, %v", b, err)
	}
	if out, err := exec.Command("git", "-C", ws, "status", "--short").CombinedOutput(); err != nil {
		t.Errorf("git status with the placeholders: %v\n%s", err, out)
	}
	// Something the user put into a placeholder is kept.
	if err := os.WriteFile(filepath.Join(ws, ".envrc"), []byte("export A=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.Release(); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{".git/commondir", ".git/config.worktree", ".git/modules", ".git/worktrees", ".gitmodules", ".mcp.json", ".claude", ".idea", "secrets"} {
		if _, err := os.Lstat(filepath.Join(ws, gone)); err == nil {
			t.Errorf("placeholder %s left behind", gone)
		}
	}
	for _, kept := range []string{".envrc", ".vscode", ".git/config", ".git/hooks"} {
		if _, err := os.Lstat(filepath.Join(ws, kept)); err != nil {
			t.Errorf("%s was removed: %v", kept, err)
		}
	}
}

// TestProtectNotARepository: without .git, .git itself is the read-only
// placeholder, and nothing is created inside it.
func TestProtectNotARepository(t *testing.T) {
	ws := t.TempDir()
	st, err := Claim(filepath.Join(t.TempDir(), "slug"))
	if err != nil {
		t.Fatal(err)
	}
	ops, err := Protect(protectPlan(ws), st)
	if err != nil {
		t.Fatal(err)
	}
	got := opsByTarget(ops)
	if op, ok := got["/workspace/.git"]; !ok || !op.ReadOnly {
		t.Errorf(".git: %+v, want a read-only placeholder", op)
	}
	for target := range got {
		if strings.HasPrefix(target, "/workspace/.git/") {
			t.Errorf("mount inside the placeholder: %s", target)
		}
	}
	if des, _ := os.ReadDir(filepath.Join(ws, ".git")); len(des) != 0 {
		t.Errorf("the .git placeholder is not empty: %v", des)
	}
	st.Release()
	if _, err := os.Lstat(filepath.Join(ws, ".git")); err == nil {
		t.Error(".git placeholder left behind")
	}
}

// TestProtectGitFile: a .git file (a linked worktree or a submodule)
// names the git directory; it is read-only, so the agent cannot point it
// at a directory of its own.
func TestProtectGitFile(t *testing.T) {
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, ".git"), []byte("gitdir: /elsewhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ops, err := Protect(protectPlan(ws), nil)
	if err != nil {
		t.Fatal(err)
	}
	if op, ok := opsByTarget(ops)["/workspace/.git"]; !ok || !op.ReadOnly || op.Host != filepath.Join(ws, ".git") {
		t.Errorf(".git file: %+v", op)
	}
}

// TestProtectSymlink: a protected path, or a directory above one, that is
// a symbolic link is refused.
func TestProtectSymlink(t *testing.T) {
	for _, link := range []string{".claude", ".git"} {
		ws := t.TempDir()
		if err := os.Symlink(t.TempDir(), filepath.Join(ws, link)); err != nil {
			t.Fatal(err)
		}
		_, err := Protect(protectPlan(ws), nil)
		if !errors.Is(err, ErrProtectSymlink) {
			t.Errorf("%s as a symlink: %v, want ErrProtectSymlink", link, err)
		}
	}
}

// TestProtectHooksPath: a core.hooksPath inside the worktree (husky's
// .husky/_) is protected too.
func TestProtectHooksPath(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	ws := t.TempDir()
	for _, args := range [][]string{{"init", "-q", ws}, {"-C", ws, "config", "core.hooksPath", ".husky/_"}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(ws, ".husky", "_"), 0o755); err != nil {
		t.Fatal(err)
	}
	ops, err := Protect(protectPlan(ws), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := opsByTarget(ops)
	if op, ok := got["/workspace/.husky/_"]; !ok || !op.ReadOnly {
		t.Errorf("hooksPath .husky/_: %+v (all: %+v)", op, ops)
	}
	if op, ok := got["/workspace/.husky"]; !ok || op.ReadOnly {
		t.Errorf(".husky should be pinned: %+v", op)
	}
}

// TestProtectSubmodule: a checked-out submodule's .git (a file pointing
// into .git/modules/, or a directory) is protected, since git status on
// the host looks into it.
func TestProtectSubmodule(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	ws := t.TempDir()
	gitT(t, "init", "-q", ws)
	for _, sub := range []string{"file", "dir"} {
		p := filepath.Join(ws, sub)
		gitT(t, "init", "-q", p)
		gitT(t, "-C", p, "commit", "-q", "--allow-empty", "-m", "a")
		gitT(t, "-C", ws, "update-index", "--add", "--cacheinfo", "160000,"+gitT(t, "-C", p, "rev-parse", "HEAD")+","+sub)
	}
	// Turn the first into the usual layout: its git directory under
	// .git/modules, and a .git file pointing there.
	if err := os.MkdirAll(filepath.Join(ws, ".git", "modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(ws, "file", ".git"), filepath.Join(ws, ".git", "modules", "file")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "file", ".git"), []byte("gitdir: ../.git/modules/file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Gitlinks(ws); !slices.Equal(got, []string{"dir", "file"}) {
		t.Fatalf("Gitlinks = %q", got)
	}
	ops, err := Protect(protectPlan(ws), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := opsByTarget(ops)
	for target, ro := range map[string]bool{
		"/workspace/file/.git":       true,
		"/workspace/dir/.git":        false,
		"/workspace/dir/.git/config": true,
		"/workspace/dir/.git/hooks":  true,
		"/workspace/.git/modules":    true,
	} {
		if op, ok := got[target]; !ok || op.ReadOnly != ro {
			t.Errorf("%s: %+v (present %v), want read-only %v", target, op, ok, ro)
		}
	}
}

// TestPlaceholdersHandedOver: when two bottles of one state home share a
// workspace, the first to end leaves its placeholders to the other, whose
// read-only mounts of them would otherwise be lifted; the last one
// removes them.
func TestPlaceholdersHandedOver(t *testing.T) {
	ws, home := t.TempDir(), t.TempDir()
	a, err := Claim(filepath.Join(home, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Claim(filepath.Join(home, "b"))
	if err != nil {
		t.Fatal(err)
	}
	p := protectPlan(ws)
	planJSON, _ := json.Marshal(p)
	for _, st := range []*State{a, b} {
		if err := st.WriteFile(PlanFile, planJSON); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Protect(p, a); err != nil {
		t.Fatal(err)
	}
	if _, err := Protect(p, b); err != nil { // sees a's placeholders as existing
		t.Fatal(err)
	}
	envrc := filepath.Join(ws, ".envrc")
	a.Release()
	if _, err := os.Lstat(envrc); err != nil {
		t.Fatalf("the placeholder went while another bottle still mounts it: %v", err)
	}
	b.Release()
	if _, err := os.Lstat(envrc); err == nil {
		t.Error("the placeholder is left after both bottles ended")
	}
}

// TestProtectRefusesSetIDFiles: a setuid or setgid file the agent could
// write, anywhere under a writable mount, refuses the start; the same file
// under a read-only mount does not.
func TestProtectRefusesSetIDFiles(t *testing.T) {
	ws := t.TempDir()
	deep := filepath.Join(ws, "a", "b", "c", "d")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(deep, "prog")
	if err := os.WriteFile(f, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, 0o2755|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	_, err := Protect(protectPlan(ws), nil)
	if !errors.Is(err, ErrSetIDFile) || !strings.Contains(err.Error(), "prog") {
		t.Errorf("Protect: %v, want ErrSetIDFile naming prog", err)
	}
	ro := &plan.Plan{Mounts: []plan.Mount{{HostPath: ws, Target: "/ro", ReadOnly: true}}}
	if _, err := Protect(ro, nil); err != nil {
		t.Errorf("read-only mount: %v", err)
	}
}
