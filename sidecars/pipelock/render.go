package pipelock

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bottle-dev/bottle/plan"
)

// ErrCannotExpress marks a plan that pipelock's configuration cannot
// enforce exactly. Errors wrapping it say which rule and what to do.
var ErrCannotExpress = errors.New("pipelock cannot express this plan")

// httpsPort is the only port an allow-list rule may name when
// pipelock enforces it; see CheckRules.
const httpsPort = 443

// The structs below mirror the subset of pipelock 2.3.0's
// internal/config.Config that bottle sets. Field order is key order. Keys
// left out take pipelock's defaults (documented in docs/configuration.md).
type fileConfig struct {
	Version       int    `yaml:"version"`
	Mode          string `yaml:"mode"`
	Enforce       bool   `yaml:"enforce"`
	ExplainBlocks bool   `yaml:"explain_blocks"`
	// APIAllowlist is enforced in strict mode only: every other host is refused.
	APIAllowlist []string `yaml:"api_allowlist"`
	// TrustedDomains exempts hosts from the SSRF internal-address check at
	// scan time and at dial time (scanner.checkSSRF, proxy.ssrfSafeDialContext).
	TrustedDomains      []string                `yaml:"trusted_domains,omitempty"`
	FetchProxy          fileFetchProxy          `yaml:"fetch_proxy"`
	ForwardProxy        fileForwardProxy        `yaml:"forward_proxy"`
	RequestBodyScanning fileRequestBodyScanning `yaml:"request_body_scanning"`
	DLP                 fileDLP                 `yaml:"dlp"`
	Logging             fileLogging             `yaml:"logging"`
}

type fileFetchProxy struct {
	Listen string `yaml:"listen"`
}

type fileForwardProxy struct {
	Enabled            bool `yaml:"enabled"`
	MaxTunnelSeconds   int  `yaml:"max_tunnel_seconds"`
	IdleTimeoutSeconds int  `yaml:"idle_timeout_seconds"`
	SNIVerification    bool `yaml:"sni_verification"`
}

type fileRequestBodyScanning struct {
	Enabled bool   `yaml:"enabled"`
	Action  string `yaml:"action,omitempty"`
}

type fileDLP struct {
	IncludeDefaults bool `yaml:"include_defaults"`
	ScanEnv         bool `yaml:"scan_env"`
}

type fileLogging struct {
	Format         string `yaml:"format"`
	Output         string `yaml:"output"`
	IncludeAllowed bool   `yaml:"include_allowed"`
	IncludeBlocked bool   `yaml:"include_blocked"`
}

