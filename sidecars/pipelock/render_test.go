package pipelock

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/bottle-dev/bottle/plan"
)

func rule(host string, private bool, ports ...int) plan.Rule {
	if len(ports) == 0 {
		ports = []int{443}
	}
	return plan.Rule{Host: host, Ports: ports, AllowPrivate: private, From: "//bottle.star:3:6"}
}

func pipelockPlan(cfg plan.PipelockConfig, rules ...plan.Rule) *plan.Plan {
	return &plan.Plan{
		Version: plan.Version,
		Backend: plan.Backend{Kind: plan.BackendDocker, Image: "images.example.com/acme/agent:1.4"},
		Egress:  plan.Egress{Sidecar: plan.SidecarPipelock, Rules: rules},
		Sidecars: []plan.Sidecar{{
			Name:     plan.SidecarPipelock,
			Listen:   plan.Listener{Network: "tcp", Address: "0.0.0.0:8888", URL: "http://proxy.internal:8888"},
			Pipelock: &cfg,
		}},
	}
}

var defaultPipelock = plan.PipelockConfig{ExplainBlocks: true, BodyScanAction: "block", IdleTimeoutSeconds: 600, MaxTunnelSeconds: 3600}

func TestRenderGolden(t *testing.T) {
	bodyBlock := defaultPipelock
	bodyBlock.RequestBodyScanning = true
	bodyWarn := plan.PipelockConfig{RequestBodyScanning: true, BodyScanAction: "warn", IdleTimeoutSeconds: 120, MaxTunnelSeconds: 300}
	tests := []struct {
		golden string
		plan   *plan.Plan
		listen string
	}{
		{"pipelock_basic.yaml", pipelockPlan(defaultPipelock,
			rule("api.anthropic.com", false), rule("claude.ai", false), rule("platform.claude.com", false)), "0.0.0.0:8888"},
		{"pipelock_wildcard_private.yaml", pipelockPlan(bodyBlock,
			rule("*.githubusercontent.com", false), rule("githubusercontent.com", false),
			rule("registry.corp.example", true), rule("*.svc.corp.example", true), rule("svc.corp.example", true),
			rule("registry.corp.example", false)), "127.0.0.1:3128"},
		{"pipelock_body_warn.yaml", pipelockPlan(bodyWarn,
			rule("xn--bcher-kva.example", false), rule("*.packages.example.net", false), rule("packages.example.net", false)), "[::1]:8888"},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := Render(tc.plan, tc.listen)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			checkGolden(t, tc.golden, got)
		})
	}
}

// TestRenderDecodes reads the rendered YAML back into a generic map and
// checks the values that decide what the sandbox can reach.
func TestRenderDecodes(t *testing.T) {
	p := pipelockPlan(defaultPipelock, rule("b.example.com", true), rule("a.example.com", false), rule("a.example.com", false))
	out, err := Render(p, "0.0.0.0:8888")
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("unmarshal: %v\n%s", err, out)
	}
	if doc["mode"] != "strict" || doc["enforce"] != true || doc["version"] != 1 {
		t.Errorf("mode/enforce/version = %v/%v/%v, want strict/true/1", doc["mode"], doc["enforce"], doc["version"])
	}
	allow, _ := doc["api_allowlist"].([]any)
	if len(allow) != 2 || allow[0] != "a.example.com" || allow[1] != "b.example.com" {
		t.Errorf("api_allowlist = %v, want sorted and de-duplicated [a.example.com b.example.com]", allow)
	}
	trusted, _ := doc["trusted_domains"].([]any)
	if len(trusted) != 1 || trusted[0] != "b.example.com" {
		t.Errorf("trusted_domains = %v, want [b.example.com]", trusted)
	}
	fp, _ := doc["forward_proxy"].(map[string]any)
	if fp["enabled"] != true || fp["idle_timeout_seconds"] != 600 || fp["max_tunnel_seconds"] != 3600 {
		t.Errorf("forward_proxy = %v", fp)
	}
	rbs, _ := doc["request_body_scanning"].(map[string]any)
	if rbs["enabled"] != false {
		t.Errorf("request_body_scanning.enabled = %v, want an explicit false (pipelock turns an omitted key on)", rbs["enabled"])
	}
	if _, ok := rbs["action"]; ok {
		t.Errorf("request_body_scanning.action rendered while scanning is off: %v", rbs)
	}
}

func TestRenderNoTrustedDomainsKeyWithoutPrivateRules(t *testing.T) {
	out, err := Render(pipelockPlan(defaultPipelock, rule("a.example.com", false)), "0.0.0.0:8888")
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if strings.Contains(string(out), "trusted_domains") {
		t.Errorf("trusted_domains rendered without private rules:\n%s", out)
	}
}

