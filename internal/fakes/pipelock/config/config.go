// Package config is the part of pipelock 2.3.0's configuration loader
// (github.com/luckyPipewrench/pipelock, internal/config at tag v2.3.0) that
// the pipelock stand-in needs: the sections bottle renders, parsed,
// defaulted and validated as pipelock does, with pipelock's messages. The
// package and type names are pipelock's, so yaml.v3's errors name the same
// types ("field x not found in type config.ForwardProxy").
//
// Every other top-level key of pipelock's Config is known, so it is not
// refused as unknown, but a file that sets one fails with a
// *NotEmulatedError instead of being checked. Comments cite pipelock's
// source as path:line@v2.3.0.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Modes and defaults: internal/config/schema.go:14-18, 105-111@v2.3.0.
const (
	ModeStrict    = "strict"
	ModeBalanced  = "balanced"
	ModeAudit     = "audit"
	DefaultListen = "127.0.0.1:8888"
)

// Config mirrors pipelock's Config (internal/config/schema.go:203-259@v2.3.0).
// The sections bottle renders are typed as pipelock types them; the rest
// are held as raw YAML and refused as not emulated when set.
type Config struct {
	Version             int                 `yaml:"version"`
	Mode                string              `yaml:"mode"`
	Enforce             *bool               `yaml:"enforce"`
	ExplainBlocks       *bool               `yaml:"explain_blocks"`
	APIAllowlist        []string            `yaml:"api_allowlist"`
	FetchProxy          FetchProxy          `yaml:"fetch_proxy"`
	ForwardProxy        ForwardProxy        `yaml:"forward_proxy"`
	DLP                 DLP                 `yaml:"dlp"`
	Logging             LoggingConfig       `yaml:"logging"`
	RequestBodyScanning RequestBodyScanning `yaml:"request_body_scanning"`
	TrustedDomains      []string            `yaml:"trusted_domains"`

	// Keys pipelock knows whose sections the stand-in does not emulate
	// (internal/config/schema.go:209-259@v2.3.0).
	Suppress                 yaml.Node `yaml:"suppress"`
	WebSocketProxy           yaml.Node `yaml:"websocket_proxy"`
	CanaryTokens             yaml.Node `yaml:"canary_tokens"`
	ResponseScanning         yaml.Node `yaml:"response_scanning"`
	MCPInputScanning         yaml.Node `yaml:"mcp_input_scanning"`
	MCPToolScanning          yaml.Node `yaml:"mcp_tool_scanning"`
	MCPToolPolicy            yaml.Node `yaml:"mcp_tool_policy"`
	GitProtection            yaml.Node `yaml:"git_protection"`
	SessionProfiling         yaml.Node `yaml:"session_profiling"`
	AdaptiveEnforcement      yaml.Node `yaml:"adaptive_enforcement"`
	MCPSessionBinding        yaml.Node `yaml:"mcp_session_binding"`
	KillSwitch               yaml.Node `yaml:"kill_switch"`
	Sentry                   yaml.Node `yaml:"sentry"`
	MetricsListen            yaml.Node `yaml:"metrics_listen"`
	Emit                     yaml.Node `yaml:"emit"`
	ToolChainDetection       yaml.Node `yaml:"tool_chain_detection"`
	MCPWSListener            yaml.Node `yaml:"mcp_ws_listener"`
	TLSInterception          yaml.Node `yaml:"tls_interception"`
	CrossRequestDetection    yaml.Node `yaml:"cross_request_detection"`
	ReverseProxy             yaml.Node `yaml:"reverse_proxy"`
	ScanAPI                  yaml.Node `yaml:"scan_api"`
	AddressProtection        yaml.Node `yaml:"address_protection"`
	SeedPhraseDetection      yaml.Node `yaml:"seed_phrase_detection"`
	Rules                    yaml.Node `yaml:"rules"`
	FileSentry               yaml.Node `yaml:"file_sentry"`
	Sandbox                  yaml.Node `yaml:"sandbox"`
	FlightRecorder           yaml.Node `yaml:"flight_recorder"`
	MCPBinaryIntegrity       yaml.Node `yaml:"mcp_binary_integrity"`
	MCPToolProvenance        yaml.Node `yaml:"mcp_tool_provenance"`
	BehavioralBaseline       yaml.Node `yaml:"behavioral_baseline"`
	Airlock                  yaml.Node `yaml:"airlock"`
	BrowserShield            yaml.Node `yaml:"browser_shield"`
	MediaPolicy              yaml.Node `yaml:"media_policy"`
	A2AScanning              yaml.Node `yaml:"a2a_scanning"`
	Taint                    yaml.Node `yaml:"taint"`
	MediationEnvelope        yaml.Node `yaml:"mediation_envelope"`
	Redaction                yaml.Node `yaml:"redaction"`
	Agents                   yaml.Node `yaml:"agents"`
	DefaultAgentIdentity     yaml.Node `yaml:"default_agent_identity"`
	BindDefaultAgentIdentity yaml.Node `yaml:"bind_default_agent_identity"`
	LicenseKey               yaml.Node `yaml:"license_key"`
	LicenseFile              yaml.Node `yaml:"license_file"`
	LicensePublicKey         yaml.Node `yaml:"license_public_key"`
	Internal                 yaml.Node `yaml:"internal"`
	SSRF                     yaml.Node `yaml:"ssrf"`

	rawBytes []byte
}

