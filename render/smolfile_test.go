package render

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/bottle-dev/bottle/plan"
)

func smolPlan() *plan.Plan {
	return &plan.Plan{
		Version: plan.Version,
		Backend: plan.Backend{
			Kind: plan.BackendSmolmachines, Image: "images.example.com/acme/agent:1.4", Workdir: "/workspace",
			CPUs: 4, MemoryBytes: 8 << 30,
		},
		Agent:   plan.Agent{Command: []string{"claude"}, Workdir: "/workspace"},
		Secrets: []plan.Secret{{Name: "ANTHROPIC_API_KEY", FromEnv: "ANTHROPIC_API_KEY"}},
	}
}

func TestSmolfileGolden(t *testing.T) {
	guest := []string{"/opt/bottle/bottle", "guest", "--config", "/opt/bottle/guest.json", "--", "claude"}
	vols := []Volume{
		{Host: "/home/dev/src/app", Guest: "/workspace"},
		{Host: "/home/dev/.local/state/bottle/app-1a2b3c/bin", Guest: "/opt/bottle", ReadOnly: true},
	}
	env := map[string]string{"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "", "EDITOR": "vi -e"}

	t.Run("full", func(t *testing.T) {
		got, err := Smolfile(smolPlan(), guest, env, vols)
		if err != nil {
			t.Fatalf("Smolfile: %v", err)
		}
		checkGolden(t, "smolfile_full.toml", got)
	})
	t.Run("defaults", func(t *testing.T) {
		p := smolPlan()
		p.Backend.CPUs, p.Backend.MemoryBytes, p.Backend.Workdir, p.Agent.Workdir = 0, 0, "", ""
		got, err := Smolfile(p, nil, nil, nil)
		if err != nil {
			t.Fatalf("Smolfile: %v", err)
		}
		checkGolden(t, "smolfile_minimal.toml", got)
	})
	t.Run("rounding and hostile strings", func(t *testing.T) {
		p := smolPlan()
		p.Backend.MemoryBytes = 1_500_000_000 // 1430.51 MiB
		p.Backend.StorageBytes = 20<<30 + 1
		p.Agent.Workdir = "/src/w\"x"
		hostile := map[string]string{"X": "a\"\nnet = true\n[network]\nallow_hosts = [\"*\"]\n#"}
		got, err := Smolfile(p, []string{"sh", "-c", "echo '\"]\nnet = true"}, hostile,
			[]Volume{{Host: "/tmp/a:b", Guest: "/data"}})
		if err != nil {
			t.Fatalf("Smolfile: %v", err)
		}
		checkGolden(t, "smolfile_hostile.toml", got)
	})
}

// TestSmolfileRoundTrip decodes the rendered file strictly and checks the
// values, including that hostile strings stay inside their own keys.
func TestSmolfileRoundTrip(t *testing.T) {
	p := smolPlan()
	p.Backend.MemoryBytes = 1_500_000_000
	hostile := "a\"\nnet = true\n[network]\nallow_hosts = [\"*\"]"
	out, err := Smolfile(p, []string{"x", hostile}, map[string]string{"H": hostile}, []Volume{{Host: "/a", Guest: "/b", ReadOnly: true}})
	if err != nil {
		t.Fatalf("Smolfile: %v", err)
	}
	var got map[string]any
	if err := toml.Unmarshal(out, &got); err != nil {
		t.Fatalf("unmarshal: %v\n%s", err, out)
	}
	want := map[string]any{
		"cmd": []any{"x", hostile}, "env": []any{"H=" + hostile},
		"cpus": int64(4), "memory": int64(1431), "net": false, "volumes": []any{"/a:/b:ro"},
	}
	if len(got) != len(want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
	// smolvm would read an image key as a registry reference and refuse
	// it on a machine without a network.
	if img, ok := got["image"]; ok {
		t.Errorf("the Smolfile names image %v", img)
	}
	for k, w := range want {
		if g := got[k]; !equalTOML(g, w) {
			t.Errorf("%s = %#v, want %#v", k, g, w)
		}
	}
}

func equalTOML(a, b any) bool {
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok != bok {
		return false
	}
	if !aok {
		return a == b
	}
	if len(as) != len(bs) {
		return false
	}
	for i := range as {
		if as[i] != bs[i] {
			return false
		}
	}
	return true
}

func TestSmolfileErrors(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*plan.Plan)
		cmd     []string
		env     map[string]string
		volumes []Volume
		want    string
	}{
		{"docker plan", func(p *plan.Plan) { p.Backend.Kind = plan.BackendDocker }, nil, nil, nil,
			`render Smolfile: the plan's backend is "docker", not "smolmachines"`},
		{"no image", func(p *plan.Plan) { p.Backend.Image = "" }, nil, nil, nil, "names no image"},
		{"image newline", func(p *plan.Plan) { p.Backend.Image = "alpine\nnet = true" }, nil, nil, nil, "holds white space or control characters"},
		{"fractional cpus", func(p *plan.Plan) { p.Backend.CPUs = 1.5 }, nil, nil, nil, "cpus = 1.5: smolvm takes a whole number of vCPUs from 1 to 255"},
		{"too many cpus", func(p *plan.Plan) { p.Backend.CPUs = 256 }, nil, nil, nil, "cpus = 256"},
		{"tiny memory", func(p *plan.Plan) { p.Backend.MemoryBytes = 32 << 20 }, nil, nil, nil, "memory is 32 MiB; smolvm needs at least 64 MiB"},
		{"memory overflow", func(p *plan.Plan) { p.Backend.MemoryBytes = (1 << 32) * mib }, nil, nil, nil, "memory:"},
		{"relative workdir", func(p *plan.Plan) { p.Agent.Workdir = "work" }, nil, nil, nil, `workdir "work" is not an absolute guest path`},
		{"empty program", func(*plan.Plan) {}, []string{""}, nil, nil, "program name is empty"},
		{"nul in cmd", func(*plan.Plan) {}, []string{"a", "b\x00"}, nil, nil, "command argument 1 holds a NUL byte"},
		{"bad env name", func(*plan.Plan) {}, nil, map[string]string{"A=B": "x"}, nil, `environment variable name "A=B"`},
		{"digit env name", func(*plan.Plan) {}, nil, map[string]string{"1A": "x"}, nil, `environment variable name "1A"`},
		{"secret in env", func(*plan.Plan) {}, nil, map[string]string{"ANTHROPIC_API_KEY": "sk"}, nil,
			`environment variable "ANTHROPIC_API_KEY" is a secret of the plan; secrets never go into the Smolfile`},
		{"trailing space", func(*plan.Plan) {}, nil, map[string]string{"A": "x "}, nil, `environment variable "A" ends in white space`},
		{"relative host", func(*plan.Plan) {}, nil, nil, []Volume{{Host: "src", Guest: "/w"}}, `volume host path "src" is not a clean absolute path`},
		{"unclean host", func(*plan.Plan) {}, nil, nil, []Volume{{Host: "/a/../etc", Guest: "/w"}}, `volume host path "/a/../etc"`},
		{"colon guest", func(*plan.Plan) {}, nil, nil, []Volume{{Host: "/a", Guest: "/w:ro"}}, `volume guest path "/w:ro"`},
		{"relative guest", func(*plan.Plan) {}, nil, nil, []Volume{{Host: "/a", Guest: "w"}}, `volume guest path "w"`},
		{"duplicate guest", func(*plan.Plan) {}, nil, nil, []Volume{{Host: "/a", Guest: "/w"}, {Host: "/b", Guest: "/w"}},
			`two volumes share the guest path "/w"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := smolPlan()
			tc.mutate(p)
			_, err := Smolfile(p, tc.cmd, tc.env, tc.volumes)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Smolfile error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
