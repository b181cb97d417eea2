package pipelock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// The types below mirror the part of pipelock 2.3.0's internal/config
// schema (schema.go) that bottle renders: the top-level keys bottle sets
// and the complete field lists of the sections it sets. A key outside
// them is refused, as pipelock refuses unknown keys. The stand-in is
// therefore stricter than pipelock about other sections (kill_switch,
// tls_interception, ...), which bottle never renders.
type config struct {
	Version             int                 `yaml:"version"`
	Mode                string              `yaml:"mode"`
	Enforce             *bool               `yaml:"enforce"`
	ExplainBlocks       *bool               `yaml:"explain_blocks"`
	APIAllowlist        []string            `yaml:"api_allowlist"`
	FetchProxy          fetchProxy          `yaml:"fetch_proxy"`
	ForwardProxy        forwardProxy        `yaml:"forward_proxy"`
	DLP                 dlp                 `yaml:"dlp"`
	Logging             loggingConfig       `yaml:"logging"`
	RequestBodyScanning requestBodyScanning `yaml:"request_body_scanning"`
	TrustedDomains      []string            `yaml:"trusted_domains"`
}

type fetchProxy struct {
	Listen         string     `yaml:"listen"`
	TimeoutSeconds int        `yaml:"timeout_seconds"`
	MaxResponseMB  int        `yaml:"max_response_mb"`
	UserAgent      string     `yaml:"user_agent"`
	Monitoring     monitoring `yaml:"monitoring"`
}

type monitoring struct {
	MaxURLLength               int      `yaml:"max_url_length"`
	EntropyThreshold           float64  `yaml:"entropy_threshold"`
	SubdomainEntropyThreshold  float64  `yaml:"subdomain_entropy_threshold"`
	MaxReqPerMinute            int      `yaml:"max_requests_per_minute"`
	MaxDataPerMinute           int      `yaml:"max_data_per_minute"`
	Blocklist                  []string `yaml:"blocklist"`
	SubdomainEntropyExclusions []string `yaml:"subdomain_entropy_exclusions"`
}

type forwardProxy struct {
	Enabled                bool     `yaml:"enabled"`
	MaxTunnelSeconds       int      `yaml:"max_tunnel_seconds"`
	IdleTimeoutSeconds     int      `yaml:"idle_timeout_seconds"`
	SNIVerification        *bool    `yaml:"sni_verification"`
	RedirectWebSocketHosts []string `yaml:"redirect_websocket_hosts"`
}

type dlp struct {
	ScanEnv            bool         `yaml:"scan_env"`
	SecretsFile        string       `yaml:"secrets_file"`
	MinEnvSecretLength int          `yaml:"min_env_secret_length"`
	IncludeDefaults    *bool        `yaml:"include_defaults"`
	Patterns           []dlpPattern `yaml:"patterns"`
	Action             string       `yaml:"action,omitempty"`
}

type dlpPattern struct {
	Name          string   `yaml:"name"`
	Regex         string   `yaml:"regex"`
	Severity      string   `yaml:"severity"`
	Validator     string   `yaml:"validator,omitempty"`
	ExemptDomains []string `yaml:"exempt_domains"`
	Action        string   `yaml:"action,omitempty"`
}

type loggingConfig struct {
	Format         string `yaml:"format"`
	Output         string `yaml:"output"`
	File           string `yaml:"file"`
	IncludeAllowed bool   `yaml:"include_allowed"`
	IncludeBlocked bool   `yaml:"include_blocked"`
}

type requestBodyScanning struct {
	Enabled          bool     `yaml:"enabled"`
	Action           string   `yaml:"action"`
	MaxBodyBytes     int      `yaml:"max_body_bytes"`
	ScanHeaders      bool     `yaml:"scan_headers"`
	HeaderMode       string   `yaml:"header_mode"`
	SensitiveHeaders []string `yaml:"sensitive_headers"`
	IgnoreHeaders    []string `yaml:"ignore_headers"`
}

