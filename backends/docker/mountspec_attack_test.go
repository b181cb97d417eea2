package docker

import (
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
)

// TestProtectMountSpecsSurviveCommas: the --mount specs are joined with
// commas and docker reads them as one CSV record in which a later key
// overrides an earlier one. Submodule paths come from the index, which
// the agent writes, so a gitlink named "x,src=.." (checked out, with a
// .git) makes the next run's spec for it "src=<ws>/x,src=..,dst=...":
// docker binds the parent of bottle's working directory instead, or, as
// here with the submodule's .git op too, refuses to create the agent
// (every later run fails until the user finds the gitlink). Every field
// of every spec must read back as what bottle meant.
func TestProtectMountSpecsSurviveCommas(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	ws := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", ws)
	link := "x,src=.."
	sub := filepath.Join(ws, link)
	git("init", "-q", sub)
	git("-C", sub, "commit", "-q", "--allow-empty", "-m", "a")
	git("-C", ws, "update-index", "--add", "--cacheinfo", "160000,"+git("-C", sub, "rev-parse", "HEAD")+","+link)

	st, err := backends.Claim(filepath.Join(t.TempDir(), "state", "slug"))
	if err != nil {
		t.Fatal(err)
	}
	defer backends.RemovePlaceholders(st.Dir)
	b := &backends.Bottle{Plan: &plan.Plan{Mounts: []plan.Mount{{HostPath: ws, Target: "/workspace", Protect: plan.DefaultProtect}}}, State: st}
	args, err := protectMounts(b)
	if err != nil {
		// Refusing such a path is a fix too.
		t.Skipf("refused: %v", err)
	}
	ops, err := backends.Protect(b.Plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(args); i += 2 {
		op := ops[i/2]
		// As docker/cli opts.MountOpt.Set reads it.
		fields, err := csv.NewReader(strings.NewReader(args[i])).Read()
		if err != nil {
			t.Errorf("spec %q does not parse: %v", args[i], err)
			continue
		}
		got := map[string]string{}
		for _, f := range fields {
			k, v, _ := strings.Cut(f, "=")
			got[k] = v
		}
		if got["src"] != op.Host || got["dst"] != op.Target {
			t.Errorf("spec %q: docker reads src=%q dst=%q, want %q and %q", args[i], got["src"], got["dst"], op.Host, op.Target)
		}
	}
}
