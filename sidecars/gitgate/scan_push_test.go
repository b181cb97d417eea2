package gitgate

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

// refusedPush pushes and checks that the gate refused it: git failed, the
// output names the expected rule, path and line, upstream's refs did not
// change, and no secret reached the output or the gate's log.
func refusedPush(t *testing.T, tg *testGate, up, work string, pushArgs []string, secrets []string, want ...string) string {
	t.Helper()
	before := allRefs(t, up)
	out, err := gitRun(t, work, append([]string{"push"}, pushArgs...)...)
	if err == nil {
		t.Fatalf("push succeeded, want it refused:\n%s", out)
	}
	if !strings.Contains(out, "PUSH REFUSED") || !strings.Contains(out, "[remote rejected]") {
		t.Errorf("push output lacks the refusal:\n%s", out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("push output lacks %q:\n%s", w, out)
		}
	}
	if after := allRefs(t, up); after != before {
		t.Errorf("upstream refs changed:\nbefore %s\nafter  %s", before, after)
	}
	assertNoSecrets(t, secrets, out, tg.log.String())
	if !strings.Contains(tg.log.String(), `"msg":"push refused"`) {
		t.Errorf("log lacks the refusal:\n%s", tg.log.String())
	}
	return out
}

func TestSecretsRefused(t *testing.T) {
	requireGit(t)
	cases := []struct {
		rule    string
		secret  func(testing.TB) string
		content func(s string) string
		line    int
	}{
		{"aws-access-token", fakeAWSKey, func(s string) string { return "# prod\nregion=eu-west-1\naws_access_key_id=" + s + "\n" }, 3},
		{"github-pat", fakeGitHubPAT, func(s string) string { return "const token = \"" + s + "\"\n" }, 1},
		{"slack-bot-token", fakeSlackBot, func(s string) string { return "a\nb\nc\nd\nSLACK=" + s + "\n" }, 5},
		{"private-key", func(t testing.TB) string { return fakePrivateKey(t) }, func(s string) string { return "x\n" + s }, 2},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			up := newUpstream(t)
			tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
			work := tg.cloneVia(t, "origin", up)
			secret := tc.secret(t)
			commitFile(t, work, "clean.txt", "nothing to see\n", "clean first")
			sha := commitFile(t, work, "conf/settings.env", tc.content(secret), "add settings")
			commitFile(t, work, "later.txt", "after\n", "clean after")
			refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret},
				tc.rule, fmt.Sprintf(`"conf/settings.env" line %d of commit %s`, tc.line, sha[:12]),
				"ng", "secret scan found")
		})
	}
}

func TestSecretOnNewBranch(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	gitOK(t, work, "checkout", "-q", "-b", "topic")
	secret := fakeAWSKey(t)
	commitFile(t, work, "a.txt", "key="+secret+"\n", "leak")
	commitFile(t, work, "b.txt", "fine\n", "fine")
	refusedPush(t, tg, up, work, []string{"origin", "topic"}, []string{secret}, "aws-access-token", `"a.txt" line 1`)
	if got := refOf(t, up, "refs/heads/topic"); got != "" {
		t.Fatalf("topic exists upstream at %s", got)
	}
}

func TestSecretInMergeResolution(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	gitOK(t, work, "checkout", "-q", "-b", "side")
	commitFile(t, work, "README.md", "hello from side\n", "side edit")
	gitOK(t, work, "checkout", "-q", "main")
	commitFile(t, work, "README.md", "hello from main\n", "main edit")
	if out, err := gitRun(t, work, "merge", "side"); err == nil {
		t.Fatalf("merge did not conflict:\n%s", out)
	}
	secret := fakeGitHubPAT(t)
	writeFile(t, work, "README.md", "hello from both\ntoken="+secret+"\n")
	gitOK(t, work, "add", "README.md")
	gitOK(t, work, "commit", "-q", "--no-edit")
	merge := gitOK(t, work, "rev-parse", "HEAD")
	// Neither parent holds the secret; only the merge commit does.
	for _, p := range []string{"HEAD^1", "HEAD^2"} {
		if strings.Contains(gitOK(t, work, "show", p+":README.md"), secret) {
			t.Fatalf("test setup: parent %s holds the secret", p)
		}
	}
	refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret},
		"github-pat", `"README.md" line 2 of commit `+merge[:12])
}

func TestEvilMergeWithoutConflict(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	gitOK(t, work, "checkout", "-q", "-b", "side")
	commitFile(t, work, "side.txt", "side\n", "side")
	gitOK(t, work, "checkout", "-q", "main")
	commitFile(t, work, "main.txt", "main\n", "main")
	gitOK(t, work, "merge", "--no-commit", "--no-ff", "side")
	secret := fakeSlackBot(t)
	writeFile(t, work, "main.txt", "main\nslack="+secret+"\n")
	gitOK(t, work, "add", "main.txt")
	gitOK(t, work, "commit", "-q", "--no-edit")
	refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret}, "slack-bot-token", `"main.txt" line 2`)
}

