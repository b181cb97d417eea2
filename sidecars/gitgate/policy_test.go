package gitgate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

func TestForcePushToProtectedBranchRefused(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up, Protected: []string{"main", "release/*"}})
	work := tg.cloneVia(t, "origin", up)
	before := refOf(t, up, "refs/heads/main")
	gitOK(t, work, "commit", "-q", "--amend", "-m", "rewritten")
	out, err := gitRun(t, work, "push", "--force", "origin", "main")
	if err == nil {
		t.Fatalf("force push to protected main succeeded:\n%s", out)
	}
	if !strings.Contains(out, "non-fast-forward (force) push to protected branch main is not allowed") {
		t.Errorf("output lacks the reason:\n%s", out)
	}
	if got := refOf(t, up, "refs/heads/main"); got != before {
		t.Fatalf("upstream main moved to %s", got)
	}

	// A pattern protects release branches; an unprotected branch may be
	// force-pushed.
	for _, b := range []string{"release/1.0", "scratch"} {
		gitOK(t, work, "checkout", "-q", "-b", b, "origin/main")
		commitFile(t, work, b+".txt", "v1\n", "first")
		gitOK(t, work, "push", "-q", "origin", b)
		gitOK(t, work, "commit", "-q", "--amend", "-m", "second")
		out, err := gitRun(t, work, "push", "--force", "origin", b)
		if b == "scratch" {
			if err != nil {
				t.Fatalf("force push to unprotected %s: %v\n%s", b, err, out)
			}
			if got, want := refOf(t, up, "refs/heads/"+b), gitOK(t, work, "rev-parse", "HEAD"); got != want {
				t.Fatalf("upstream %s = %s, want %s", b, got, want)
			}
		} else if err == nil || !strings.Contains(out, "protected branch "+b) {
			t.Fatalf("force push to %s: err=%v\n%s", b, err, out)
		}
	}
}

func TestDeleteProtectedBranchRefused(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up, Protected: []string{"main"}})
	work := tg.cloneVia(t, "origin", up)
	out, err := gitRun(t, work, "push", "origin", ":main")
	if err == nil {
		t.Fatalf("deleting protected main succeeded:\n%s", out)
	}
	if !strings.Contains(out, "deleting protected branch main is not allowed") {
		t.Errorf("output lacks the reason:\n%s", out)
	}
	if refOf(t, up, "refs/heads/main") == "" {
		t.Fatal("main was deleted upstream")
	}
	// Unprotected branches can be deleted.
	gitOK(t, work, "push", "-q", "origin", "main:refs/heads/tmp")
	gitOK(t, work, "push", "-q", "origin", ":tmp")
	if got := refOf(t, up, "refs/heads/tmp"); got != "" {
		t.Fatalf("tmp still upstream at %s", got)
	}
}

func TestOnlyBranchesAndTagsAccepted(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	out, err := gitRun(t, work, "push", "origin", "HEAD:refs/notes/x")
	if err == nil || !strings.Contains(out, "only accepts pushes to branches") {
		t.Fatalf("push to refs/notes: err=%v\n%s", err, out)
	}
}

func TestUpstreamUnreachableFailsClosed(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	commitFile(t, work, "x.txt", "x\n", "x")

	moved := up + ".away"
	if err := os.Rename(up, moved); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"fetch", "origin"}, {"push", "origin", "main"}, {"ls-remote", "origin"}} {
		out, err := gitRun(t, work, args...)
		if err == nil {
			t.Fatalf("git %s succeeded with upstream gone:\n%s", args[0], out)
		}
		if !strings.Contains(out, "remote: git gate: upstream of \"origin\" cannot be reached") {
			t.Errorf("git %s output lacks the gate's reason:\n%s", args[0], out)
		}
	}
	if err := os.Rename(moved, up); err != nil {
		t.Fatal(err)
	}
	gitOK(t, work, "push", "-q", "origin", "main")

	// A gate whose first contact with upstream fails has no mirror to serve.
	tg2 := startGate(t, plan.GitRemote{Name: "gone", URL: filepath.Join(t.TempDir(), "missing.git")})
	out, err := gitRun(t, t.TempDir(), "clone", tg2.url+"/gone.git", "c")
	if err == nil || !strings.Contains(out, "cannot be reached") {
		t.Fatalf("clone of unreachable upstream: err=%v\n%s", err, out)
	}
}

func TestCredentialNeverInOutputOrLog(t *testing.T) {
	requireGit(t)
	token := "tok" + randString(t, alnum, 30)
	t.Setenv("BOTTLE_TEST_GIT_TOKEN", token)
	// Port 1 on loopback refuses connections: the fetch fails after git
	// has been handed the credential.
	tg := startGate(t, plan.GitRemote{Name: "web", URL: "https://127.0.0.1:1/acme/app.git", TokenEnv: "BOTTLE_TEST_GIT_TOKEN"})
	out, err := gitRun(t, t.TempDir(), "clone", tg.url+"/web.git", "c")
	if err == nil {
		t.Fatalf("clone succeeded:\n%s", out)
	}
	if !strings.Contains(out, "cannot be reached") {
		t.Errorf("clone output lacks the reason:\n%s", out)
	}
	cred, err := credentialFor(tg.remotes["web"])
	if err != nil {
		t.Fatal(err)
	}
	if len(cred.secrets) != 2 {
		t.Fatalf("credential has %d secrets, want the token and its header", len(cred.secrets))
	}
	for _, s := range cred.secrets {
		if strings.Contains(out, s) || strings.Contains(tg.log.String(), s) {
			t.Errorf("credential leaked:\nclient: %s\nlog: %s", out, tg.log.String())
		}
	}
	if strings.Contains(cred.redact("x "+token+" y"), token) {
		t.Error("redact left the token")
	}
}