// FetchProxy: internal/config/schema.go:428-434@v2.3.0.
type FetchProxy struct {
	Listen         string     `yaml:"listen"`
	TimeoutSeconds int        `yaml:"timeout_seconds"`
	MaxResponseMB  int        `yaml:"max_response_mb"`
	UserAgent      string     `yaml:"user_agent"`
	Monitoring     Monitoring `yaml:"monitoring"`
}

// Monitoring: internal/config/schema.go:437-445@v2.3.0.
type Monitoring struct {
	MaxURLLength               int      `yaml:"max_url_length"`
	EntropyThreshold           float64  `yaml:"entropy_threshold"`
	SubdomainEntropyThreshold  float64  `yaml:"subdomain_entropy_threshold"`
	MaxReqPerMinute            int      `yaml:"max_requests_per_minute"`
	MaxDataPerMinute           int      `yaml:"max_data_per_minute"`
	Blocklist                  []string `yaml:"blocklist"`
	SubdomainEntropyExclusions []string `yaml:"subdomain_entropy_exclusions"`
}

// ForwardProxy: internal/config/schema.go:373-379@v2.3.0.
type ForwardProxy struct {
	Enabled                bool     `yaml:"enabled"`
	MaxTunnelSeconds       int      `yaml:"max_tunnel_seconds"`
	IdleTimeoutSeconds     int      `yaml:"idle_timeout_seconds"`
	SNIVerification        *bool    `yaml:"sni_verification"`
	RedirectWebSocketHosts []string `yaml:"redirect_websocket_hosts"`
}

// DLP: internal/config/schema.go:448-455@v2.3.0.
type DLP struct {
	ScanEnv            bool         `yaml:"scan_env"`
	SecretsFile        string       `yaml:"secrets_file"`
	MinEnvSecretLength int          `yaml:"min_env_secret_length"`
	IncludeDefaults    *bool        `yaml:"include_defaults"`
	Patterns           []DLPPattern `yaml:"patterns"`
	Action             string       `yaml:"action,omitempty"`
}

// DLPPattern: internal/config/schema.go:458-468@v2.3.0. Compiled marks
// pipelock's built-in patterns, which the stand-in knows by name only.
type DLPPattern struct {
	Name          string   `yaml:"name"`
	Regex         string   `yaml:"regex"`
	Severity      string   `yaml:"severity"`
	Validator     string   `yaml:"validator,omitempty"`
	ExemptDomains []string `yaml:"exempt_domains"`
	Action        string   `yaml:"action,omitempty"`
	Compiled      bool     `yaml:"-"`
}

// LoggingConfig: internal/config/schema.go:518-526@v2.3.0.
type LoggingConfig struct {
	Format         string `yaml:"format"`
	Output         string `yaml:"output"`
	File           string `yaml:"file"`
	IncludeAllowed bool   `yaml:"include_allowed"`
	IncludeBlocked bool   `yaml:"include_blocked"`
}