// TestMergeOfUpstreamHistoryNotRescanned: a secret already upstream (pushed
// there without the gate) is not "new" when a merge brings it into another
// branch; the gate scans what a push adds, not what upstream already has.
func TestMergeOfUpstreamHistoryNotRescanned(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	direct := filepath.Join(t.TempDir(), "direct")
	gitOK(t, filepath.Dir(direct), "clone", "-q", up, direct)
	gitOK(t, direct, "checkout", "-q", "-b", "legacy")
	commitFile(t, direct, "old.env", "key="+fakeAWSKey(t)+"\n", "legacy secret")
	gitOK(t, direct, "push", "-q", "origin", "legacy")

	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	commitFile(t, work, "new.txt", "new\n", "new work")
	gitOK(t, work, "merge", "-q", "--no-edit", "origin/legacy")
	out := gitOK(t, work, "push", "origin", "main")
	if got, want := refOf(t, up, "refs/heads/main"), gitOK(t, work, "rev-parse", "HEAD"); got != want {
		t.Fatalf("upstream main = %s, want %s:\n%s", got, want, out)
	}
}

func TestAllowCommentsAndIgnoreFilesNotHonoured(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	secret := fakeAWSKey(t)
	sha := commitFile(t, work, "app.py", "KEY = \""+secret+"\"  # gitleaks:allow\n", "allowed?")
	// A .gitleaksignore naming the finding's fingerprint, in the pushed
	// tree and in the directory the gate runs in, must not help either.
	fp := sha + ":app.py:aws-access-token:1\napp.py:aws-access-token:1\n"
	commitFile(t, work, ".gitleaksignore", fp, "ignore it")
	writeFile(t, work, ".gitleaks.toml", "[allowlist]\npaths = ['''.*''']\n")
	gitOK(t, work, "add", ".gitleaks.toml")
	gitOK(t, work, "commit", "-q", "-m", "config")
	refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret}, "aws-access-token", `"app.py" line 1`)

	// The detector itself is configured to report gitleaks:allow lines.
	if !tg.scanner.det.IgnoreGitleaksAllow {
		t.Error("detector honours gitleaks:allow")
	}
}

func TestPathAllowlistsAndAttributesDoNotHideSecrets(t *testing.T) {
	requireGit(t)
	for _, name := range []string{"logo.png", "node_modules/pkg/index.js", "go.sum", "vendor/modules.txt", "gitleaks.toml"} {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			up := newUpstream(t)
			tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
			work := tg.cloneVia(t, "origin", up)
			secret := fakeGitHubPAT(t)
			commitFile(t, work, ".gitattributes", "* -diff -text binary\n", "attributes")
			commitFile(t, work, name, "t="+secret+"\n", "hide")
			refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret}, "github-pat", fmt.Sprintf("%q line 1", name))
		})
	}
}

func TestSecretInCommitMessageAndTag(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	secret := fakeGitHubPAT(t)
	writeFile(t, work, "f.txt", "x\n")
	gitOK(t, work, "add", "f.txt")
	gitOK(t, work, "commit", "-q", "-m", "subject\n\nused "+secret+" here")
	refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret}, "github-pat", "in the message line 3")

	gitOK(t, work, "reset", "-q", "--hard", "origin/main")
	secret2 := fakeAWSKey(t)
	gitOK(t, work, "tag", "-a", "v1", "-m", "release "+secret2)
	refusedPush(t, tg, up, work, []string{"origin", "v1"}, []string{secret2}, "aws-access-token")
}

func TestRuleFindingsNeverIncludeSecretInLog(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	secrets := []string{fakeAWSKey(t), fakeGitHubPAT(t), fakeSlackBot(t), fakePrivateKey(t)}
	commitFile(t, work, "all.txt", strings.Join(secrets, "\n")+"\n", "everything")
	out := refusedPush(t, tg, up, work, []string{"origin", "main"}, secrets,
		"aws-access-token", "github-pat", "slack-bot-token", "private-key")
	if n := len(regexp.MustCompile(`(?m)^remote: git-gate:   `).FindAllString(out, -1)); n != 4 {
		t.Errorf("%d finding lines, want 4:\n%s", n, out)
	}
	// The mirror keeps nothing of a refused push.
	mirror := filepath.Join(tg.remotes["origin"].dir, "objects")
	entries, err := os.ReadDir(mirror)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "incoming-") {
			t.Errorf("quarantine %s left in the mirror", e.Name())
		}
	}
	if out, err := gitRun(t, tg.remotes["origin"].dir, "cat-file", "-e", gitOK(t, work, "rev-parse", "HEAD")); err == nil {
		t.Errorf("refused commit is in the mirror: %s", out)
	}
}