// Render returns the configuration file (YAML) of the plan's pipelock
// egress sidecar for pipelock Version, with fetch_proxy.listen set to
// listen ("host:port" with an IP or empty host, the TCP address pipelock's
// one listener serves /health and the forward proxy on:
// internal/proxy/proxy.go:1911-1990@v2.3.0). Start passes its own loopback
// address with --listen, which overrides this key
// (internal/cli/runtime/server.go:339-341@v2.3.0), so a file rendered for
// Start may name any valid address.
//
// The config runs pipelock in strict mode with enforcement on: only the
// plan's allow-list hosts are reachable (api_allowlist), rules that may
// reach private addresses go to trusted_domains, the forward proxy
// (CONNECT and absolute-URI) is on with the plan's tunnel limits and SNI
// verification, DLP uses pipelock's built-in patterns and scans its own
// environment, request-body scanning follows the plan, and logs are JSON
// lines on stdout including allowed and blocked requests.
//
// It returns an error wrapping ErrCannotExpress when a rule cannot be
// enforced exactly (see CheckRules), and a plain error when the plan does
// not use pipelock as its egress sidecar, its pipelock options are invalid
// or listen is not a TCP "IP:port". The output is deterministic (sorted,
// de-duplicated lists), so it can be compared with golden files.
func Render(p *plan.Plan, listen string) ([]byte, error) {
	if p == nil {
		return nil, errors.New("render pipelock config: no plan")
	}
	if p.Egress.Sidecar != plan.SidecarPipelock {
		return nil, fmt.Errorf("render pipelock config: the plan's egress sidecar is %q, not %q", p.Egress.Sidecar, plan.SidecarPipelock)
	}
	cfg, err := sidecarConfig(p)
	if err != nil {
		return nil, fmt.Errorf("render pipelock config: %w", err)
	}
	if err := checkListen(listen); err != nil {
		return nil, fmt.Errorf("render pipelock config: %w", err)
	}
	if err := CheckRules(p); err != nil {
		return nil, fmt.Errorf("render pipelock config: %w", err)
	}

	var allow, trusted []string
	for _, r := range p.Egress.Rules {
		allow = append(allow, r.Host)
		if r.AllowPrivate {
			trusted = append(trusted, r.Host)
		}
	}
	slices.Sort(allow)
	slices.Sort(trusted)

	doc := fileConfig{
		Version:        1,
		Mode:           "strict",
		Enforce:        true,
		ExplainBlocks:  cfg.ExplainBlocks,
		APIAllowlist:   slices.Compact(allow),
		TrustedDomains: slices.Compact(trusted),
		FetchProxy:     fileFetchProxy{Listen: listen},
		ForwardProxy: fileForwardProxy{
			Enabled:            true,
			MaxTunnelSeconds:   cfg.MaxTunnelSeconds,
			IdleTimeoutSeconds: cfg.IdleTimeoutSeconds,
			SNIVerification:    true,
		},
		RequestBodyScanning: fileRequestBodyScanning{Enabled: cfg.RequestBodyScanning},
		DLP:                 fileDLP{IncludeDefaults: true, ScanEnv: true},
		Logging:             fileLogging{Format: "json", Output: "stdout", IncludeAllowed: true, IncludeBlocked: true},
	}
	if cfg.RequestBodyScanning {
		doc.RequestBodyScanning.Action = cfg.BodyScanAction
	}

	var node yaml.Node
	if err := node.Encode(doc); err != nil {
		return nil, fmt.Errorf("render pipelock config: encode: %w", err)
	}
	node.HeadComment = "pipelock " + Version + " configuration rendered by bottle from the plan; do not edit"
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return nil, fmt.Errorf("render pipelock config: marshal: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render pipelock config: marshal: %w", err)
	}
	return buf.Bytes(), nil
}

// sidecarConfig returns the options of the plan's pipelock sidecar
// after checking them against what pipelock 2.3.0 accepts.
func sidecarConfig(p *plan.Plan) (*plan.PipelockConfig, error) {
	var cfg *plan.PipelockConfig
	for _, s := range p.Sidecars {
		if s.Name == plan.SidecarPipelock {
			if cfg != nil {
				return nil, errors.New("the plan declares the pipelock sidecar more than once")
			}
			if s.Pipelock == nil {
				return nil, errors.New("the plan's pipelock sidecar has no pipelock options")
			}
			cfg = s.Pipelock
		}
	}
	if cfg == nil {
		return nil, errors.New("the plan has no pipelock sidecar")
	}
	if cfg.MaxTunnelSeconds <= 0 || cfg.IdleTimeoutSeconds <= 0 {
		return nil, fmt.Errorf("pipelock max_tunnel_seconds (%d) and idle_timeout_seconds (%d) must be positive",
			cfg.MaxTunnelSeconds, cfg.IdleTimeoutSeconds)
	}
	if cfg.RequestBodyScanning && cfg.BodyScanAction != "block" && cfg.BodyScanAction != "warn" {
		return nil, fmt.Errorf("pipelock body_scan_action is %q; it must be \"block\" or \"warn\"", cfg.BodyScanAction)
	}
	return cfg, nil
}

// checkListen accepts "host:port" with a numeric port in 1..65535 and a
// host that is empty or an IP address, which is what pipelock's
// fetch_proxy.listen takes (net.Listen "tcp").
func checkListen(listen string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w; pipelock listens on TCP \"host:port\" such as \"0.0.0.0:8888\"", listen, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("listen address %q: port %q is not a number from 1 to 65535", listen, port)
	}
	if host != "" && net.ParseIP(host) == nil {
		return fmt.Errorf("listen address %q: host %q is not an IP address", listen, host)
	}
	return nil
}

