package plan

import (
	"strings"
	"testing"
)

func validPlan() *Plan {
	return &Plan{
		Version: Version,
		Backend: Backend{Kind: BackendDocker, Image: "node:22", Workdir: "/workspace", From: "//b.star:1:7"},
		Agent:   Agent{Command: []string{"claude"}, Env: []EnvVar{{Name: "A", Value: "1"}}, Workdir: "/workspace"},
		Egress: Egress{Sidecar: SidecarEgress, Rules: []Rule{
			{Host: "api.example.com", Ports: []int{443}, From: "//b.star:2:6"},
			{Host: "*.cdn.example.com", Ports: []int{443, 8443}, From: "//b.star:3:6"},
		}},
		Mounts:  []Mount{{Source: ".", HostPath: "/home/u/app", Target: "/workspace", From: "//b.star:4:6"}},
		Secrets: []Secret{{Name: "TOKEN", FromEnv: "TOKEN"}},
		Sidecars: []Sidecar{
			{Name: SidecarEgress, Listen: Listener{Network: "tcp", Address: "0.0.0.0:3128", URL: "http://proxy.internal:3128"},
				Egress: &EgressConfig{ConnectTimeout: "10s", IdleTimeout: "1h0m0s"}},
			{Name: SidecarSupervise, Listen: Listener{Network: "tcp", Address: "0.0.0.0:8765", URL: "http://supervise:8765/mcp"},
				Supervise: &SuperviseConfig{Timeout: "10m0s"}},
		},
	}
}

