package gitgate

import (
	"bytes"
	"context"
	"crypto/rand"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

// requireGit skips the test when git is not installed.
func requireGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the gate runs the real git")
	}
}

// clientEnv is the environment of the test's git client: isolated from the
// machine's git config.
func clientEnv(home string) []string {
	return []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_AUTHOR_NAME=Agent", "GIT_AUTHOR_EMAIL=agent@example.com",
		"GIT_COMMITTER_NAME=Agent", "GIT_COMMITTER_EMAIL=agent@example.com",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	}
}

// gitRun runs git in dir and returns its combined output and error.
func gitRun(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = clientEnv(dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// gitOK runs git and fails the test if it fails.
func gitOK(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := gitRun(t, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// newUpstream makes a bare repository whose main branch has one commit, and
// returns its path.
func newUpstream(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	up := filepath.Join(root, "upstream.git")
	gitOK(t, root, "init", "--bare", "--initial-branch=main", up)
	seed := filepath.Join(root, "seed")
	gitOK(t, root, "init", "--initial-branch=main", seed)
	writeFile(t, seed, "README.md", "hello\n")
	gitOK(t, seed, "add", ".")
	gitOK(t, seed, "commit", "-m", "initial")
	gitOK(t, seed, "push", up, "main")
	return up
}

func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// commitFile writes a file and commits it.
func commitFile(t testing.TB, dir, name, content, msg string) string {
	t.Helper()
	writeFile(t, dir, name, content)
	gitOK(t, dir, "add", name)
	gitOK(t, dir, "commit", "-q", "-m", msg)
	return gitOK(t, dir, "rev-parse", "HEAD")
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testGate is a running gate.
type testGate struct {
	*Gate
	url string // http://127.0.0.1:port
	log *syncBuffer
}

// startGate serves a gate for the remotes on a loopback TCP listener.
func startGate(t testing.TB, remotes ...plan.GitRemote) *testGate {
	t.Helper()
	return startGateConfig(t, Config{Remotes: remotes})
}

// startGateConfig is startGate with more of the gate's configuration.
func startGateConfig(t testing.TB, cfg Config) *testGate {
	t.Helper()
	logb := &syncBuffer{}
	cfg.StateDir, cfg.Log = t.TempDir(), logb
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testGate{Gate: g, url: "http://" + l.Addr().String(), log: logb}
}

// cloneVia clones remote name through the gate the way the sandbox does:
// the upstream URL, rewritten onto the gate by url.<gate>.insteadOf.
func (tg *testGate) cloneVia(t testing.TB, name, upstreamURL string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "work")
	gitOK(t, filepath.Dir(dir), "-c", "url."+tg.url+RemotePath(name)+".insteadOf="+upstreamURL, "clone", "-q", upstreamURL, dir)
	gitOK(t, dir, "config", "url."+tg.url+RemotePath(name)+".insteadOf", upstreamURL)
	return dir
}

// randString returns n characters drawn from alphabet.
func randString(t testing.TB, alphabet string, n int) string {
	t.Helper()
	var b strings.Builder
	for range n {
		i, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteByte(alphabet[i.Int64()])
	}
	return b.String()
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	alnum       = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	digits      = "0123456789"
)

// Secrets are assembled at run time so that this repository's own files
// hold nothing a scanner would flag.
func fakeAWSKey(t testing.TB) string { return "AK" + "IA" + randString(t, upperDigits, 16) }
func fakeGitHubPAT(t testing.TB) string {
	return "gh" + "p_" + randString(t, alnum, 36)
}
func fakeSlackBot(t testing.TB) string {
	return "xo" + "xb-" + randString(t, digits, 12) + "-" + randString(t, digits, 12) + "-" + randString(t, alnum, 24)
}
func fakePrivateKey(t testing.TB) string {
	var b strings.Builder
	b.WriteString("-----BEGIN RSA PRIV" + "ATE KEY-----\n")
	for range 8 {
		b.WriteString(randString(t, alnum, 64) + "\n")
	}
	b.WriteString("-----END RSA PRIV" + "ATE KEY-----\n")
	return b.String()
}

// refOf returns the object ref names in the bare repository, or "" when it
// does not exist.
func refOf(t testing.TB, bare, ref string) string {
	t.Helper()
	out, err := gitRun(t, bare, "rev-parse", "--verify", "--quiet", ref)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// allRefs lists every ref of a repository with its value.
func allRefs(t testing.TB, bare string) string {
	t.Helper()
	return gitOK(t, bare, "for-each-ref", "--format=%(objectname) %(refname)")
}

// assertNoSecrets fails if any secret appears in any of the texts.
func assertNoSecrets(t testing.TB, secrets []string, texts ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, line := range strings.Split(s, "\n") {
			if len(line) < 12 || strings.Contains(line, "-----") {
				continue
			}
			for _, txt := range texts {
				if strings.Contains(txt, line) {
					t.Errorf("secret %q... leaked into output:\n%s", line[:8], txt)
				}
			}
		}
	}
}
