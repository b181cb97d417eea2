package agents

import (
	"encoding/json"
	"strconv"
	"strings"
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

// claudeMCPServer is an MCP server in Claude Code's configuration.
type claudeMCPServer struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// claudeCommand sets MCP_TOOL_TIMEOUT so that Claude Code waits for an
// MCP tool as long as the server may take (a minute more than the longest
// timeout). The servers themselves are in ~/.claude.json (claudeFiles).
func claudeCommand(cmd []string, s Setup) ([]string, []string, error) {
	if len(s.MCP) == 0 {
		return cmd, nil, nil
	}
	ms := strconv.FormatInt((maxToolTimeout(s.MCP) + time.Minute).Milliseconds(), 10)
	return cmd, []string{"MCP_TOOL_TIMEOUT=" + ms}, nil
}

// What Claude Code 2.1.332 reads, as tried with the real client on a
// terminal with a fresh HOME (the three keys of claudeState each remove
// one of its first-run screens; without them it stops at a theme choice,
// an API-key question answered "No" by default, and a folder-trust
// question, then asks for an OAuth login).

// claudeState is the part of ~/.claude.json that bottle writes.
type claudeState struct {
	// HasCompletedOnboarding skips the theme and security-notes screens,
	// and the connectivity check to api.anthropic.com/api/hello and
	// platform.claude.com/v1/oauth/hello that comes with them.
	HasCompletedOnboarding bool `json:"hasCompletedOnboarding"`
	// CustomAPIKeyResponses approves the key in ANTHROPIC_API_KEY, known
	// by its last 20 characters: the agent's placeholder when the key is
	// bound to Anthropic's API.
	CustomAPIKeyResponses claudeKeyResponses `json:"customApiKeyResponses"`
	// Projects trusts the working directory (its exact path).
	Projects map[string]claudeProject `json:"projects"`
	// MCPServers registers the sidecars' MCP servers for every session,
	// interactive or -p, without asking.
	MCPServers map[string]claudeMCPServer `json:"mcpServers"`
}

type claudeKeyResponses struct {
	Approved []string `json:"approved"`
	Rejected []string `json:"rejected"`
}

type claudeProject struct {
	HasTrustDialogAccepted bool `json:"hasTrustDialogAccepted"`
}

// claudeSettings is ~/.claude/settings.json.
type claudeSettings struct {
	// Env reaches Claude Code however it is started.
	Env map[string]string `json:"env"`
	// Permissions allows the MCP servers' tools: in -p mode a tool not
	// allowed is refused ("you haven't granted it yet"), and the
	// interactive default mode stops at a dialog for it.
	Permissions claudePermissions `json:"permissions"`
}

type claudePermissions struct {
	Allow []string `json:"allow"`
}

// claudeEnv turns off what Claude Code would fetch besides the model's
// answers: the auto-updater (from the npm registry), the changelog,
// feature flags and telemetry, and the official plugin marketplace's
// installation (from GitHub and downloads.claude.ai). With them, a
// session's only requests are to the Messages API.
var claudeEnv = map[string]string{
	"DISABLE_AUTOUPDATER":                                  "1",
	"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC":             "1",
	"CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
}

// claudeFiles renders ~/.claude.json and ~/.claude/settings.json: the
// first-run screens answered, the sidecars' MCP servers registered and
// their tools allowed, and nothing fetched but the model's answers.
func claudeFiles(s Setup) ([]File, error) {
	state := claudeState{
		HasCompletedOnboarding: true,
		CustomAPIKeyResponses:  claudeKeyResponses{Approved: []string{}, Rejected: []string{}},
		Projects:               map[string]claudeProject{},
		MCPServers:             map[string]claudeMCPServer{},
	}
	if key := strings.TrimSpace(s.Env["ANTHROPIC_API_KEY"]); key != "" {
		state.CustomAPIKeyResponses.Approved = append(state.CustomAPIKeyResponses.Approved, key[max(0, len(key)-20):])
	}
	if s.Workdir != "" {
		state.Projects[s.Workdir] = claudeProject{HasTrustDialogAccepted: true}
	}
	settings := claudeSettings{Env: claudeEnv, Permissions: claudePermissions{Allow: []string{}}}
	for _, m := range s.MCP {
		state.MCPServers[m.Name] = claudeMCPServer{Type: "http", URL: m.URL}
		settings.Permissions.Allow = append(settings.Permissions.Allow, "mcp__"+m.Name)
	}
	stateJSON, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return nil, err
	}
	settingsJSON, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		return nil, err
	}
	return []File{
		{Path: ".claude.json", Mode: 0o600, Data: append(stateJSON, '\n')},
		{Path: ".claude/settings.json", Mode: 0o600, Data: append(settingsJSON, '\n')},
	}, nil
}
