package agents

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestClaudeMCPConfig(t *testing.T) {
	b, err := ClaudeMCPConfig([]MCPServer{{Name: "supervise", URL: "http://127.0.0.1:8765/mcp"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"mcpServers":{"supervise":{"type":"http","url":"http://127.0.0.1:8765/mcp"}}}`; string(b) != want {
		t.Errorf("config = %s\nwant     %s", b, want)
	}
}

func TestClaudeCommand(t *testing.T) {
	s := Setup{MCP: []MCPServer{{Name: "supervise", URL: "http://127.0.0.1:8765/mcp", ToolTimeout: 10 * time.Minute}}}
	cmd, env, err := Claude.Command([]string{"claude", "-p", "hi"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmd) != 5 || cmd[3] != "--mcp-config" || !strings.Contains(cmd[4], `"supervise"`) {
		t.Errorf("command %q", cmd)
	}
	if !slices.Equal(env, []string{"MCP_TOOL_TIMEOUT=660000"}) {
		t.Errorf("env %q", env)
	}
	// Without MCP servers the command is left alone.
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
