package sidecars_test

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
	_ "github.com/bottle-dev/bottle/sidecars/all"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

func gatePlan() *plan.Plan {
	p := &plan.Plan{
		Slug:   "t",
		Agent:  plan.Agent{Command: []string{"claude"}, Env: []plan.EnvVar{{Name: "NO_PROXY", Value: "mine"}}},
		Egress: plan.Egress{Sidecar: plan.SidecarEgress, Rules: []plan.Rule{{Host: "example.com", Ports: []int{443}}}},
		Sidecars: []plan.Sidecar{
			{Name: plan.SidecarEgress, Egress: &plan.EgressConfig{ConnectTimeout: "10s", IdleTimeout: "1h0m0s"}},
			{Name: plan.SidecarGitGate, GitGate: &plan.GitGateConfig{MaxPushBytes: 1 << 20, Remotes: []plan.GitRemote{
				{Name: "docs", URL: "https://example.com/docs.git"}, {Name: "origin", URL: "git@github.com:acme/app.git"}}}},
			{Name: plan.SidecarSupervise, Supervise: &plan.SuperviseConfig{Timeout: "10m0s"}},
		},
	}
	return p
}

// TestEveryUnitIsRegistered checks the one registry: every sidecar a plan
// may name has a unit, each on its own loopback port.
func TestEveryUnitIsRegistered(t *testing.T) {
	if got := sidecars.Names(); !slices.Equal(got, plan.SidecarNames) && !slices.Equal(got, sortedCopy(plan.SidecarNames)) {
		t.Fatalf("registered units %v, want %v", got, plan.SidecarNames)
	}
	ports := map[int]string{}
	for _, name := range sidecars.Names() {
		u, _ := sidecars.Lookup(name)
		if other, dup := ports[u.Port]; dup {
			t.Errorf("%s and %s share port %d", name, other, u.Port)
		}
		ports[u.Port] = name
		if !strings.HasPrefix(u.URL(), "http://127.0.0.1:") {
			t.Errorf("%s is reached at %s, not on the sandbox's loopback", name, u.URL())
		}
	}
}

func sortedCopy(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// TestConfigureAndAgent follows a plan through the registry: the listeners
// a backend configures, the agent's environment and command, bottle
// guest's forwards, and each unit's section of the sidecar configuration.
func TestConfigureAndAgent(t *testing.T) {
	p := gatePlan()
	if err := sidecars.Configure(p, "/sock"); err != nil {
		t.Fatal(err)
	}
	for _, sc := range p.Sidecars {
		if sc.Listen.Network != "unix" || sc.Listen.Address != "/sock/"+sc.Name+".sock" {
			t.Errorf("%s listens on %+v", sc.Name, sc.Listen)
		}
	}
	cmd, env, err := sidecars.Agent(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"HTTPS_PROXY=http://127.0.0.1:3128", "http_proxy=http://127.0.0.1:3128",
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=url.http://127.0.0.1:8080/docs.git.insteadOf", "GIT_CONFIG_VALUE_0=https://example.com/docs.git",
		"GIT_CONFIG_KEY_1=url.http://127.0.0.1:8080/origin.git.insteadOf", "GIT_CONFIG_VALUE_1=git@github.com:acme/app.git",
		"MCP_TOOL_TIMEOUT=660000",
		"NO_PROXY=mine", // the profile's env() wins
	} {
		if !slices.Contains(env, want) {
			t.Errorf("agent env %q lacks %s", env, want)
		}
	}
	if slices.Contains(env, "NO_PROXY=127.0.0.1") {
		t.Errorf("the sidecar's NO_PROXY was kept beside the profile's: %q", env)
	}
	if !slices.Equal(cmd, []string{"claude"}) {
		t.Errorf("claude's command changed: %q (its MCP servers are in its HOME)", cmd)
	}
	files, err := sidecars.AgentFiles(p, nil, map[string]string{"ANTHROPIC_API_KEY": "sk-ant-api03-BOTTLEPHxxxxxxxxxxxxxxxxxxxxxx"})
	if err != nil || len(files) != 2 || !strings.Contains(string(files[0].Data), `"url": "http://127.0.0.1:8765/mcp"`) {
		t.Errorf("claude's files do not register the supervise server: %v %q", err, files)
	}
	// A one-off command runs as given, with the same environment.
	cmd, env2, _ := sidecars.Agent(p, []string{"make", "test"})
	if !slices.Equal(cmd, []string{"make", "test"}) || slices.Contains(env2, "MCP_TOOL_TIMEOUT=660000") {
		t.Errorf("one-off command changed: %q %q", cmd, env2)
	}
	if files, _ := sidecars.AgentFiles(p, []string{"make", "test"}, nil); files != nil {
		t.Errorf("a one-off command of another program got the agent's files: %q", files)
	}
	// A one-off command of the same agent is prepared as the agent.
	cmd, env2, _ = sidecars.Agent(p, []string{"claude", "-p", "hi"})
	files, _ = sidecars.AgentFiles(p, []string{"claude", "-p", "hi"}, nil)
	if len(cmd) != 3 || !slices.Contains(env2, "MCP_TOOL_TIMEOUT=660000") || len(files) != 2 {
		t.Errorf("one-off claude is not prepared as the agent: %q %q %d files", cmd, env2, len(files))
	}

	fws, err := sidecars.Forwards(p, sidecars.SandboxSocketDir)
	if err != nil {
		t.Fatal(err)
	}
	args := sidecars.GuestArgs(fws, []string{"true"})
	want := []string{"guest", "--forward", "127.0.0.1:3128=/run/bottle/egress.sock", "--forward", "127.0.0.1:8080=/run/bottle/git-gate.sock",
		"--forward", "127.0.0.1:8765=/run/bottle/supervise.sock", "--", "true"}
	if !slices.Equal(args, want) {
		t.Errorf("guest args %q\nwant %q", args, want)
	}

	cfg, err := srt.Render(p, "/state", 0o666)
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range cfg.Sidecars {
		var sec struct {
			Listen sidecars.Listen `json:"listen"`
		}
		if err := json.Unmarshal(raw, &sec); err != nil {
			t.Fatalf("%s section: %v", name, err)
		}
		if sec.Listen != (sidecars.Listen{Network: "unix", Address: "/sock/" + name + ".sock", Mode: 0o666}) {
			t.Errorf("%s section listens on %+v", name, sec.Listen)
		}
	}
	if len(cfg.Sidecars) != 3 {
		t.Errorf("config has %d sections, want 3", len(cfg.Sidecars))
	}
}

// TestUnknownSidecar: a plan naming a sidecar this build lacks is refused
// with the names it has.
func TestUnknownSidecar(t *testing.T) {
	p := &plan.Plan{Sidecars: []plan.Sidecar{{Name: "nope"}}}
	err := sidecars.Configure(p, "/x")
	if err == nil || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "egress") {
		t.Fatalf("Configure with an unknown sidecar: %v", err)
	}
}

