package gitgate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

// importCommits adds n commits on top of parent to branch in repo with one
// `git fast-import`, each adding a file of about 8 KiB of code-like text,
// and returns the new tip.
func importCommits(b *testing.B, repo, branch, parent string, n, seed int) string {
	return importCommitsOf(b, repo, branch, parent, n, seed, codeText)
}

// codeText is about 8 KiB of code-like text, different for each i.
func codeText(seed, i int) string {
	var body strings.Builder
	for l := range 200 {
		fmt.Fprintf(&body, "func handler%d_%d_%d(w http.ResponseWriter, r *http.Request) { log.Printf(%q, r.URL) }\n", seed, i, l, "req")
	}
	return body.String()
}

// binaryData is 8 KiB of pseudo-random bytes, NULs included: what git
// calls binary (a compiled file, an image).
func binaryData(seed, i int) string {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
	b := make([]byte, 8<<10)
	for j := range b {
		b[j] = byte(rng.Uint32())
	}
	return string(b)
}

// importCommitsOf is importCommits with the file content body(seed, i).
func importCommitsOf(b *testing.B, repo, branch, parent string, n, seed int, content func(seed, i int) string) string {
	b.Helper()
	var s strings.Builder
	for i := range n {
		body := content(seed, i)
		fmt.Fprintf(&s, "commit %s\nmark :%d\ncommitter Bench <b@example.com> %d +0000\ndata %d\n%s\n",
			branch, i+1, 1700000000+i, len("commit "), "commit ")
		if i == 0 {
			fmt.Fprintf(&s, "from %s\n", parent)
		}
		fmt.Fprintf(&s, "M 644 inline src/f%d_%d.go\ndata %d\n%s\n", seed, i, len(body), body)
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = repo
	cmd.Env = clientEnv(repo)
	cmd.Stdin = strings.NewReader(s.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("fast-import: %v\n%s", err, out)
	}
	return gitOK(b, repo, "rev-parse", branch)
}

// BenchmarkPush100Commits pushes 100 new commits (about 800 KiB of added
// lines) through the gate, scan included, and directly to the same kind of
// upstream (a bare repository reached over git's local transport).
func BenchmarkPush100Commits(b *testing.B) {
	requireGit(b)
	for _, mode := range []string{"gate", "direct"} {
		b.Run(mode, func(b *testing.B) {
			up := newUpstream(b)
			target := up
			work := filepath.Join(b.TempDir(), "work")
			gitOK(b, filepath.Dir(work), "clone", "-q", up, work)
			if mode == "gate" {
				tg := startGate(b, plan.GitRemote{Name: "origin", URL: up})
				target = tg.url + "/origin.git"
			}
			base := gitOK(b, work, "rev-parse", "HEAD")
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				branch := fmt.Sprintf("refs/heads/bench%d", i)
				importCommits(b, work, branch, base, 100, i)
				b.StartTimer()
				if out, err := gitRun(b, work, "push", "-q", target, branch); err != nil {
					b.Fatalf("push: %v\n%s", err, out)
				}
			}
		})
	}
}

// BenchmarkScan measures the secret scan alone on 100 new commits, each
// adding one 8 KiB file: listing the new objects, reading them and
// gitleaks. MB/s is of bytes given to the detector (decoded views
// included: binary data is also scanned with its NUL bytes removed).
func BenchmarkScan(b *testing.B) {
	requireGit(b)
	for _, kind := range []struct {
		name    string
		content func(seed, i int) string
	}{{"text", codeText}, {"binary", binaryData}} {
		b.Run(kind.name, func(b *testing.B) {
			up := newUpstream(b)
			g, err := New(Config{Remotes: []plan.GitRemote{{Name: "origin", URL: up}}, StateDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			repo := filepath.Join(b.TempDir(), "repo.git")
			gitOK(b, filepath.Dir(repo), "clone", "-q", "--bare", up, repo)
			base := gitOK(b, repo, "rev-parse", "main")
			tip := importCommitsOf(b, repo, "refs/heads/scan", base, 100, 0, kind.content)
			// Unreferenced, as a pushed commit is: reachable from no mirror ref.
			gitOK(b, repo, "update-ref", "-d", "refs/heads/scan")
			cmds := []*command{{old: strings.Repeat("0", 40), new: tip, ref: "refs/heads/scan", n: 1}}
			b.ResetTimer()
			var total int64
			for range b.N {
				findings, st, err := g.scanPush(context.Background(), repo, nil, cmds, DefaultMaxPushBytes)
				if err != nil || len(findings) != 0 || st.commits != 100 {
					b.Fatalf("scan: %v, %d findings %v, %d commits", err, len(findings), findings, st.commits)
				}
				total = st.bytes
			}
			b.SetBytes(total)
		})
	}
}