// RequestBodyScanning: internal/config/schema.go:596-604@v2.3.0.
type RequestBodyScanning struct {
	Enabled          bool     `yaml:"enabled"`
	Action           string   `yaml:"action"`
	MaxBodyBytes     int      `yaml:"max_body_bytes"`
	ScanHeaders      bool     `yaml:"scan_headers"`
	HeaderMode       string   `yaml:"header_mode"`
	SensitiveHeaders []string `yaml:"sensitive_headers"`
	IgnoreHeaders    []string `yaml:"ignore_headers"`
}

// NotEmulatedError says that a file sets a section pipelock accepts but
// the stand-in does not emulate.
type NotEmulatedError struct{ Key string }

func (e *NotEmulatedError) Error() string {
	return fmt.Sprintf("fake pipelock: config key %q is valid for pipelock 2.3.0 but not emulated by this stand-in", e.Key)
}

// Load is pipelock's config.Load (internal/config/load.go:21-127@v2.3.0)
// for the emulated sections.
func Load(path string) (*Config, error) {
	// internal/config/load.go:22-25@v2.3.0
	data, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	cfg := &Config{}
	// internal/config/load.go:33-37@v2.3.0: strict decode, unknown keys fail.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing config %s: %w", path, err)
	}
	// internal/config/load.go:43-48@v2.3.0: one document only.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("parsing config %s: multiple YAML documents not supported (pipelock config must be a single document)", path)
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing config %s: %w", path, err)
	}
	if key := cfg.notEmulated(); key != "" {
		return nil, &NotEmulatedError{Key: key}
	}
	cfg.rawBytes = data                                                    // internal/config/load.go:50@v2.3.0
	applySecurityDefaults(data, cfg)                                       // internal/config/load.go:54@v2.3.0
	cfg.ApplyDefaults()                                                    // internal/config/load.go:56@v2.3.0
	if cfg.DLP.SecretsFile != "" && !filepath.IsAbs(cfg.DLP.SecretsFile) { // internal/config/load.go:72-74@v2.3.0
		cfg.DLP.SecretsFile = filepath.Join(filepath.Dir(path), cfg.DLP.SecretsFile)
	}
	if err := cfg.Validate(); err != nil { // internal/config/load.go:112-114@v2.3.0
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	return cfg, nil
}

// notEmulated returns the first non-emulated key the file sets to
// something other than null, in pipelock's field order.
func (c *Config) notEmulated() string {
	nodes := []struct {
		key  string
		node *yaml.Node
	}{
		{"suppress", &c.Suppress}, {"websocket_proxy", &c.WebSocketProxy}, {"canary_tokens", &c.CanaryTokens},
		{"response_scanning", &c.ResponseScanning}, {"mcp_input_scanning", &c.MCPInputScanning},
		{"mcp_tool_scanning", &c.MCPToolScanning}, {"mcp_tool_policy", &c.MCPToolPolicy},
		{"git_protection", &c.GitProtection}, {"session_profiling", &c.SessionProfiling},
		{"adaptive_enforcement", &c.AdaptiveEnforcement}, {"mcp_session_binding", &c.MCPSessionBinding},
		{"kill_switch", &c.KillSwitch}, {"sentry", &c.Sentry}, {"metrics_listen", &c.MetricsListen},
		{"emit", &c.Emit}, {"tool_chain_detection", &c.ToolChainDetection}, {"mcp_ws_listener", &c.MCPWSListener},
		{"tls_interception", &c.TLSInterception}, {"cross_request_detection", &c.CrossRequestDetection},
		{"reverse_proxy", &c.ReverseProxy}, {"scan_api", &c.ScanAPI}, {"address_protection", &c.AddressProtection},
		{"seed_phrase_detection", &c.SeedPhraseDetection}, {"rules", &c.Rules}, {"file_sentry", &c.FileSentry},
		{"sandbox", &c.Sandbox}, {"flight_recorder", &c.FlightRecorder}, {"mcp_binary_integrity", &c.MCPBinaryIntegrity},
		{"mcp_tool_provenance", &c.MCPToolProvenance}, {"behavioral_baseline", &c.BehavioralBaseline},
		{"airlock", &c.Airlock}, {"browser_shield", &c.BrowserShield}, {"media_policy", &c.MediaPolicy},
		{"a2a_scanning", &c.A2AScanning}, {"taint", &c.Taint}, {"mediation_envelope", &c.MediationEnvelope},
		{"redaction", &c.Redaction}, {"agents", &c.Agents}, {"default_agent_identity", &c.DefaultAgentIdentity},
		{"bind_default_agent_identity", &c.BindDefaultAgentIdentity}, {"license_key", &c.LicenseKey},
		{"license_file", &c.LicenseFile}, {"license_public_key", &c.LicensePublicKey},
		{"internal", &c.Internal}, {"ssrf", &c.SSRF},
	}
	for _, n := range nodes {
		if n.node.Kind != 0 && !(n.node.Kind == yaml.ScalarNode && n.node.Tag == "!!null") {
			return n.key
		}
	}
	return ""
}

