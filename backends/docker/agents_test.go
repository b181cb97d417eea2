package docker_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentHomeFiles: the agent's provider renders its configuration into
// HOME at launch, with the placeholder of a key bound to the API host
// approved and never the key itself; a one-off command of another program
// gets none of it.
func TestAgentHomeFiles(t *testing.T) {
	e := newEnv(t)
	const key = "sk-ant-api03-realkeyrealkeyrealkeyrealkey0123456789"
	e.extra = append(e.extra, "BOTTLE_TEST_KEY="+key)
	profile := e.profile("agent.star", `
docker(image = "AGENT_IMAGE")
agent(command = ["sh", "-c", "echo KEY=$ANTHROPIC_API_KEY; cat $HOME/.claude.json $HOME/.claude/settings.json; stat -c MODE=%a $HOME/.claude.json"], provider = "claude")
allow("api.anthropic.com")
secret("ANTHROPIC_API_KEY", from_env = "BOTTLE_TEST_KEY", hosts = ["api.anthropic.com"])
sidecar("supervise")
`)
	out, stderr, code := e.run("start", "--yes", profile)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	placeholder := ""
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "KEY="); ok {
			placeholder = strings.TrimSpace(v)
		}
	}
	if !strings.Contains(placeholder, "BOTTLEPH") {
		t.Fatalf("the agent's key is %q, want a placeholder\n%s", placeholder, out)
	}
	for _, want := range []string{
		`"hasCompletedOnboarding": true`,
		`"` + placeholder[len(placeholder)-20:] + `"`,
		`"/workspace": {`,
		`"url": "http://127.0.0.1:8765/mcp"`,
		`"mcp__supervise"`,
		`"DISABLE_AUTOUPDATER": "1"`,
		"MODE=600",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the agent's HOME lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, key[len(key)-20:]) {
		t.Errorf("the real key's end is in the agent's files:\n%s", out)
	}

	out, stderr, code = e.run("start", "--yes", profile, "--", "sh", "-c", "ls -a $HOME; echo done")
	if code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("one-off: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	if strings.Contains(out, ".claude") {
		t.Errorf("a one-off command of another program got the agent's files:\n%s", out)
	}
}

// TestCodexHomeFiles: Codex's configuration is in its HOME, readable as
// the agent's user, with the sidecars' MCP server registered.
func TestCodexHomeFiles(t *testing.T) {
	e := newEnv(t)
	e.extra = append(e.extra, "BOTTLE_TEST_KEY=sk-test-0123456789abcdef0123456789")
	profile := e.profile("codex.star", `
docker(image = "AGENT_IMAGE")
agent(command = ["codex"], provider = "codex")
allow("api.openai.com")
secret("OPENAI_API_KEY", from_env = "BOTTLE_TEST_KEY", hosts = ["api.openai.com"])
sidecar("supervise")
`)
	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c", "cat $HOME/.codex/config.toml 2>&1; echo done")
	if code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	if strings.Contains(out, "model_provider") {
		t.Fatalf("a one-off command of another program got Codex's files:\n%s", out)
	}
	profile = e.profile("codex-cat.star", `
docker(image = "AGENT_IMAGE")
agent(command = ["sh", "-c", "cat $HOME/.codex/config.toml; stat -c MODE=%a $HOME/.codex/config.toml"], provider = "codex")
allow("api.openai.com")
secret("OPENAI_API_KEY", from_env = "BOTTLE_TEST_KEY", hosts = ["api.openai.com"])
sidecar("supervise")
`)
	out, stderr, code = e.run("start", "--yes", profile)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	for _, want := range []string{`sandbox_mode = 'danger-full-access'`, `env_key = 'OPENAI_API_KEY'`, `supports_websockets = false`,
		`url = 'http://127.0.0.1:8765/mcp'`, `default_tools_approval_mode = 'approve'`, "MODE=600"} {
		if !strings.Contains(out, want) {
			t.Errorf("Codex's config lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "0123456789abcdef") {
		t.Errorf("the key is in Codex's config:\n%s", out)
	}
}

// keptHomeBottle makes a workspace and a profile with a persistent HOME whose
// agent runs /workspace/step.sh, and returns a function running one start
// with the given script.
func keptHomeBottle(t *testing.T, e *env, extra string) (ws string, step func(script string) (string, string, int)) {
	t.Helper()
	ws = filepath.Join(e.dir, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	profile := e.profile("kept.star", `
docker(image = "AGENT_IMAGE")
mount("./ws", "/workspace")
agent(command = ["sh", "/workspace/step.sh"], provider = "claude", home = "persistent")
`+extra)
	return ws, func(script string) (string, string, int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(ws, "step.sh"), []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		return e.run("start", "--yes", profile)
	}
}

// TestPersistentHome: with agent(home = "persistent") what the agent
// writes in HOME is there at the next start, in a 0700 directory of the
// user's beside the state directories, and the provider's JSON files are
// merged into what the agent kept, not replaced.
func TestPersistentHome(t *testing.T) {
	e := newEnv(t)
	_, run := keptHomeBottle(t, e, "")
	step := func(script string) string {
		t.Helper()
		out, stderr, code := run(script)
		if code != 0 {
			t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, stderr)
		}
		return out
	}
	out := step(`test -e $HOME/marker && echo SEEN-BEFORE
echo kept > $HOME/marker
sed -i 's/^{/{"numStartups": 41,/' $HOME/.claude.json
echo first-done
`)
	if strings.Contains(out, "SEEN-BEFORE") || !strings.Contains(out, "first-done") {
		t.Fatalf("first start: %s", out)
	}
	out = step(`cat $HOME/marker $HOME/.claude.json
`)
	for _, want := range []string{"kept", `"numStartups": 41`, `"hasCompletedOnboarding": true`} {
		if !strings.Contains(out, want) {
			t.Errorf("second start lacks %s:\n%s", want, out)
		}
	}
	homes, _ := filepath.Glob(filepath.Join(e.dir, "state", "bottle-homes", "kept-*"))
	if len(homes) != 1 {
		t.Fatalf("persistent homes: %v", homes)
	}
	if fi, err := os.Stat(homes[0]); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the persistent HOME %s: %v %v", homes[0], fi.Mode(), err)
	}
}
