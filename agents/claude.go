package agents

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Claude is Claude Code (@anthropic-ai/claude-code).
var Claude = &Provider{
	Name:     "claude",
	Binary:   "claude",
	Command:  claudeCommand,
	Files:    claudeFiles,
	Headless: func(prompt string) []string { return []string{"claude", "-p", prompt} },
}

func init() { register(Claude) }

// claudeMCPConfig is Claude Code's --mcp-config document.
type claudeMCPConfig struct {
	MCPServers map[string]claudeMCPServer `json:"mcpServers"`
}

type claudeMCPServer struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// ClaudeMCPConfig returns the JSON for Claude Code's --mcp-config that
// registers servers as HTTP (streamable) MCP servers:
//
//	{"mcpServers":{"supervise":{"type":"http","url":"http://127.0.0.1:8765/mcp"}}}
func ClaudeMCPConfig(servers []MCPServer) ([]byte, error) {
	cfg := claudeMCPConfig{MCPServers: map[string]claudeMCPServer{}}
	for _, s := range servers {
		cfg.MCPServers[s.Name] = claudeMCPServer{Type: "http", URL: s.URL}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode MCP config: %w", err)
	}
	return b, nil
}

// claudeCommand registers the MCP servers with --mcp-config, and sets
// MCP_TOOL_TIMEOUT so that Claude Code waits for a tool as long as the
// server may take (a minute more than the longest timeout).
func claudeCommand(cmd []string, s Setup) ([]string, []string, error) {
	if len(s.MCP) == 0 {
		return cmd, nil, nil
	}
	cfg, err := ClaudeMCPConfig(s.MCP)
	if err != nil {
		return nil, nil, err
	}
	ms := strconv.FormatInt((maxToolTimeout(s.MCP) + time.Minute).Milliseconds(), 10)
	return append(cmd, "--mcp-config", string(cfg)), []string{"MCP_TOOL_TIMEOUT=" + ms}, nil
}

// claudeFiles renders ~/.claude.json and ~/.claude/settings.json.
func claudeFiles(s Setup) ([]File, error) {
	return nil, nil
}
