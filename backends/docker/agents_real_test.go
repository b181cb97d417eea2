package docker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// agentImage is the agent image CI builds with scripts/agent-image and
// names in env; without it the test skips, except in CI.
func agentImage(t *testing.T, env string) string {
	t.Helper()
	img := os.Getenv(env)
	if img == "" {
		if os.Getenv("BOTTLE_CI") != "" {
			t.Fatalf("%s is not set; .ci/run builds it with scripts/agent-image", env)
		}
		t.Skipf("skipping: needs a real agent image; build one with scripts/agent-image and set %s", env)
	}
	if err := exec.Command("docker", "image", "inspect", img).Run(); err != nil {
		t.Fatalf("%s=%q is not an image; build it with scripts/agent-image", env, img)
	}
	return img
}

// mockRequest is one line of mockapi's log.
type mockRequest struct {
	Method      string   `json:"method"`
	Path        string   `json:"path"`
	Host        string   `json:"host"`
	Authorized  bool     `json:"authorized"`
	Placeholder bool     `json:"placeholder"`
	Tools       []string `json:"tools"`
}

// keyedRequests reads the requests mockapi logged in container, fails t
// for any that came without the real key or with a placeholder, and
// returns how many were POSTs to path, and the log.
func keyedRequests(t testing.TB, container, path string) (int, string) {
	t.Helper()
	logs := dockerOut(t, "logs", container)
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		var r mockRequest
		if json.Unmarshal([]byte(line), &r) != nil || r.Method == "" {
			continue
		}
		if !r.Authorized || r.Placeholder {
			t.Errorf("the mock got a request without the real key, or with a placeholder: %+v", r)
		}
		if r.Method == "POST" && r.Path == path {
			n++
		}
	}
	return n, logs
}

