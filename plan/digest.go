package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// policy is the canonical form the digest is computed over: everything that
// decides what runs in the sandbox, what it can reach or touch and where its
// data goes, and nothing else. That includes the agent's command, working
// directory and every env() value (an ANTHROPIC_BASE_URL sends the API key
// elsewhere), but never a secret's value, which the plan does not hold. Lists are
// sorted and de-duplicated so that declaration order does not matter;
// positions, the slug, the state directory and the profile's own path are
// left out so that moving a rule to another file, or starting the same
// profile from another checkout, does not change it. The shared
// repositories (Plan.Repos) are left out too: moving a rule into a team
// repository changes only its position, while a repository commit that
// changes what a rule allows changes the policy itself.
type policy struct {
	Backend  string          `json:"backend"`
	Image    string          `json:"image"`
	Runtime  string          `json:"runtime"`
	User     string          `json:"user"`
	Egress   string          `json:"egress"`
	Allow    []string        `json:"allow"`
	Mounts   []string        `json:"mounts"`
	Secrets  []string        `json:"secrets"`
	Sidecars []policySidecar `json:"sidecars"`
	// Command and Workdir are the agent's; Env is its env(), NAME=VALUE,
	// sorted.
	Command []string `json:"command"`
	Workdir string   `json:"workdir"`
	Env     []string `json:"env"`
	// Provider is the agent's provider, which renders its configuration;
	// left out when empty, so that older plans keep their digest.
	Provider string `json:"provider,omitempty"`
	// Home is the agent's HOME's kind; left out when fresh. Where a
	// persistent one lives is not policy, as the state directory is not.
	Home string `json:"home,omitempty"`
	// CPUs and Memory are the sandbox's resources.
	CPUs   float64  `json:"cpus"`
	Memory int64    `json:"memory"`
	Pids   int64    `json:"pids,omitempty"`
	Caps   []string `json:"caps,omitempty"`
}

type policySidecar struct {
	Name      string           `json:"name"`
	Egress    *EgressConfig    `json:"egress,omitempty"`
	Pipelock  *PipelockConfig  `json:"pipelock,omitempty"`
	GitGate   *GitGateConfig   `json:"git_gate,omitempty"`
	Supervise *SuperviseConfig `json:"supervise,omitempty"`
}

// ComputeDigest returns "sha256:<hex>" over the plan's policy. It does not
// read or change p.Digest.
func (p *Plan) ComputeDigest() string {
	pol := policy{
		Backend:  p.Backend.Kind,
		Image:    p.Backend.Image,
		Runtime:  p.Backend.Runtime,
		User:     p.Backend.User,
		Egress:   p.Egress.Sidecar,
		Command:  p.Agent.Command,
		Workdir:  p.Agent.Workdir,
		Provider: p.Agent.Provider,
		Home:     p.Agent.Home,
		CPUs:     p.Backend.CPUs,
		Memory:   p.Backend.MemoryBytes,
		Pids:     p.Backend.PidsLimit,
		Caps:     p.Backend.CapAdd,
	}
	for _, e := range p.Agent.Env {
		pol.Env = append(pol.Env, e.Name+"="+e.Value)
	}
	for _, r := range p.Egress.Rules {
		for _, port := range r.Ports {
			s := r.Host + ":" + strconv.Itoa(port)
			if r.AllowPrivate {
				s += " private"
			}
			pol.Allow = append(pol.Allow, s+restrictions(r))
		}
	}
	for _, m := range p.Mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		pol.Mounts = append(pol.Mounts, m.HostPath+"\x00"+m.Target+"\x00"+mode+"\x00"+strings.Join(m.Protect, "\x00"))
	}
	for _, s := range p.Secrets {
		e := s.Name + "\x00env:" + s.FromEnv + "\x00file:" + s.FromFile
		if len(s.Hosts) > 0 {
			e += "\x00hosts:" + strings.Join(sortedSet(s.Hosts), "\x00")
		}
		pol.Secrets = append(pol.Secrets, e)
	}
	for _, s := range p.Sidecars {
		pol.Sidecars = append(pol.Sidecars, policySidecar{
			Name: s.Name, Egress: s.Egress, Pipelock: s.Pipelock, GitGate: s.GitGate, Supervise: s.Supervise,
		})
	}
	for _, l := range []*[]string{&pol.Allow, &pol.Mounts, &pol.Secrets, &pol.Env} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	slices.SortFunc(pol.Sidecars, func(a, b policySidecar) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	// json.Marshal of this struct cannot fail: it holds only strings, bools,
	// ints and slices of them.
	b, _ := json.Marshal(pol)
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// restrictions is what a rule adds to each of its host:port pairs in the
// digest: its inspect, methods and paths, as sets. A rule without them
// adds nothing, so that plans from before they existed keep their digest.
// The paths come last: none holds a NUL (CheckPath), so the encoding is
// unambiguous.
func restrictions(r Rule) string {
	var s string
	if r.Inspect {
		s += "\x00inspect"
	}
	if len(r.Methods) > 0 {
		s += "\x00methods:" + strings.Join(sortedSet(r.Methods), ",")
	}
	if len(r.Paths) > 0 {
		s += "\x00paths:\x00" + strings.Join(sortedSet(r.Paths), "\x00")
	}
	return s
}

// sortedSet returns a sorted, de-duplicated copy of l.
func sortedSet(l []string) []string {
	out := slices.Clone(l)
	slices.Sort(out)
	return slices.Compact(out)
}