// pipelockTypeNames maps this package's type names to pipelock's, so that
// yaml.v3's "field x not found in type config.Config" reads as pipelock's.
var pipelockTypeNames = strings.NewReplacer(
	"pipelock.config", "config.Config",
	"pipelock.fetchProxy", "config.FetchProxy",
	"pipelock.monitoring", "config.Monitoring",
	"pipelock.forwardProxy", "config.ForwardProxy",
	"pipelock.dlpPattern", "config.DLPPattern",
	"pipelock.dlp", "config.DLP",
	"pipelock.loggingConfig", "config.LoggingConfig",
	"pipelock.requestBodyScanning", "config.RequestBodyScanning",
)

// loadConfig does what pipelock 2.3.0's config.Load does with a file's
// bytes (internal/config/load.go): a strict single-document decode, the
// fail-closed boolean defaults (normalize.go applySecurityDefaults), the
// zero-value defaults bottle's sections rely on (ApplyDefaults), then the
// validators of validate.go that apply to those sections, in pipelock's
// order and with its messages.
func loadConfig(path string, data []byte) (*config, error) {
	cfg := &config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing config %s: %s", path, pipelockTypeNames.Replace(err.Error()))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("parsing config %s: multiple YAML documents not supported (pipelock config must be a single document)", path)
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing config %s: %w", path, err)
	}
	applySecurityDefaults(data, cfg)
	applyDefaults(cfg)
	if err := validate(cfg); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	return cfg, nil
}

// applySecurityDefaults turns the security booleans of bottle's sections
// on when the YAML omits them or sets them to null.
func applySecurityDefaults(data []byte, cfg *config) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		raw = nil
	}
	set := func(section, key string, target *bool) {
		m, _ := raw[section].(map[string]any)
		if v, ok := m[key]; !ok || v == nil {
			*target = true
		}
	}
	set("dlp", "scan_env", &cfg.DLP.ScanEnv)
	set("request_body_scanning", "enabled", &cfg.RequestBodyScanning.Enabled)
	set("request_body_scanning", "scan_headers", &cfg.RequestBodyScanning.ScanHeaders)
	set("logging", "include_allowed", &cfg.Logging.IncludeAllowed)
	set("logging", "include_blocked", &cfg.Logging.IncludeBlocked)
}

func applyDefaults(c *config) {
	if c.Version == 0 {
		c.Version = 1
	}
	if c.Mode == "" {
		c.Mode = "balanced"
	}
	if c.FetchProxy.Listen == "" {
		c.FetchProxy.Listen = "127.0.0.1:8888"
	}
	if c.Logging.Format == "" {
		c.Logging.Format = "json"
	}
	if c.Logging.Output == "" {
		c.Logging.Output = "stdout"
	}
	if c.ForwardProxy.MaxTunnelSeconds <= 0 {
		c.ForwardProxy.MaxTunnelSeconds = 300
	}
	if c.ForwardProxy.IdleTimeoutSeconds <= 0 {
		c.ForwardProxy.IdleTimeoutSeconds = 120
	}
	if c.RequestBodyScanning.Enabled {
		if c.RequestBodyScanning.Action == "" {
			c.RequestBodyScanning.Action = "warn"
		}
		if c.RequestBodyScanning.MaxBodyBytes == 0 {
			c.RequestBodyScanning.MaxBodyBytes = 5 * 1024 * 1024
		}
		if c.RequestBodyScanning.HeaderMode == "" {
			c.RequestBodyScanning.HeaderMode = "sensitive"
		}
	}
}