// CheckRules reports whether pipelock Version can enforce the plan's
// allow-list exactly, so that plan validation can refuse a profile before
// anything starts. It returns nil or an error wrapping ErrCannotExpress
// that names the rule, its position and what to change. What pipelock
// 2.3.0 does, and therefore what is refused (sources at tag v2.3.0):
//
//   - Ports. api_allowlist holds host names only and the forward proxy
//     never looks at the port: a CONNECT is scanned as "https://host/"
//     (internal/proxy/forward.go:95-115; a target without a port gets 443)
//     and an absolute-URI request is matched on its host name alone
//     (internal/scanner/scanner.go:628-632, 916-931). An allowed host is
//     therefore reachable on every port. Pipelock cannot narrow that, so
//     bottle accepts only the default ports = [443] with pipelock and
//     refuses any other port list; the built-in egress sidecar enforces
//     ports. This is a documented limit of choosing pipelock: a [443] rule
//     still lets the sandbox open tunnels to other ports of that host.
//   - Wildcard apex. Pipelock's "*.example.com" also matches "example.com"
//     (internal/scanner/scanner.go:2137-2141); bottle's does not. A
//     wildcard rule is refused unless the plan also allows the apex itself.
//   - Private addresses. AllowPrivate rules are expressed through the
//     top-level trusted_domains list, which exempts a host from the SSRF
//     check at scan and dial time (internal/scanner/scanner.go:855-861,
//     internal/proxy/proxy.go:1784); DLP and the allowlist still apply. A
//     wildcard there covers the apex too, so a private wildcard rule is
//     refused unless the apex is allowed private as well.
//   - An empty allow-list. Strict mode requires at least one api_allowlist
//     entry (internal/config/validate.go:250-252), so a plan that allows
//     nothing cannot run pipelock.
func CheckRules(p *plan.Plan) error {
	if p == nil {
		return errors.New("check pipelock rules: no plan")
	}
	rules := p.Egress.Rules
	if len(rules) == 0 {
		return fmt.Errorf("%w: pipelock runs in strict mode, which needs at least one allowed host, and this profile allows none; "+
			"add an allow() rule or use the built-in egress sidecar", ErrCannotExpress)
	}
	for _, r := range rules {
		if canon, err := plan.NormalizeHost(r.Host); err != nil || canon != r.Host {
			return fmt.Errorf("%w: %s: rule host %q is not a canonical host name", ErrCannotExpress, ruleFrom(r), r.Host)
		}
		if len(r.Ports) != 1 || r.Ports[0] != httpsPort {
			return fmt.Errorf("%w: %s: allow(%q, ports = %s): pipelock %s cannot restrict ports "+
				"(its api_allowlist names hosts only, and an allowed host is reachable on every port), "+
				"so with the pipelock sidecar bottle accepts only the default ports = [443]; "+
				"drop ports = or use the built-in egress sidecar, which enforces ports",
				ErrCannotExpress, ruleFrom(r), r.Host, formatPorts(r.Ports), Version)
		}
	}
	for _, r := range rules {
		apex, ok := strings.CutPrefix(r.Host, "*.")
		if !ok {
			continue
		}
		if !planAllows(rules, apex, false) {
			return fmt.Errorf("%w: %s: allow(%q): pipelock's %q also matches %q itself, which this profile does not allow; "+
				"add allow(%q) if that host may be reached, or use the built-in egress sidecar",
				ErrCannotExpress, ruleFrom(r), r.Host, r.Host, apex, apex)
		}
		if r.AllowPrivate && !planAllows(rules, apex, true) {
			return fmt.Errorf("%w: %s: allow(%q) with allow_private: pipelock's trusted_domains entry %q also lets %q itself "+
				"resolve to private addresses, which this profile does not allow; "+
				"allow %q with allow_private too, or use the built-in egress sidecar",
				ErrCannotExpress, ruleFrom(r), r.Host, r.Host, apex, apex)
		}
	}
	return nil
}

// planAllows reports whether some rule matches name with bottle's matching
// (plan.MatchHost), and, if private is set, whether such a rule also
// allows private addresses.
func planAllows(rules []plan.Rule, name string, private bool) bool {
	for _, r := range rules {
		if plan.MatchHost(r.Host, name) && (!private || r.AllowPrivate) {
			return true
		}
	}
	return false
}

func ruleFrom(r plan.Rule) string {
	if r.From == "" {
		return "(unknown position)"
	}
	return r.From
}

func formatPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return "[" + strings.Join(s, ", ") + "]"
}
