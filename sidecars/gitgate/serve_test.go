package gitgate

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

func TestFetchRefreshesFromUpstream(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	direct := filepath.Join(t.TempDir(), "direct")
	gitOK(t, filepath.Dir(direct), "clone", "-q", up, direct)
	gitOK(t, direct, "push", "-q", "origin", "main:refs/heads/doomed")
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	if gitOK(t, work, "branch", "-r", "--list", "origin/doomed") == "" {
		t.Fatal("first clone lacks the doomed branch")
	}
	// Upstream moves on without the gate: a new commit, a deleted branch.
	head := commitFile(t, direct, "direct.txt", "direct\n", "direct")
	gitOK(t, direct, "push", "-q", "origin", "main", ":doomed")
	gitOK(t, work, "fetch", "-q", "--prune", "origin")
	if got := gitOK(t, work, "rev-parse", "origin/main"); got != head {
		t.Errorf("origin/main = %s after fetch, want upstream's %s", got, head)
	}
	if got := gitOK(t, work, "branch", "-r", "--list", "origin/doomed"); got != "" {
		t.Errorf("branch deleted upstream still served: %q", got)
	}
}

func TestEmptyUpstreamShallowCloneAndTags(t *testing.T) {
	requireGit(t)
	root := t.TempDir()
	up := filepath.Join(root, "empty.git")
	gitOK(t, root, "init", "-q", "--bare", "--initial-branch=main", up)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)

	// The first commits of a repository: the root commit is scanned too.
	secret := fakeAWSKey(t)
	commitFile(t, work, "init.txt", "k="+secret+"\n", "root")
	refusedPush(t, tg, up, work, []string{"origin", "HEAD:refs/heads/main"}, []string{secret}, "aws-access-token", `"init.txt" line 1`)
	gitOK(t, work, "commit", "-q", "--amend", "-m", "root")
	writeFile(t, work, "init.txt", "clean\n")
	gitOK(t, work, "commit", "-q", "-a", "--amend", "-m", "root")
	for range 3 {
		commitFile(t, work, "more.txt", randString(t, alnum, 10)+"\n", "more")
	}
	gitOK(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	gitOK(t, work, "tag", "light")
	gitOK(t, work, "tag", "-a", "v1", "-m", "release one")
	gitOK(t, work, "push", "-q", "origin", "light", "v1")
	for _, tag := range []string{"light", "v1"} {
		if refOf(t, up, "refs/tags/"+tag) != gitOK(t, work, "rev-parse", tag) {
			t.Errorf("tag %s did not arrive", tag)
		}
	}

	// A shallow clone, as agents often make, can push through the gate.
	shallow := filepath.Join(t.TempDir(), "shallow")
	gitOK(t, filepath.Dir(shallow), "clone", "-q", "--depth", "1", tg.url+"/origin.git", shallow)
	head := commitFile(t, shallow, "s.txt", "s\n", "from shallow")
	gitOK(t, shallow, "push", "-q", "origin", "main")
	if got := refOf(t, up, "refs/heads/main"); got != head {
		t.Fatalf("upstream main = %s, want the shallow clone's %s", got, head)
	}
}

func TestServeUnixSocketAndRoutes(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	g, err := New(Config{Remotes: []plan.GitRemote{{Name: "origin", URL: up}}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "git-gate.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, l) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	cases := []struct {
		method, path string
		code         int
		ctype, body  string
	}{
		{"GET", "/origin.git/info/refs?service=git-upload-pack", 200, "application/x-git-upload-pack-advertisement", "# service=git-upload-pack"},
		{"GET", "/origin.git/info/refs?service=git-receive-pack", 200, "application/x-git-receive-pack-advertisement", "report-status"},
		{"GET", "/origin.git/info/refs", 403, "text/plain; charset=utf-8", "smart HTTP"},
		{"GET", "/other.git/info/refs?service=git-upload-pack", 404, "text/plain; charset=utf-8", "/origin.git"},
		{"GET", "/origin.git/HEAD", 404, "text/plain; charset=utf-8", "not part of"},
		{"POST", "/origin.git/git-receive-pack", 400, "text/plain; charset=utf-8", "pkt-line"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, "http://git-gate"+c.path, strings.NewReader("garbage"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || resp.Header.Get("Content-Type") != c.ctype || !strings.Contains(string(body), c.body) {
			t.Errorf("%s %s = %d %q %q, want %d %q containing %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.code, c.ctype, c.body)
		}
	}
}

func TestIncompletePushRefused(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	g, err := New(Config{Remotes: []plan.GitRemote{{Name: "origin", URL: up}}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := g.remotes["origin"]
	r.mu.Lock()
	if err := g.refresh(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	r.mu.Unlock()
	// A commit whose parent exists nowhere, as a crafted pack could carry.
	tree := gitOK(t, r.dir, "rev-parse", "main^{tree}")
	body := "tree " + tree + "\nparent " + strings.Repeat("1", 40) + "\nauthor a <a@b> 1 +0000\ncommitter a <a@b> 1 +0000\n\nx\n"
	q := t.TempDir()
	env := []string{"GIT_OBJECT_DIRECTORY=" + q, "GIT_ALTERNATE_OBJECT_DIRECTORIES=" + filepath.Join(r.dir, "objects")}
	out, err := g.run(context.Background(), gitCmd{dir: r.dir, env: env, stdin: strings.NewReader(body),
		args: []string{"hash-object", "-t", "commit", "-w", "--stdin"}}, credential{})
	if err != nil {
		t.Fatal(err)
	}
	c := &command{old: strings.Repeat("0", 40), new: strings.TrimSpace(string(out)), ref: "refs/heads/x"}
	if err := g.checkCommands(context.Background(), r, []*command{c}, env); err != nil {
		t.Fatal(err)
	}
	if c.reason != "missing necessary objects" {
		t.Fatalf("incomplete push: reason %q, want missing necessary objects", c.reason)
	}
}