func TestSSHStrictHostKeyFailsClosed(t *testing.T) {
	requireGit(t)
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("ssh is not installed")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tg := startGate(t, plan.GitRemote{Name: "s", URL: "ssh://git@127.0.0.1:1/acme/app.git", SSHKey: key, KnownHosts: kh})
	out, err := gitRun(t, t.TempDir(), "clone", tg.url+"/s.git", "c")
	if err == nil || !strings.Contains(out, "cannot be reached") {
		t.Fatalf("clone over unreachable ssh: err=%v\n%s", err, out)
	}
}

func TestPreflight(t *testing.T) {
	requireGit(t)
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen is not installed")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte("github.com "+strings.Join(strings.Fields(string(pub))[:2], " ")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose")
	data, _ := os.ReadFile(key)
	if err := os.WriteFile(loose, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BOTTLE_TEST_SET", "x")
	t.Setenv("BOTTLE_TEST_EMPTY", "")
	up := newUpstream(t)

	good := []plan.GitRemote{
		{Name: "local", URL: up},
		{Name: "ssh", URL: "git@github.com:acme/app.git", SSHKey: key, KnownHosts: kh},
		{Name: "web", URL: "https://github.com/acme/app.git", TokenEnv: "BOTTLE_TEST_SET"},
	}
	g, err := New(Config{Remotes: good, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Preflight(); err != nil {
		t.Fatalf("Preflight of good remotes: %v", err)
	}

	bad := map[string]plan.GitRemote{
		"an ssh URL needs ssh_key":      {Name: "a", URL: "git@github.com:acme/app.git", KnownHosts: kh},
		"readable by others":            {Name: "b", URL: "ssh://git@github.com/acme/app.git", SSHKey: loose, KnownHosts: kh},
		"has no key for gitlab.com":     {Name: "c", URL: "git@gitlab.com:acme/app.git", SSHKey: key, KnownHosts: kh},
		"BOTTLE_TEST_EMPTY is empty":    {Name: "d", URL: "https://github.com/acme/app.git", TokenEnv: "BOTTLE_TEST_EMPTY"},
		"needs token_env":               {Name: "e", URL: "https://github.com/acme/app.git"},
		"upstream repository not found": {Name: "f", URL: filepath.Join(dir, "nope.git")},
		"over plain http":               {Name: "g", URL: "http://example.com/x.git", TokenEnv: "BOTTLE_TEST_SET"},
	}
	for want, r := range bad {
		g, err := New(Config{Remotes: []plan.GitRemote{r}, StateDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		err = g.Preflight()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Preflight(%s) = %v, want an error with %q", r.URL, err, want)
			continue
		}
		if strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), `remote "`+r.Name+`"`) {
			t.Errorf("Preflight error is not one line naming the remote: %q", err)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	requireGit(t)
	for _, r := range []plan.GitRemote{
		{Name: "../x", URL: "/tmp/x"},
		{Name: "x.git", URL: "/tmp/x"},
		{Name: "x", URL: "https://user:pass@example.com/x.git"},
		{Name: "x", URL: "ext::sh -c evil"},
		{Name: "x", URL: "ftp://example.com/x.git"},
	} {
		if _, err := New(Config{Remotes: []plan.GitRemote{r}, StateDir: t.TempDir()}); err == nil {
			t.Errorf("New accepted %+v", r)
		}
	}
	if _, err := New(Config{Remotes: []plan.GitRemote{{Name: "a", URL: "/x"}, {Name: "a", URL: "/y"}}, StateDir: t.TempDir()}); err == nil {
		t.Error("New accepted a duplicate remote name")
	}
}

func TestConcurrentPushes(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})

	// Different branches: both arrive.
	var works []string
	for range 2 {
		works = append(works, tg.cloneVia(t, "origin", up))
	}
	want := map[string]string{}
	for i, w := range works {
		b := []string{"left", "right"}[i]
		gitOK(t, w, "checkout", "-q", "-b", b)
		want[b] = commitFile(t, w, b+".txt", b+"\n", b)
	}
	outs := pushAll(t, works, func(i int) []string { return []string{"push", "origin", []string{"left", "right"}[i]} })
	for b, sha := range want {
		if got := refOf(t, up, "refs/heads/"+b); got != sha {
			t.Errorf("upstream %s = %q, want %q\n%s", b, got, sha, strings.Join(outs, "\n"))
		}
	}

	// The same branch: exactly one wins, the other is told to fetch first.
	works = works[:0]
	var heads []string
	for i := range 2 {
		w := tg.cloneVia(t, "origin", up)
		works = append(works, w)
		heads = append(heads, commitFile(t, w, "same.txt", string(rune('a'+i))+"\n", "race"))
	}
	outs = pushAll(t, works, func(int) []string { return []string{"push", "origin", "main"} })
	got := refOf(t, up, "refs/heads/main")
	if got != heads[0] && got != heads[1] {
		t.Fatalf("upstream main = %s, want one of the pushes:\n%s", got, strings.Join(outs, "\n"))
	}
	loser := outs[0]
	if got == heads[0] {
		loser = outs[1]
	}
	if !strings.Contains(loser, "fetch first") {
		t.Errorf("losing push was not told to fetch first:\n%s", loser)
	}
}

// pushAll runs one git command per work tree at the same time and returns
// their outputs.
func pushAll(t *testing.T, works []string, args func(int) []string) []string {
	t.Helper()
	outs := make([]string, len(works))
	var wg sync.WaitGroup
	for i, w := range works {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("git", args(i)...)
			cmd.Dir = w
			cmd.Env = clientEnv(w)
			out, _ := cmd.CombinedOutput()
			outs[i] = string(out)
		}()
	}
	wg.Wait()
	return outs
}
