package docker_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	img := agentImage(t, "BOTTLE_TEST_CLAUDE_IMAGE")
	e := newEnv(t)
	profile := e.profile("claude-real.star", fmt.Sprintf(`
docker(image = %q)
agent(command = ["claude"], provider = "claude")
allow("api.anthropic.com", allow_private = True)
secret("ANTHROPIC_API_KEY", from_env = "TEST_ANTHROPIC_KEY", hosts = ["api.anthropic.com"])
sidecar("supervise")
`, img))
	slug := e.slugOf(profile)
	real := "sk-ant-api03-" + strings.Repeat("R3alK", 16)

	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	certFile, _ := upstreamCert(t, dir, "api.anthropic.com")
	if err := os.WriteFile(filepath.Join(dir, "apikey"), []byte(real+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	netName := "bottle-test-claude-" + slug
	exec.Command("docker", "network", "rm", netName).Run()
	dockerOut(t, "network", "create", netName)
	defer exec.Command("docker", "network", "rm", netName).Run()
	server := "bottle-test-claude-" + slug
	exec.Command("docker", "rm", "-f", server).Run()
	dockerOut(t, "run", "-d", "--name", server, "--network", netName, "--network-alias", "api.anthropic.com",
		"--mount", "type=bind,src="+dir+",dst=/srv,readonly", fixture.image,
		"/bin/mockapi", "-addr", ":443", "-cert", "/srv/cert.pem", "-key", "/srv/key.pem", "-key-file", "/srv/apikey")
	defer exec.Command("docker", "rm", "-f", server).Run()
	e.extra = append(e.extra, "BOTTLE_BUNDLE_NETWORK="+netName, "SSL_CERT_FILE="+certFile, "TEST_ANTHROPIC_KEY="+real)

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

	logs := dockerOut(t, "logs", server)
	var reqs []mockRequest
	for _, line := range strings.Split(logs, "\n") {
		var r mockRequest
		if json.Unmarshal([]byte(line), &r) == nil && r.Method != "" {
			reqs = append(reqs, r)
		}
	}
	messages := 0
	for _, r := range reqs {
		if !r.Authorized || r.Placeholder {
			t.Errorf("the mock got a request without the real key, or with a placeholder: %+v", r)
		}
		if r.Path == "/v1/messages" {
			messages++
		}
	}
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

// TestCodexInBottle runs the real Codex CLI (from the npm registry, in the
// image scripts/agent-image builds) in a docker bottle prepared by its
// provider, against a mock of the Responses API under api.openai.com: the
// answer comes back through its configured provider (bottle start
// --prompt runs codex exec), the mock got the real key and never the
// placeholder, its MCP server is listed, and nothing it tried was
// refused.
func TestCodexInBottle(t *testing.T) {
	img := agentImage(t, "BOTTLE_TEST_CODEX_IMAGE")
	e := newEnv(t)
	profile := e.profile("codex-real.star", fmt.Sprintf(`
docker(image = %q)
agent(command = ["codex"], provider = "codex")
allow("api.openai.com", allow_private = True)
secret("OPENAI_API_KEY", from_env = "TEST_OPENAI_KEY", hosts = ["api.openai.com"])
sidecar("supervise")
`, img))
	slug := e.slugOf(profile)
	real := "sk-proj-" + strings.Repeat("R3alK", 16)

	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	certFile, _ := upstreamCert(t, dir, "api.openai.com")
	if err := os.WriteFile(filepath.Join(dir, "apikey"), []byte(real+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	netName := "bottle-test-codex-" + slug
	exec.Command("docker", "network", "rm", netName).Run()
	dockerOut(t, "network", "create", netName)
	defer exec.Command("docker", "network", "rm", netName).Run()
	server := "bottle-test-codex-" + slug
	exec.Command("docker", "rm", "-f", server).Run()
	dockerOut(t, "run", "-d", "--name", server, "--network", netName, "--network-alias", "api.openai.com",
		"--mount", "type=bind,src="+dir+",dst=/srv,readonly", fixture.image,
		"/bin/mockapi", "-addr", ":443", "-cert", "/srv/cert.pem", "-key", "/srv/key.pem", "-key-file", "/srv/apikey")
	defer exec.Command("docker", "rm", "-f", server).Run()
	e.extra = append(e.extra, "BOTTLE_BUNDLE_NETWORK="+netName, "SSL_CERT_FILE="+certFile, "TEST_OPENAI_KEY="+real)

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
	logs := dockerOut(t, "logs", server)
	responses := 0
	for _, line := range strings.Split(logs, "\n") {
		var r mockRequest
		if json.Unmarshal([]byte(line), &r) != nil || r.Method == "" {
			continue
		}
		if !r.Authorized || r.Placeholder {
			t.Errorf("the mock got a request without the real key, or with a placeholder: %+v", r)
		}
		if r.Method == "POST" && r.Path == "/v1/responses" {
			responses++
		}
	}
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
