package supervise

import (
	"encoding/json"
	"fmt"
	"net/url"
)

// ServerName is the name the agent knows the server by; Claude Code shows
// its tools as mcp__supervise__<tool>.
const ServerName = "supervise"

type mcpConfig struct {
	MCPServers map[string]mcpServer `json:"mcpServers"`
}

type mcpServer struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// ClaudeMCPConfig returns the JSON for Claude Code's --mcp-config that
// registers the supervise server as an HTTP (streamable) MCP server at
// serverURL, the address the sandbox reaches it at, such as
// "http://supervise:8765/mcp":
//
//	{"mcpServers":{"supervise":{"type":"http","url":"http://supervise:8765/mcp"}}}
func ClaudeMCPConfig(serverURL string) ([]byte, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("supervise MCP URL %q: %w", serverURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("supervise MCP URL %q: want http://host:port/path", serverURL)
	}
	b, err := json.Marshal(mcpConfig{MCPServers: map[string]mcpServer{ServerName: {Type: "http", URL: u.String()}}})
	if err != nil {
		return nil, fmt.Errorf("encode MCP config: %w", err)
	}
	return b, nil
}