func TestCheckRulesRefusals(t *testing.T) {
	tests := []struct {
		name  string
		rules []plan.Rule
		want  string
	}{
		{"no rules", nil,
			"pipelock cannot express this plan: pipelock runs in strict mode, which needs at least one allowed host, and this profile allows none; " +
				"add an allow() rule or use the built-in egress sidecar"},
		{"other port", []plan.Rule{rule("api.example.com", false, 8443)},
			`pipelock cannot express this plan: //bottle.star:3:6: allow("api.example.com", ports = [8443]): pipelock 2.3.0 cannot restrict ports ` +
				`(its api_allowlist names hosts only, and an allowed host is reachable on every port), ` +
				`so with the pipelock sidecar bottle accepts only the default ports = [443]; ` +
				`drop ports = or use the built-in egress sidecar, which enforces ports`},
		{"443 and 80", []plan.Rule{rule("api.example.com", false, 80, 443)}, `ports = [80, 443]): pipelock 2.3.0 cannot restrict ports`},
		{"no ports", []plan.Rule{{Host: "api.example.com", Ports: []int{}, From: "//x.star:1:1"}}, `//x.star:1:1: allow("api.example.com", ports = [])`},
		{"wildcard without apex", []plan.Rule{rule("*.example.com", false), rule("www.example.com", false)},
			`pipelock cannot express this plan: //bottle.star:3:6: allow("*.example.com"): pipelock's "*.example.com" also matches "example.com" itself, ` +
				`which this profile does not allow; add allow("example.com") if that host may be reached, or use the built-in egress sidecar`},
		{"private wildcard with public apex", []plan.Rule{rule("*.corp.example", true), rule("corp.example", false)},
			`pipelock cannot express this plan: //bottle.star:3:6: allow("*.corp.example") with allow_private: pipelock's trusted_domains entry "*.corp.example" ` +
				`also lets "corp.example" itself resolve to private addresses, which this profile does not allow; ` +
				`allow "corp.example" with allow_private too, or use the built-in egress sidecar`},
		{"nested private wildcard whose apex the outer wildcard allows publicly", []plan.Rule{
			rule("*.example.com", false), rule("example.com", false), rule("*.a.example.com", true)},
			`pipelock's trusted_domains entry "*.a.example.com" also lets "a.example.com" itself resolve to private addresses`},
		{"non-canonical host", []plan.Rule{rule("Evil.example.com\nmode: audit", false)},
			`pipelock cannot express this plan: //bottle.star:3:6: rule host "Evil.example.com\nmode: audit" is not a canonical host name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := pipelockPlan(defaultPipelock, tc.rules...)
			err := CheckRules(p)
			if err == nil {
				t.Fatal("CheckRules accepted the plan")
			}
			if !errors.Is(err, ErrCannotExpress) {
				t.Errorf("error does not wrap ErrCannotExpress: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error =\n%s\nwant it to contain\n%s", err, tc.want)
			}
			if _, rerr := Render(p, "0.0.0.0:8888"); rerr == nil || !errors.Is(rerr, ErrCannotExpress) {
				t.Errorf("Render rendered a plan CheckRules refuses (err %v)", rerr)
			}
		})
	}
}

func TestCheckRulesAccepts(t *testing.T) {
	for name, rules := range map[string][]plan.Rule{
		"exact hosts":               {rule("api.anthropic.com", false), rule("claude.ai", false)},
		"wildcard with apex":        {rule("*.example.com", false), rule("example.com", false)},
		"apex via outer wildcard":   {rule("*.example.com", false), rule("example.com", false), rule("*.a.example.com", false)},
		"private wildcard and apex": {rule("*.corp.example", true), rule("corp.example", true)},
		"private apex only":         {rule("*.corp.example", false), rule("corp.example", true)},
	} {
		t.Run(name, func(t *testing.T) {
			if err := CheckRules(pipelockPlan(defaultPipelock, rules...)); err != nil {
				t.Errorf("CheckRules: %v", err)
			}
		})
	}
}

func TestRenderPlanErrors(t *testing.T) {
	good := func() *plan.Plan { return pipelockPlan(defaultPipelock, rule("api.example.com", false)) }
	tests := []struct {
		name   string
		mutate func(*plan.Plan)
		listen string
		want   string
	}{
		{"egress sidecar", func(p *plan.Plan) { p.Egress.Sidecar = plan.SidecarEgress }, "0.0.0.0:8888",
			`render pipelock config: the plan's egress sidecar is "egress", not "pipelock"`},
		{"no sidecar", func(p *plan.Plan) { p.Sidecars = nil }, "0.0.0.0:8888", "render pipelock config: the plan has no pipelock sidecar"},
		{"nil options", func(p *plan.Plan) { p.Sidecars[0].Pipelock = nil }, "0.0.0.0:8888", "has no pipelock options"},
		{"twice", func(p *plan.Plan) { p.Sidecars = append(p.Sidecars, p.Sidecars[0]) }, "0.0.0.0:8888", "more than once"},
		{"zero idle", func(p *plan.Plan) { p.Sidecars[0].Pipelock.IdleTimeoutSeconds = 0 }, "0.0.0.0:8888",
			"pipelock max_tunnel_seconds (3600) and idle_timeout_seconds (0) must be positive"},
		{"bad action", func(p *plan.Plan) {
			p.Sidecars[0].Pipelock.RequestBodyScanning = true
			p.Sidecars[0].Pipelock.BodyScanAction = "strip\nmode: audit"
		}, "0.0.0.0:8888", `pipelock body_scan_action is "strip\nmode: audit"; it must be "block" or "warn"`},
		{"unix listen", func(*plan.Plan) {}, "/run/bottle/egress.sock", `listen address "/run/bottle/egress.sock"`},
		{"port range", func(*plan.Plan) {}, "0.0.0.0:65536", `port "65536" is not a number from 1 to 65535`},
		{"port form", func(*plan.Plan) {}, "0.0.0.0:+80", `port "+80" is not a number`},
		{"name host", func(*plan.Plan) {}, "proxy.internal:8888", `host "proxy.internal" is not an IP address`},
		{"injection in listen", func(*plan.Plan) {}, "0.0.0.0:8888\nmode: audit", `listen address "0.0.0.0:8888\nmode: audit"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.mutate(p)
			_, err := Render(p, tc.listen)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
