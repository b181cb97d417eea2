package agents

import (
	"fmt"
	"math"

	"github.com/pelletier/go-toml/v2"
)

// Codex is OpenAI's Codex CLI (@openai/codex).
var Codex = &Provider{
	Name:   "codex",
	Binary: "codex",
	Files:  codexFiles,
	// codex exec reads stdin to its end when it is not a terminal, and
	// refuses to run outside a git repository unless told
	// (codex-rs/exec/src/lib.rs:2026-2050 and 294-296@rust-v0.148.0).
	Headless: func(prompt string) []string {
		return []string{"codex", "exec", "--skip-git-repo-check", prompt}
	},
}

func init() { register(Codex) }

// CodexVersion is the Codex release the shipped image pins, whose
// configuration codexFiles writes. Its source at this tag was not
// readable here; the keys below are cited at rust-v0.148.0 and were each
// tried with the 0.171.0 binary against a mock API, a logging proxy and
// an MCP server.
const CodexVersion = "0.171.0"

// codexProviderID is the model provider bottle configures. The built-in
// "openai" provider cannot be changed (codex-rs/config/src/config_toml.rs:
// 63-69@rust-v0.148.0), and it would try WebSockets through CONNECT before
// HTTP, read its key only from a login file or CODEX_API_KEY (in exec
// mode alone), and ignore OPENAI_BASE_URL.
const codexProviderID = "openai-bottle"

// codexConfig is $CODEX_HOME/config.toml (~/.codex/config.toml).
type codexConfig struct {
	ModelProvider string `toml:"model_provider"`
	// ApprovalPolicy never asks: nobody may be there to answer, and the
	// bottle is the sandbox.
	ApprovalPolicy string `toml:"approval_policy"`
	// SandboxMode turns Codex's own sandbox off inside the bottle's: its
	// bubblewrap needs user namespaces the agent's container does not
	// give it, and it warns on every start when it cannot have them
	// (codex-rs/sandboxing/src/bwrap.rs:16-55@rust-v0.148.0). The bottle
	// confines the agent whole; Codex's sandbox would confine the
	// commands it runs within it.
	SandboxMode string `toml:"sandbox_mode"`
	// CheckForUpdateOnStartup off: the image pins the version
	// (codex-rs/tui/src/updates.rs:28,62@rust-v0.148.0).
	CheckForUpdateOnStartup bool `toml:"check_for_update_on_startup"`

	ModelProviders map[string]codexModelProvider `toml:"model_providers"`
	Features       codexFeatures                 `toml:"features"`
	Analytics      codexAnalytics                `toml:"analytics"`
	OTel           codexOTel                     `toml:"otel"`
	MCPServers     map[string]codexMCPServer     `toml:"mcp_servers"`
}

// codexModelProvider is a model provider of Codex's
// (codex-rs/model-provider-info/src/lib.rs:143-144,290-300@rust-v0.148.0).
type codexModelProvider struct {
	Name    string `toml:"name"`
	BaseURL string `toml:"base_url"`
	// EnvKey is read in interactive and exec mode alike, with no login.
	EnvKey  string `toml:"env_key"`
	WireAPI string `toml:"wire_api"`
	// SupportsWebsockets off: the Responses API over plain HTTPS, no
	// WebSocket attempts first.
	SupportsWebsockets bool `toml:"supports_websockets"`
}

// codexFeatures turns off what reaches hosts besides the API: the curated
// plugins' sync (github.com, chatgpt.com), the background daemon that
// outlives the session and fetches an installer hourly, and retrying a
// dead connection forever (codex-rs/features/src/lib.rs:1071-1076,
// 1190-1194@rust-v0.148.0; the daemon's updater,
// app-server-daemon/src/update_loop.rs:51-57).
type codexFeatures struct {
	Plugins                    bool `toml:"plugins"`
	DaemonAutoStart            bool `toml:"daemon_auto_start"`
	UnboundedConnectionRetries bool `toml:"unbounded_connection_retries"`
}

// codexAnalytics and codexOTel turn off the metrics sent to
// ab.chatgpt.com (codex-rs/core/src/otel_init.rs:70-77,
// otel/src/config.rs:9@rust-v0.148.0).
type codexAnalytics struct {
	Enabled bool `toml:"enabled"`
}

type codexOTel struct {
	MetricsExporter string `toml:"metrics_exporter"`
}

// codexMCPServer is a streamable-HTTP MCP server
// (codex-rs/config/src/mcp_types.rs:25-31,75-81,315-324@rust-v0.148.0).
type codexMCPServer struct {
	URL string `toml:"url"`
	// DefaultToolsApprovalMode approves its tools: exec mode would refuse
	// them ("requires approval, but approval policy is never").
	DefaultToolsApprovalMode string `toml:"default_tools_approval_mode"`
	ToolTimeoutSec           int64  `toml:"tool_timeout_sec,omitempty"`
}

// codexFiles renders ~/.codex/config.toml: the OpenAI API through the
// egress proxy with the key from OPENAI_API_KEY (the agent's placeholder
// when the key is bound to api.openai.com), Codex's own sandbox and
// approvals off inside the bottle, nothing fetched but the API's answers,
// and the sidecars' MCP servers registered with their tools approved.
func codexFiles(s Setup) ([]File, error) {
	cfg := codexConfig{
		ModelProvider:           codexProviderID,
		ApprovalPolicy:          "never",
		SandboxMode:             "danger-full-access",
		CheckForUpdateOnStartup: false,
		ModelProviders: map[string]codexModelProvider{codexProviderID: {
			Name:               "OpenAI, through the bottle's egress proxy",
			BaseURL:            "https://api.openai.com/v1",
			EnvKey:             "OPENAI_API_KEY",
			WireAPI:            "responses",
			SupportsWebsockets: false,
		}},
		Analytics:  codexAnalytics{Enabled: false},
		OTel:       codexOTel{MetricsExporter: "none"},
		MCPServers: map[string]codexMCPServer{},
	}
	for _, m := range s.MCP {
		srv := codexMCPServer{URL: m.URL, DefaultToolsApprovalMode: "approve"}
		if m.ToolTimeout > 0 {
			// A minute more than the server may take, as for Claude Code.
			srv.ToolTimeoutSec = int64(math.Ceil(m.ToolTimeout.Seconds())) + 60
		}
		cfg.MCPServers[m.Name] = srv
	}
	b, err := toml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode Codex's config.toml: %w", err)
	}
	header := []byte("# Written by bottle at every start; see the README's Agents section.\n")
	return []File{{Path: ".codex/config.toml", Mode: 0o600, Data: append(header, b...)}}, nil
}