// Hash is the SHA-256 of the file's bytes (internal/config/load.go:186-192@v2.3.0).
func (c *Config) Hash() string {
	h := sha256.Sum256(c.rawBytes)
	return hex.EncodeToString(h[:])
}

// EnforceEnabled: internal/config/schema_receiver_methods.go:156-158@v2.3.0.
func (c *Config) EnforceEnabled() bool { return c.Enforce == nil || *c.Enforce }

// ExplainBlocksEnabled: internal/config/schema_receiver_methods.go:164-166@v2.3.0.
func (c *Config) ExplainBlocksEnabled() bool { return c.ExplainBlocks != nil && *c.ExplainBlocks }

// applySecurityDefaults turns the fail-closed booleans of the emulated
// sections on when the YAML omits them or sets them to null
// (internal/config/normalize.go:19-65@v2.3.0).
func applySecurityDefaults(data []byte, cfg *Config) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		raw = nil // normalize.go:21-37: a parse error counts as "all omitted"
	}
	set := func(section, key string, target *bool) {
		m, _ := raw[section].(map[string]any)
		if v, ok := m[key]; m == nil || !ok || v == nil {
			*target = true
		}
	}
	set("dlp", "scan_env", &cfg.DLP.ScanEnv)                                           // normalize.go:50-51
	set("request_body_scanning", "enabled", &cfg.RequestBodyScanning.Enabled)          // normalize.go:56-57
	set("request_body_scanning", "scan_headers", &cfg.RequestBodyScanning.ScanHeaders) // normalize.go:58
	set("logging", "include_allowed", &cfg.Logging.IncludeAllowed)                     // normalize.go:63-64
	set("logging", "include_blocked", &cfg.Logging.IncludeBlocked)                     // normalize.go:65
}

// ApplyDefaults fills the emulated sections' zero values as pipelock's
// ApplyDefaults does (internal/config/normalize.go:115-419@v2.3.0).
func (c *Config) ApplyDefaults() {
	if c.Version == 0 { // normalize.go:116-118
		c.Version = 1
	}
	if c.Mode == "" { // normalize.go:119-121
		c.Mode = ModeBalanced
	}
	fp := &c.FetchProxy
	if fp.Listen == "" { // normalize.go:122-124
		fp.Listen = DefaultListen
	}
	if fp.TimeoutSeconds <= 0 { // normalize.go:125-127
		fp.TimeoutSeconds = 30
	}
	if fp.MaxResponseMB <= 0 { // normalize.go:128-130
		fp.MaxResponseMB = 10
	}
	if fp.UserAgent == "" { // normalize.go:131-133
		fp.UserAgent = "Pipelock Fetch/1.0"
	}
	if fp.Monitoring.MaxURLLength <= 0 { // normalize.go:134-136
		fp.Monitoring.MaxURLLength = 2048
	}
	if fp.Monitoring.EntropyThreshold <= 0 { // normalize.go:137-139
		fp.Monitoring.EntropyThreshold = 4.5
	}
	if fp.Monitoring.SubdomainEntropyThreshold <= 0 { // normalize.go:140-142
		fp.Monitoring.SubdomainEntropyThreshold = 4.0
	}
	if fp.Monitoring.MaxReqPerMinute <= 0 { // normalize.go:143-145
		fp.Monitoring.MaxReqPerMinute = 60
	}
	if c.Logging.Format == "" { // normalize.go:146-148
		c.Logging.Format = "json"
	}
	if c.Logging.Output == "" { // normalize.go:149-151
		c.Logging.Output = "stdout"
	}
	c.DLP.Patterns = mergeDLPPatterns(c.DLP.IncludeDefaults, c.DLP.Patterns) // normalize.go:171-175
	if c.ForwardProxy.MaxTunnelSeconds <= 0 {                                // normalize.go:190-192
		c.ForwardProxy.MaxTunnelSeconds = 300
	}
	if c.ForwardProxy.IdleTimeoutSeconds <= 0 { // normalize.go:193-195
		c.ForwardProxy.IdleTimeoutSeconds = 120
	}
	if r := &c.RequestBodyScanning; r.Enabled { // normalize.go:386-419
		if r.Action == "" {
			r.Action = "warn"
		}
		if r.MaxBodyBytes == 0 {
			r.MaxBodyBytes = 5 * 1024 * 1024
		}
		if r.HeaderMode == "" {
			r.HeaderMode = "sensitive"
		}
		if len(r.SensitiveHeaders) == 0 {
			r.SensitiveHeaders = []string{"Authorization", "Cookie", "X-Api-Key", "X-Token", "Proxy-Authorization", "X-Goog-Api-Key"}
		}
		if len(r.IgnoreHeaders) == 0 {
			r.IgnoreHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Te", "Trailer", "Transfer-Encoding",
				"Upgrade", "Host", "Content-Length", "Content-Type", "Accept", "Accept-Encoding", "User-Agent"}
		}
	}
}