func TestValidateAcceptsAValidPlan(t *testing.T) {
	if err := validPlan().Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(p *Plan)
		want   string
	}{
		{"version", func(p *Plan) { p.Version = 2 }, "plan version 2 is not supported"},
		{"no backend", func(p *Plan) { p.Backend.Kind = "" }, "no backend"},
		{"unknown backend", func(p *Plan) { p.Backend.Kind = "lxc" }, `unknown backend "lxc"`},
		{"no image", func(p *Plan) { p.Backend.Image = "" }, "backend has no image"},
		{"smol user", func(p *Plan) { p.Backend.Kind = BackendSmolmachines; p.Backend.User = "1000" }, "smolmachines takes no user"},
		{"relative workdir", func(p *Plan) { p.Agent.Workdir = "src" }, `workdir "src" is not an absolute path`},
		{"no command", func(p *Plan) { p.Agent.Command = nil }, "agent has no command"},
		{"env twice", func(p *Plan) { p.Agent.Env = append(p.Agent.Env, EnvVar{Name: "A"}) }, "environment variable A set twice"},
		{"secret shadows env", func(p *Plan) { p.Secrets[0].Name = "A" }, "secret A also set"},
		{"secret two sources", func(p *Plan) { p.Secrets[0].FromFile = "/k" }, "exactly one of from_env and from_file"},
		{"ip rule", func(p *Plan) { p.Egress.Rules[0].Host = "10.0.0.1" }, "IP literals are never allowed"},
		{"uncanonical rule", func(p *Plan) { p.Egress.Rules[0].Host = "API.example.com" }, "not in canonical form"},
		{"no ports", func(p *Plan) { p.Egress.Rules[0].Ports = nil }, "has no ports"},
		{"bad port", func(p *Plan) { p.Egress.Rules[0].Ports = []int{0} }, "port 0 is out of range"},
		{"relative mount", func(p *Plan) { p.Mounts[0].Target = "ws" }, "both paths must be absolute"},
		{"mount twice", func(p *Plan) { p.Mounts = append(p.Mounts, p.Mounts[0]) }, "two mounts target /workspace"},
		{"no egress", func(p *Plan) { p.Sidecars = p.Sidecars[1:] }, "exactly one egress sidecar"},
		{"repo twice", func(p *Plan) { p.Repos = []Repo{{Name: "a", Path: "/a"}, {Name: "a", Path: "/b"}} }, "repository a is listed twice"},
		{"repo branch", func(p *Plan) { p.Repos = []Repo{{Name: "a", URL: "file:///t", Commit: "main"}} }, `commit "main" is not a full commit id`},
		{"repo relative", func(p *Plan) { p.Repos = []Repo{{Name: "a", Path: "t"}} }, `path "t" is not an absolute path`},
		{"two egress", func(p *Plan) {
			p.Sidecars = append(p.Sidecars, Sidecar{Name: SidecarPipelock, Pipelock: &PipelockConfig{},
				Listen: Listener{Network: "tcp", Address: "x", URL: "y"}})
		}, "this plan has 2"},
		{"wrong config", func(p *Plan) { p.Sidecars[1].Supervise = nil; p.Sidecars[1].Egress = &EgressConfig{} }, "must carry exactly its own configuration"},
		{"bad duration", func(p *Plan) { p.Sidecars[1].Supervise.Timeout = "soon" }, `"soon" is not a positive duration`},
		{"bad network", func(p *Plan) { p.Sidecars[0].Listen.Network = "udp" }, `network "udp"`},
		{"empty gate", func(p *Plan) {
			p.Sidecars = append(p.Sidecars, Sidecar{Name: SidecarGitGate, GitGate: &GitGateConfig{},
				Listen: Listener{Network: "tcp", Address: "x", URL: "y"}})
		}, "git-gate has no remotes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := validPlan()
			tc.mutate(p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDigestStableUnderReordering(t *testing.T) {
	a, b := validPlan(), validPlan()
	b.Egress.Rules[0], b.Egress.Rules[1] = b.Egress.Rules[1], b.Egress.Rules[0]
	b.Sidecars[0], b.Sidecars[1] = b.Sidecars[1], b.Sidecars[0]
	// Provenance, slug, state directory and profile path are not policy.
	b.Egress.Rules[0].From = "//elsewhere.star:9:9"
	b.Slug, b.StateDir, b.Profile.Path = "other-123456", "/state/other", "/other/bottle.star"
	if a.ComputeDigest() != b.ComputeDigest() {
		t.Fatalf("digest changed under reordering or non-policy changes")
	}
	// A duplicated rule does not change the allowed set.
	b.Egress.Rules = append(b.Egress.Rules, Rule{Host: "api.example.com", Ports: []int{443}, From: "//x.star:1:1"})
	if a.ComputeDigest() != b.ComputeDigest() {
		t.Fatalf("digest changed when a rule was repeated")
	}
	if d := a.ComputeDigest(); !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 {
		t.Fatalf("digest %q is not sha256:<64 hex>", d)
	}
}

func TestDigestLeavesOutRepos(t *testing.T) {
	p := validPlan()
	d := p.ComputeDigest()
	p.Repos = []Repo{{Name: "acme", URL: "file:///t", Commit: "0123456789abcdef0123456789abcdef01234567"}}
	p.Egress.Rules[0].From = "@acme//lib.star:2:10"
	if got := p.ComputeDigest(); got != d {
		t.Errorf("moving a rule into a repository changed the digest: %s, was %s", got, d)
	}
}

func TestDigestChangesWithPolicy(t *testing.T) {
	base := validPlan().ComputeDigest()
	for name, mutate := range map[string]func(p *Plan){
		"allow host":     func(p *Plan) { p.Egress.Rules[0].Host = "api2.example.com" },
		"allow port":     func(p *Plan) { p.Egress.Rules[0].Ports = []int{443, 8443} },
		"allow private":  func(p *Plan) { p.Egress.Rules[0].AllowPrivate = true },
		"extra rule":     func(p *Plan) { p.Egress.Rules = append(p.Egress.Rules, Rule{Host: "x.example.com", Ports: []int{443}}) },
		"mount path":     func(p *Plan) { p.Mounts[0].HostPath = "/home/u" },
		"mount target":   func(p *Plan) { p.Mounts[0].Target = "/src" },
		"mount readonly": func(p *Plan) { p.Mounts[0].ReadOnly = true },
		"backend kind":   func(p *Plan) { p.Backend.Kind = BackendSmolmachines },
		"image":          func(p *Plan) { p.Backend.Image = "node:23" },
		"runtime":        func(p *Plan) { p.Backend.Runtime = "runsc" },
		"user":           func(p *Plan) { p.Backend.User = "0" },
		"secret source":  func(p *Plan) { p.Secrets[0].FromEnv = "OTHER" },
		// What runs, and where its data goes (issue: the digest missed them).
		"agent command":  func(p *Plan) { p.Agent.Command = []string{"claude", "--dangerously-skip-permissions"} },
		"agent workdir":  func(p *Plan) { p.Agent.Workdir = "/elsewhere" },
		"agent provider": func(p *Plan) { p.Agent.Provider = "codex" },
		"agent home":     func(p *Plan) { p.Agent.Home = HomePersistent },
		"env value": func(p *Plan) {
			p.Agent.Env = append(p.Agent.Env, EnvVar{Name: "ANTHROPIC_BASE_URL", Value: "https://attacker.example"})
		},
		"cpus":            func(p *Plan) { p.Backend.CPUs = 8 },
		"memory":          func(p *Plan) { p.Backend.MemoryBytes = 1 << 30 },
		"egress sidecar":  func(p *Plan) { p.Egress.Sidecar = SidecarPipelock },
		"sidecar config":  func(p *Plan) { p.Sidecars[1].Supervise = &SuperviseConfig{Timeout: "1m0s"} },
		"sidecar removed": func(p *Plan) { p.Sidecars = p.Sidecars[:1] },
		"git remote": func(p *Plan) {
			p.Sidecars = append(p.Sidecars, Sidecar{Name: SidecarGitGate, GitGate: &GitGateConfig{Remotes: []GitRemote{{Name: "origin", URL: "/srv/a.git"}}}})
		},
	} {
		p := validPlan()
		mutate(p)
		if p.ComputeDigest() == base {
			t.Errorf("%s: digest did not change", name)
		}
	}
}