func validate(c *config) error {
	switch c.Mode {
	case "strict", "balanced", "audit":
	default:
		return fmt.Errorf("invalid mode %q: must be strict, balanced, or audit", c.Mode)
	}
	if c.Mode == "strict" && len(c.APIAllowlist) == 0 {
		return errors.New("strict mode requires at least one domain in api_allowlist")
	}
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
	if err := validateDLP(c); err != nil {
		return err
	}
	if err := validateFetchProxy(c); err != nil {
		return err
	}
	if c.ForwardProxy.Enabled {
		if c.ForwardProxy.MaxTunnelSeconds <= 0 {
			return errors.New("forward_proxy.max_tunnel_seconds must be positive")
		}
		if c.ForwardProxy.IdleTimeoutSeconds <= 0 {
			return errors.New("forward_proxy.idle_timeout_seconds must be positive")
		}
	}
	if r := c.RequestBodyScanning; r.Enabled {
		if r.Action != "warn" && r.Action != "block" {
			return fmt.Errorf("invalid request_body_scanning.action %q: must be warn or block", r.Action)
		}
		if r.MaxBodyBytes <= 0 {
			return errors.New("request_body_scanning.max_body_bytes must be positive")
		}
		if r.HeaderMode != "sensitive" && r.HeaderMode != "all" {
			return fmt.Errorf("invalid request_body_scanning.header_mode %q: must be sensitive or all", r.HeaderMode)
		}
	}
	return validateTrustedDomains(c.TrustedDomains, "trusted_domains")
}

func validateDLP(c *config) error {
	if c.DLP.Action != "" {
		return fmt.Errorf("dlp.action %q is not supported; DLP match behavior depends on the calling surface (request_body_scanning.action for HTTP bodies/headers, mcp_input_scanning.action for MCP input, enforce/audit mode for URL scanning, and response_scanning.action only for inbound prompt-injection response scanning)", c.DLP.Action)
	}
	for _, p := range c.DLP.Patterns {
		if p.Name == "" {
			return errors.New("DLP pattern missing name")
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
			return fmt.Errorf("DLP pattern %q has unknown validator %q (valid: luhn, mod97, aba, wif)", p.Name, p.Validator)
		}
		if err := validateTrustedDomains(p.ExemptDomains, fmt.Sprintf("DLP pattern %q exempt_domains", p.Name)); err != nil {
			return err
		}
	}
	return nil
}

func validateFetchProxy(c *config) error {
	m := c.FetchProxy.Monitoring
	for _, b := range m.Blocklist {
		if b == "" {
			return errors.New("empty blocklist entry")
		}
	}
	for i, raw := range m.SubdomainEntropyExclusions {
		d := strings.TrimSpace(strings.ToLower(raw))
		if err := checkDomainPattern(d, raw, fmt.Sprintf("subdomain_entropy_exclusions[%d]", i), false); err != nil {
			return err
		}
	}
	if m.MaxReqPerMinute < 0 {
		return errors.New("fetch_proxy.monitoring.max_requests_per_minute must be >= 0")
	}
	if m.MaxDataPerMinute < 0 {
		return errors.New("fetch_proxy.monitoring.max_data_per_minute must be >= 0")
	}
	return nil
}

// validateTrustedDomains is pipelock's ValidateTrustedDomains: hostname
// patterns only, "*.example.com" wildcards over a concrete domain.
func validateTrustedDomains(domains []string, label string) error {
	for i, raw := range domains {
		d := strings.TrimSuffix(strings.TrimSpace(strings.ToLower(raw)), ".")
		if err := checkDomainPattern(d, raw, fmt.Sprintf("%s[%d]", label, i), true); err != nil {
			return err
		}
	}
	return nil
}

// checkDomainPattern applies pipelock's host-pattern rules to the
// normalised pattern d. trusted selects ValidateTrustedDomains' message for
// a bare "*"; the subdomain-entropy exclusions treat it as any other
// malformed wildcard.
func checkDomainPattern(d, raw, label string, trusted bool) error {
	switch {
	case d == "":
		return fmt.Errorf("%s is empty", label)
	case strings.Contains(d, "://") || strings.Contains(d, "/") || strings.Contains(d, ":"):
		return fmt.Errorf("%s %q: use a hostname pattern, not a URL or host:port", label, raw)
	case d == "*" && trusted:
		return fmt.Errorf("%s: bare wildcard disables all SSRF protection", label)
	case strings.HasPrefix(d, "*."):
		if strings.Count(d[2:], ".") < 1 {
			return fmt.Errorf("%s %q: wildcard must target a concrete domain like *.example.com", label, raw)
		}
	case strings.ContainsAny(d, "*?[]"):
		return fmt.Errorf("%s %q: only exact hosts and *.example.com wildcards are supported", label, raw)
	}
	return nil
}