// defaultDLPNames names pipelock's built-in DLP patterns in order
// (internal/config/defaults.go:71-206@v2.3.0). The stand-in needs only
// their number and names, for merging and for the counts check and
// /health report; they are valid by construction.
var defaultDLPNames = []string{
	"Anthropic API Key", "OpenAI API Key", "OpenAI Service Key", "Fireworks API Key", "Google API Key",
	"Google OAuth Client Secret", "Stripe Key", "Stripe Webhook Secret", "GitHub Token", "GitHub Fine-Grained PAT",
	"GitLab PAT", "AWS Access ID", "AWS Secret Key", "Google OAuth Token", "Slack Token", "Slack App Token",
	"Discord Bot Token", "Twilio API Key", "SendGrid API Key", "Mailgun API Key", "New Relic API Key",
	"Hugging Face Token", "Databricks Token", "Replicate API Token", "Together AI Key", "Pinecone API Key",
	"Groq API Key", "xAI API Key", "DigitalOcean Token", "HashiCorp Vault Token", "Vercel Token",
	"Supabase Service Key", "npm Token", "PyPI Token", "Linear API Key", "Notion API Key", "Sentry Auth Token",
	"Private Key Header", "JWT Token", "Bitcoin WIF Private Key", "Extended Private Key", "Ethereum Private Key",
	"Social Security Number", "Google OAuth Client ID", "Credential in URL", "Environment Variable Secret",
	"Credit Card Number", "IBAN",
}

// mergeDLPPatterns: internal/config/normalize.go:591-613@v2.3.0.
func mergeDLPPatterns(includeDefaults *bool, user []DLPPattern) []DLPPattern {
	if includeDefaults != nil && !*includeDefaults {
		return user
	}
	names := make(map[string]bool, len(user))
	for _, p := range user {
		names[p.Name] = true
	}
	merged := make([]DLPPattern, 0, len(defaultDLPNames)+len(user))
	for _, n := range defaultDLPNames {
		if !names[n] {
			merged = append(merged, DLPPattern{Name: n, Compiled: true})
		}
	}
	return append(merged, user...)
}

// Warning is a non-fatal advisory (internal/config/validate.go:60-63@v2.3.0).
type Warning struct{ Field, Message string }

// Validate is pipelock's Validate restricted to the validators that look at
// the emulated sections, in pipelock's order
// (internal/config/validate.go:68-71, 77-222@v2.3.0).
func (c *Config) Validate() error {
	_, err := c.ValidateWithWarnings()
	return err
}

