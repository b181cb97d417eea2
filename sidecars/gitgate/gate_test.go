package gitgate

import (
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

func TestCleanPushArrivesUpstream(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up, Protected: []string{"main"}})
	work := tg.cloneVia(t, "origin", up)
	if got := gitOK(t, work, "log", "--format=%s"); got != "initial" {
		t.Fatalf("clone through the gate: log = %q, want the upstream's commit", got)
	}
	head := commitFile(t, work, "src/main.go", "package main\n\nfunc main() {}\n", "add main")
	out := gitOK(t, work, "push", "origin", "main")
	if got := refOf(t, up, "refs/heads/main"); got != head {
		t.Fatalf("upstream main = %q, want %q; push output:\n%s", got, head, out)
	}
	if !strings.Contains(out, "secret scan clean") {
		t.Errorf("push output lacks the gate's scan line:\n%s", out)
	}
	// A new branch arrives too, and a second clone sees both.
	gitOK(t, work, "checkout", "-q", "-b", "feature")
	feat := commitFile(t, work, "docs/x.md", "notes\n", "docs")
	gitOK(t, work, "push", "origin", "feature")
	if got := refOf(t, up, "refs/heads/feature"); got != feat {
		t.Fatalf("upstream feature = %q, want %q", got, feat)
	}
	other := tg.cloneVia(t, "origin", up)
	if got := gitOK(t, other, "rev-parse", "origin/feature"); got != feat {
		t.Fatalf("second clone: origin/feature = %q, want %q", got, feat)
	}
	if !strings.Contains(tg.log.String(), `"msg":"push forwarded"`) {
		t.Errorf("log lacks the forwarded push:\n%s", tg.log.String())
	}
}
