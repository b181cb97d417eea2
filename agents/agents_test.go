package agents

import (
	"github.com/pelletier/go-toml/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestClaudeCommand(t *testing.T) {
	s := Setup{MCP: []MCPServer{{Name: "supervise", URL: "http://127.0.0.1:8765/mcp", ToolTimeout: 10 * time.Minute}}}
	cmd, env, err := Claude.Command([]string{"claude", "-p", "hi"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cmd, []string{"claude", "-p", "hi"}) || !slices.Equal(env, []string{"MCP_TOOL_TIMEOUT=660000"}) {
		t.Errorf("command %q, env %q", cmd, env)
	}
	// Without MCP servers nothing is added.
	cmd, env, _ = Claude.Command([]string{"claude"}, Setup{})
	if !slices.Equal(cmd, []string{"claude"}) || env != nil {
		t.Errorf("without servers: %q %q", cmd, env)
	}
}

func TestFor(t *testing.T) {
	for _, tc := range []struct {
		provider string
		cmd      []string
		want     *Provider
	}{
		{"", []string{"claude"}, Claude},
		{"", []string{"/usr/local/bin/claude", "-p"}, Claude},
		{"claude", []string{"my-wrapper"}, Claude},
		{"", []string{"make"}, nil},
		{"", nil, nil},
		{"nonesuch", []string{"claude"}, nil},
	} {
		if got := For(tc.provider, tc.cmd); got != tc.want {
			t.Errorf("For(%q, %q) = %v, want %v", tc.provider, tc.cmd, got, tc.want)
		}
	}
}

func TestCheckFiles(t *testing.T) {
	good := []File{{Path: ".claude.json"}, {Path: ".claude/settings.json"}}
	if err := CheckFiles(good); err != nil {
		t.Errorf("%v", err)
	}
	for _, bad := range [][]File{
		{{Path: "/etc/passwd"}}, {{Path: "../x"}}, {{Path: "a/../../x"}}, {{Path: ""}}, {{Path: "a//b"}},
		{{Path: "a"}, {Path: "a"}},
	} {
		if err := CheckFiles(bad); err == nil {
			t.Errorf("CheckFiles(%v) accepted", bad)
		}
	}
}

func TestClaudeFiles(t *testing.T) {
	files, err := Claude.Files(Setup{
		Workdir: "/workspace",
		MCP:     []MCPServer{{Name: "supervise", URL: "http://127.0.0.1:8765/mcp"}},
		Env:     map[string]string{"ANTHROPIC_API_KEY": "sk-ant-api03-BOTTLEPHabcdefghijklmnopqrstuvwxyz0123"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFiles(files); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range files {
		if f.Mode != 0o600 {
			t.Errorf("%s: mode %v", f.Path, f.Mode)
		}
		got[f.Path] = string(f.Data)
	}
	for _, want := range []string{`"hasCompletedOnboarding": true`, `"klmnopqrstuvwxyz0123"`, `"/workspace": {`,
		`"hasTrustDialogAccepted": true`, `"supervise": {`, `"url": "http://127.0.0.1:8765/mcp"`} {
		if !strings.Contains(got[".claude.json"], want) {
			t.Errorf(".claude.json lacks %s:\n%s", want, got[".claude.json"])
		}
	}
	for _, want := range []string{`"mcp__supervise"`, `"DISABLE_AUTOUPDATER": "1"`, `"CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1"`} {
		if !strings.Contains(got[".claude/settings.json"], want) {
			t.Errorf("settings.json lacks %s:\n%s", want, got[".claude/settings.json"])
		}
	}
	// The whole key is never written, only its last 20 characters.
	if strings.Contains(got[".claude.json"], "BOTTLEPH") {
		t.Errorf(".claude.json holds more of the key than its last 20 characters")
	}
}

func TestCodexFiles(t *testing.T) {
	files, err := Codex.Files(Setup{
		Workdir: "/workspace",
		MCP:     []MCPServer{{Name: "supervise", URL: "http://127.0.0.1:8765/mcp", ToolTimeout: 10 * time.Minute}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != ".codex/config.toml" || files[0].Mode != 0o600 {
		t.Fatalf("files %v", files)
	}
	// The file is TOML Codex reads; check it by reading it back.
	var got map[string]any
	if err := toml.Unmarshal(files[0].Data, &got); err != nil {
		t.Fatalf("not TOML: %v\n%s", err, files[0].Data)
	}
	prov := got["model_providers"].(map[string]any)[got["model_provider"].(string)].(map[string]any)
	mcp := got["mcp_servers"].(map[string]any)["supervise"].(map[string]any)
	for what, ok := range map[string]bool{
		"approvals off":               got["approval_policy"] == "never",
		"its sandbox off":             got["sandbox_mode"] == "danger-full-access",
		"no update check":             got["check_for_update_on_startup"] == false,
		"the API's base URL":          prov["base_url"] == "https://api.openai.com/v1",
		"the key from OPENAI_API_KEY": prov["env_key"] == "OPENAI_API_KEY",
		"no WebSockets":               prov["supports_websockets"] == false,
		"no plugins sync":             got["features"].(map[string]any)["plugins"] == false,
		"no daemon":                   got["features"].(map[string]any)["daemon_auto_start"] == false,
		"no metrics":                  got["analytics"].(map[string]any)["enabled"] == false,
		"supervise's URL":             mcp["url"] == "http://127.0.0.1:8765/mcp",
		"supervise's tools approved":  mcp["default_tools_approval_mode"] == "approve",
		"supervise's tool timeout":    mcp["tool_timeout_sec"] == int64(660),
	} {
		if !ok {
			t.Errorf("config.toml: want %s:\n%s", what, files[0].Data)
		}
	}
}