// ValidateWithWarnings also returns the listen-address warnings
// (internal/config/validate.go:181, 1275-1293@v2.3.0).
func (c *Config) ValidateWithWarnings() ([]Warning, error) {
	for _, v := range []func() error{
		c.validateMode,                // validate.go:79
		c.validateLogging,             // validate.go:82
		c.validateDLP,                 // validate.go:85
		c.validateFetchProxy,          // validate.go:88
		c.validateForwardProxy,        // validate.go:106
		c.validateRequestBodyScanning, // validate.go:124
		func() error { return ValidateTrustedDomains(c.TrustedDomains, "trusted_domains") }, // validate.go:166, 1117-1120
	} {
		if err := v(); err != nil {
			return nil, err
		}
	}
	var warnings []Warning
	host, _, err := net.SplitHostPort(c.FetchProxy.Listen)
	if err != nil {
		return warnings, nil
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
		warnings = append(warnings, Warning{"fetch_proxy.listen", fmt.Sprintf("listen address %s is not loopback - proxy endpoints (/metrics, /stats) will be exposed to the network", c.FetchProxy.Listen)})
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		warnings = append(warnings, Warning{"fetch_proxy.listen", fmt.Sprintf("listen address %s binds to all interfaces - consider using 127.0.0.1 for local-only access", c.FetchProxy.Listen)})
	}
	return warnings, nil
}

// internal/config/validate.go:242-254@v2.3.0
func (c *Config) validateMode() error {
	switch c.Mode {
	case ModeStrict, ModeBalanced, ModeAudit:
	default:
		return fmt.Errorf("invalid mode %q: must be strict, balanced, or audit", c.Mode)
	}
	if c.Mode == ModeStrict && len(c.APIAllowlist) == 0 {
		return fmt.Errorf("strict mode requires at least one domain in api_allowlist")
	}
	return nil
}

// internal/config/validate.go:256-275@v2.3.0
func (c *Config) validateLogging() error {
	switch c.Logging.Format {
	case "json", "text":
	default:
		return fmt.Errorf("invalid logging format %q: must be json or text", c.Logging.Format)
	}
	switch c.Logging.Output {
	case "stdout", "file", "both":
	default:
		return fmt.Errorf("invalid logging output %q: must be stdout, file, or both", c.Logging.Output)
	}
	if (c.Logging.Output == "file" || c.Logging.Output == "both") && c.Logging.File == "" {
		return fmt.Errorf("logging.file is required when output is %q", c.Logging.Output)
	}
	return nil
}

// internal/config/validate.go:277-335@v2.3.0. canary_tokens
// (validate.go:318-320) is not emulated and left at its valid default.
func (c *Config) validateDLP() error {
	if c.DLP.Action != "" {
		return fmt.Errorf("dlp.action %q is not supported; DLP match behavior depends on the calling surface (request_body_scanning.action for HTTP bodies/headers, mcp_input_scanning.action for MCP input, enforce/audit mode for URL scanning, and response_scanning.action only for inbound prompt-injection response scanning)", c.DLP.Action)
	}
	for _, p := range c.DLP.Patterns {
		if p.Compiled {
			continue // a built-in pattern: valid, and never given an action from YAML
		}
		if p.Name == "" {
			return fmt.Errorf("DLP pattern missing name")
		}
		if p.Regex == "" {
			return fmt.Errorf("DLP pattern %q missing regex", p.Name)
		}
		if _, err := regexp.Compile(p.Regex); err != nil {
			return fmt.Errorf("DLP pattern %q has invalid regex: %w", p.Name, err)
		}
		if p.Action != "" && p.Action != "warn" {
			return fmt.Errorf("DLP pattern %q has unsupported action %q; only %q is allowed as a per-pattern action", p.Name, p.Action, "warn")
		}
		switch p.Validator {
		case "", "luhn", "mod97", "aba", "wif":
		default:
			return fmt.Errorf("DLP pattern %q has unknown validator %q (valid: %s, %s, %s, %s)", p.Name, p.Validator, "luhn", "mod97", "aba", "wif")
		}
		if err := ValidateTrustedDomains(p.ExemptDomains, fmt.Sprintf("DLP pattern %q exempt_domains", p.Name)); err != nil {
			return err
		}
	}
	if c.DLP.SecretsFile != "" {
		info, err := os.Stat(c.DLP.SecretsFile)
		if err != nil {
			return fmt.Errorf("secrets_file %q: %w", c.DLP.SecretsFile, err)
		}
		if info.Mode().Perm()&0o037 != 0 {
			return fmt.Errorf("secrets_file %q has unsafe permissions (mode %04o): restrict to 0600 or 0640", c.DLP.SecretsFile, info.Mode().Perm())
		}
	}
	return nil
}