// TestLayering keeps the imports running down the layers: no sidecar
// package imports a backend, the engine or the CLI, and the evaluator
// imports no renderer and no sidecar unit.
func TestLayering(t *testing.T) {
	const mod = "github.com/bottle-dev/bottle/"
	deps := func(pkgs ...string) map[string][]string {
		out, err := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}: {{join .Imports \" \"}}"}, pkgs...)...).Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		m := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			pkg, imps, _ := strings.Cut(line, ": ")
			m[pkg] = strings.Fields(imps)
		}
		return m
	}
	for pkg := range deps(mod + "sidecars/...") {
		if !strings.HasPrefix(pkg, mod+"sidecars") {
			continue
		}
		for dep := range deps(pkg) {
			for _, banned := range []string{mod + "backends", mod + "engine", mod + "cmd", mod + "render", mod + "starlark"} {
				if dep == banned || strings.HasPrefix(dep, banned+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
	for dep := range deps(mod+"starlark", mod+"starlark/builtins") {
		// The registry (package sidecars) is what it consults; no unit.
		if dep == mod+"render" || strings.HasPrefix(dep, mod+"render/") || strings.HasPrefix(dep, mod+"backends") || strings.HasPrefix(dep, mod+"sidecars/") {
			t.Errorf("the evaluator depends on %s", dep)
		}
	}
}

// TestSchemas: every unit declares its profile options, sorted as the
// evaluator lists them in messages, and a schema that fills in defaults.
func TestSchemas(t *testing.T) {
	for _, name := range sidecars.Names() {
		u, _ := sidecars.Lookup(name)
		if u.Build == nil || len(u.Options) == 0 || !slices.IsSorted(u.Options) {
			t.Errorf("%s: options %q, build %v", name, u.Options, u.Build != nil)
		}
	}
	sc, err := sidecars.Default(plan.SidecarEgress)
	if err != nil || sc.Name != plan.SidecarEgress || sc.Egress == nil || *sc.Egress != (plan.EgressConfig{ConnectTimeout: "10s", IdleTimeout: "1h0m0s"}) {
		t.Errorf("default egress sidecar: %+v, %v", sc, err)
	}
	if _, err := sidecars.Default(plan.SidecarGitGate); err == nil || !strings.Contains(err.Error(), "option remotes is required") {
		t.Errorf("git-gate without remotes: %v", err)
	}
}

// TestEgressSectionCarriesInspection: what the profile asks the egress
// proxy to decrypt reaches the proxy's configuration section: each rule's
// methods, paths and inspect, and sidecar("egress", inspect = True).
func TestEgressSectionCarriesInspection(t *testing.T) {
	p := gatePlan()
	p.Egress.Rules[0].Methods, p.Egress.Rules[0].Paths, p.Egress.Rules[0].Inspect = []string{"GET"}, []string{"/a/**"}, true
	u, err := sidecars.Get(plan.SidecarEgress)
	if err != nil {
		t.Fatal(err)
	}
	listen := sidecars.Listen{Network: "unix", Address: "/run/bottle/egress.sock"}
	for _, all := range []bool{false, true} {
		p.Sidecars[0].Egress.InspectAll = all
		p.Sidecars[0].Egress.OutboundScan = ""
		if all {
			p.Sidecars[0].Egress.OutboundScan = "log"
		}
		raw, err := u.Section(p, p.Sidecars[0], listen)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Rules       []plan.Rule `json:"rules"`
			InspectAll  bool        `json:"inspect_all"`
			ScanLogOnly bool        `json:"scan_log_only"`
			CA          string      `json:"ca"`
		}
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if got.InspectAll != all || got.ScanLogOnly != all || got.CA != "/run/bottle/egress-ca.pem" || len(got.Rules) != 1 || !slices.Equal(got.Rules[0].Methods, []string{"GET"}) ||
			!slices.Equal(got.Rules[0].Paths, []string{"/a/**"}) || !got.Rules[0].Inspect {
			t.Errorf("inspect %v: section %s", all, raw)
		}
	}
}