// TestClaudeCodeInBottle runs the real Claude Code CLI (from the npm
// registry, in the image scripts/agent-image builds) in a docker bottle
// prepared by its provider, against a mock of the Messages API served
// under its real name, api.anthropic.com, on a network only the bundle
// joins. The answer comes back in -p mode (bottle start --prompt); the
// mock got the real key and never the placeholder the agent holds; -p
// mode calls supervise's current_policy with no flag and no prompt; and
// nothing the client tried was refused, so the library's host list is
// all it needs.
func TestClaudeCodeInBottle(t *testing.T) {
	e, profile, slug, real, server := realAgentBottle(t, "claude", "claude-real.star")
	env, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c", "echo KEY=$ANTHROPIC_API_KEY")
	if code != 0 || !strings.Contains(env, "KEY=sk-ant-api03-BOTTLEPH") || strings.Contains(env, real) {
		t.Errorf("the agent's environment: exit %d\n%s\n%s", code, env, stderr)
	}
	out, stderr, code := e.run("start", "--yes", "--prompt", "say hi", profile)
	if code != 0 || !strings.Contains(out, "PONG-from-the-mock") {
		t.Fatalf("claude -p: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	out, stderr, code = e.run("start", "--yes", "--prompt", "CALL-POLICY: call the current_policy tool and report it", profile)
	if code != 0 || !strings.Contains(out, "POLICY-SEEN") || !strings.Contains(out, "api.anthropic.com") {
		t.Errorf("claude -p did not call current_policy through supervise: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}

	messages, logs := keyedRequests(t, server, "/v1/messages")
	if messages < 3 {
		t.Errorf("%d Messages API requests, want at least 3:\n%s", messages, logs)
	}
	if strings.Contains(out+stderr, real) {
		t.Error("bottle's output shows the key")
	}
	// The proxy substituted the key on the way to the API, and every host
	// the client tried was allowed: none was refused (the last run's
	// history).
	hist, err := os.ReadFile(filepath.Join(e.dir, "state", "bottle", ".history", slug, "egress.jsonl"))
	if err != nil || !strings.Contains(string(hist), `"host":"api.anthropic.com"`) || !strings.Contains(string(hist), `"substituted":["ANTHROPIC_API_KEY"]`) {
		t.Errorf("the egress history lacks the substituted requests to the API (%v):\n%s", err, hist)
	}
	if strings.Contains(string(hist), `"allowed":false`) {
		t.Errorf("the client tried what its library does not allow:\n%s", hist)
	}
}

// realProviders are the real clients' settings: the image's variable,
// the API's host, the secret the client reads, the variable the test key
// is in, and the key's scheme prefix.
var realProviders = map[string]struct{ imageEnv, host, secret, keyEnv, prefix string }{
	"claude": {"BOTTLE_TEST_CLAUDE_IMAGE", "api.anthropic.com", "ANTHROPIC_API_KEY", "TEST_ANTHROPIC_KEY", "sk-ant-api03-"},
	"codex":  {"BOTTLE_TEST_CODEX_IMAGE", "api.openai.com", "OPENAI_API_KEY", "TEST_OPENAI_KEY", "sk-proj-"},
}

// realAgentBottle writes profile file for provider's real client (its
// shipped library's rules with allow_private, the mock being on a private
// network, and supervise) and starts the mock API; it returns the env,
// the profile, its slug, the real key and the mock's container.
func realAgentBottle(t *testing.T, provider, file string) (e *env, profile, slug, key, mock string) {
	t.Helper()
	rp := realProviders[provider]
	img := agentImage(t, rp.imageEnv)
	e = newEnv(t)
	profile = e.profile(file, fmt.Sprintf(`
docker(image = %q)
agent(command = [%q], provider = %q)
allow(%q, allow_private = True)
secret(%q, from_env = %q, hosts = [%q])
sidecar("supervise")
`, img, provider, provider, rp.host, rp.secret, rp.keyEnv, rp.host))
	slug = e.slugOf(profile)
	key, mock = startMockAPI(t, e, slug, rp.host, rp.keyEnv, rp.prefix)
	return e, profile, slug, key, mock
}

// startMockAPI runs mockapi under name on a network only the bundle
// joins, with a certificate the bundle trusts, wanting a key it makes (in
// envName for the profile's secret); it returns the key and the mock's
// container.
func startMockAPI(t testing.TB, e *env, slug, name, envName, prefix string) (key, container string) {
	t.Helper()
	key = prefix + strings.Repeat("R3alK", 16)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	certFile := caAndLeaf(t, dir, name)
	if err := os.WriteFile(filepath.Join(dir, "apikey"), []byte(key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	container = "bottle-test-mock-" + slug
	exec.Command("docker", "rm", "-f", container).Run()
	exec.Command("docker", "network", "rm", container).Run()
	dockerOut(t, "network", "create", container)
	t.Cleanup(func() { exec.Command("docker", "network", "rm", container).Run() })
	dockerOut(t, "run", "-d", "--name", container, "--network", container, "--network-alias", name,
		"--mount", "type=bind,src="+dir+",dst=/srv,readonly", fixture.image,
		"/bin/mockapi", "-addr", ":443", "-cert", "/srv/cert.pem", "-key", "/srv/key.pem", "-key-file", "/srv/apikey")
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", container).Run() })
	e.extra = append(e.extra, "BOTTLE_BUNDLE_NETWORK="+container, "SSL_CERT_FILE="+certFile, envName+"="+key)
	return key, container
}

// caAndLeaf writes a CA (ca.pem) and a certificate for name it signed
// (cert.pem, key.pem) to dir, and returns the CA's file. Clients on
// rustls (Codex) refuse a self-signed CA certificate as a server's.
func caAndLeaf(t testing.TB, dir, name string) string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agents test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o644)
	return caFile
}

// TestClaudeCodeInteractive drives the real Claude Code on a terminal in a
// docker bottle, with a HOME as fresh as at every start: the first screen
// is its prompt (no theme, API-key, security-notes or folder-trust screen,
// no login), and a prompt typed there gets the mock's answer.
func TestClaudeCodeInteractive(t *testing.T) {
	e, profile, _, _, _ := realAgentBottle(t, "claude", "claude-tty.star")

	cmd := e.command("start", "--yes", profile)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait(); tty.Close() }()
	var mu sync.Mutex
	var screen strings.Builder
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func() string { mu.Lock(); defer mu.Unlock(); return screen.String() }
	waitFor(t, "Claude Code's prompt", 90*time.Second, func() bool { return strings.Contains(seen(), "❯") })
	for _, s := range []string{"Choose the text style", "Do you want to use this API key", "Security notes",
		"Do you trust the files", "trust this folder", "Select login method", "Unable to connect"} {
		if strings.Contains(seen(), s) {
			t.Errorf("a first-run screen came up (%q):\n%s", s, seen())
		}
	}
	// Give the session a moment to settle, then type a prompt.
	time.Sleep(2 * time.Second)
	io.WriteString(tty, "say hi")
	time.Sleep(300 * time.Millisecond)
	io.WriteString(tty, "\r")
	waitFor(t, "the mock's answer", 60*time.Second, func() bool { return strings.Contains(seen(), "PONG-from-the-mock") })
}

// TestCodexInBottle runs the real Codex CLI (from the npm registry, in the
// image scripts/agent-image builds) in a docker bottle prepared by its
// provider, against a mock of the Responses API under api.openai.com: the
// answer comes back through its configured provider (bottle start
// --prompt runs codex exec), the mock got the real key and never the
// placeholder, its MCP server is listed, and nothing it tried was
// refused.
func TestCodexInBottle(t *testing.T) {
	e, profile, slug, _, server := realAgentBottle(t, "codex", "codex-real.star")
	list, stderr, code := e.run("start", "--yes", profile, "--", "codex", "mcp", "list")
	if code != 0 || !strings.Contains(list, "supervise") || !strings.Contains(list, "http://127.0.0.1:8765/mcp") {
		t.Errorf("codex mcp list: exit %d\n%s\n%s", code, list, stderr)
	}
	out, stderr, code := e.run("start", "--yes", "--prompt", "say hi", profile)
	if code != 0 || !strings.Contains(out, "PONG-from-the-mock") {
		t.Fatalf("codex exec: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	if strings.Contains(stderr, "bubblewrap") || strings.Contains(stderr, "bwrap") {
		t.Errorf("codex warned about its own sandbox:\n%s", stderr)
	}
	responses, logs := keyedRequests(t, server, "/v1/responses")
	if responses == 0 {
		t.Errorf("no Responses API request reached the mock:\n%s", logs)
	}
	hist, err := os.ReadFile(filepath.Join(e.dir, "state", "bottle", ".history", slug, "egress.jsonl"))
	if err != nil || !strings.Contains(string(hist), `"substituted":["OPENAI_API_KEY"]`) {
		t.Errorf("the egress history lacks the substituted requests to the API (%v):\n%s", err, hist)
	}
	if strings.Contains(string(hist), `"allowed":false`) {
		t.Errorf("Codex tried what its library does not allow:\n%s", hist)
	}
}