// internal/config/validate.go:337-376@v2.3.0
func (c *Config) validateFetchProxy() error {
	m := &c.FetchProxy.Monitoring
	for _, b := range m.Blocklist {
		if b == "" {
			return fmt.Errorf("empty blocklist entry")
		}
	}
	for i, raw := range m.SubdomainEntropyExclusions {
		d := strings.TrimSpace(strings.ToLower(raw))
		if d == "" {
			return fmt.Errorf("subdomain_entropy_exclusions[%d] is empty", i)
		}
		if strings.Contains(d, "://") || strings.Contains(d, "/") || strings.Contains(d, ":") {
			return fmt.Errorf("subdomain_entropy_exclusions[%d] %q: use a hostname pattern, not a URL or host:port", i, raw)
		}
		if strings.HasPrefix(d, "*.") {
			if strings.Count(d[2:], ".") < 1 {
				return fmt.Errorf("subdomain_entropy_exclusions[%d] %q: wildcard must target a concrete domain like *.example.com", i, raw)
			}
		} else if strings.ContainsAny(d, "*?[]") {
			return fmt.Errorf("subdomain_entropy_exclusions[%d] %q: only exact hosts and *.example.com wildcards are supported", i, raw)
		}
		m.SubdomainEntropyExclusions[i] = strings.TrimSuffix(d, ".")
	}
	if m.MaxReqPerMinute < 0 {
		return fmt.Errorf("fetch_proxy.monitoring.max_requests_per_minute must be >= 0")
	}
	if m.MaxDataPerMinute < 0 {
		return fmt.Errorf("fetch_proxy.monitoring.max_data_per_minute must be >= 0")
	}
	return nil
}

// internal/config/validate.go:554-566@v2.3.0
func (c *Config) validateForwardProxy() error {
	if !c.ForwardProxy.Enabled {
		return nil
	}
	if c.ForwardProxy.MaxTunnelSeconds <= 0 {
		return fmt.Errorf("forward_proxy.max_tunnel_seconds must be positive")
	}
	if c.ForwardProxy.IdleTimeoutSeconds <= 0 {
		return fmt.Errorf("forward_proxy.idle_timeout_seconds must be positive")
	}
	return nil
}

// internal/config/validate.go:724-745@v2.3.0
func (c *Config) validateRequestBodyScanning() error {
	r := c.RequestBodyScanning
	if !r.Enabled {
		return nil
	}
	switch r.Action {
	case "warn", "block":
	default:
		return fmt.Errorf("invalid request_body_scanning.action %q: must be warn or block", r.Action)
	}
	if r.MaxBodyBytes <= 0 {
		return fmt.Errorf("request_body_scanning.max_body_bytes must be positive")
	}
	switch r.HeaderMode {
	case "sensitive", "all":
	default:
		return fmt.Errorf("invalid request_body_scanning.header_mode %q: must be sensitive or all", r.HeaderMode)
	}
	return nil
}

// ValidateTrustedDomains checks and normalises host patterns in place
// (internal/config/validate.go:29-55@v2.3.0).
func ValidateTrustedDomains(domains []string, label string) error {
	for i, raw := range domains {
		d := strings.TrimSuffix(strings.TrimSpace(strings.ToLower(raw)), ".")
		if d == "" {
			return fmt.Errorf("%s[%d] is empty", label, i)
		}
		if strings.Contains(d, "://") || strings.Contains(d, "/") || strings.Contains(d, ":") {
			return fmt.Errorf("%s[%d] %q: use a hostname pattern, not a URL or host:port", label, i, raw)
		}
		if d == "*" {
			return fmt.Errorf("%s[%d]: bare wildcard disables all SSRF protection", label, i)
		}
		if strings.HasPrefix(d, "*.") {
			if strings.Count(d[2:], ".") < 1 {
				return fmt.Errorf("%s[%d] %q: wildcard must target a concrete domain like *.example.com", label, i, raw)
			}
		} else if strings.ContainsAny(d, "*?[]") {
			return fmt.Errorf("%s[%d] %q: only exact hosts and *.example.com wildcards are supported", label, i, raw)
		}
		domains[i] = d
	}
	return nil
}
