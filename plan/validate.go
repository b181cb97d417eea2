package plan

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// Validate checks the plan's own consistency: the rules a builder or a
// hand-edited plan.json must not break. It returns every problem found,
// joined.
func (p *Plan) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if p.Version != Version {
		bad("plan version %d is not supported; this bottle reads version %d", p.Version, Version)
	}
	switch p.Backend.Kind {
	case BackendDocker, BackendSmolmachines:
	case "":
		bad("no backend; declare docker(...) or smolmachines(...)")
	default:
		bad("unknown backend %q", p.Backend.Kind)
	}
	if p.Backend.Image == "" {
		bad("backend has no image")
	}
	if p.Backend.CPUs < 0 || p.Backend.MemoryBytes < 0 || p.Backend.StorageBytes < 0 {
		bad("backend resources must not be negative")
	}
	if p.Backend.Kind == BackendSmolmachines && (p.Backend.User != "" || p.Backend.Runtime != "") {
		bad("smolmachines takes no user or runtime")
	}
	for _, w := range []string{p.Backend.Workdir, p.Agent.Workdir} {
		if !path.IsAbs(w) {
			bad("workdir %q is not an absolute path", w)
		}
	}
	if len(p.Agent.Command) == 0 || p.Agent.Command[0] == "" {
		bad("agent has no command")
	}

	names := map[string]string{}
	for _, e := range p.Agent.Env {
		if prev, ok := names[e.Name]; ok {
			bad("environment variable %s set twice (%s and %s)", e.Name, prev, e.From)
		}
		names[e.Name] = e.From
	}
	for _, s := range p.Secrets {
		if prev, ok := names[s.Name]; ok {
			bad("secret %s also set at %s", s.Name, prev)
		}
		names[s.Name] = s.From
		if (s.FromEnv == "") == (s.FromFile == "") {
			bad("secret %s needs exactly one of from_env and from_file", s.Name)
		}
		if s.Hosts != nil {
			if h, err := NormalizeSecretHosts(s.Hosts); err != nil {
				bad("secret %s: %v", s.Name, err)
			} else if !slices.Equal(h, s.Hosts) {
				bad("secret %s: hosts %q are not canonical, sorted and unique; want %q", s.Name, s.Hosts, h)
			}
		}
	}

	for _, r := range p.Egress.Rules {
		if err := CheckRule(r); err != nil {
			bad("rule from %s: %v", r.From, err)
		}
	}

	targets := map[string]bool{}
	for _, m := range p.Mounts {
		if !path.IsAbs(m.HostPath) || !path.IsAbs(m.Target) {
			bad("mount %s -> %s: both paths must be absolute", m.HostPath, m.Target)
		}
		if targets[m.Target] {
			bad("two mounts target %s", m.Target)
		}
		for _, rel := range m.Protect {
			if err := CheckProtect(rel); err != nil {
				bad("mount %s: %v", m.Target, err)
			}
		}
		targets[m.Target] = true
	}

	egress := 0
	seen := map[string]bool{}
	for _, s := range p.Sidecars {
		if seen[s.Name] {
			bad("sidecar %s declared twice", s.Name)
		}
		seen[s.Name] = true
		set := 0
		for _, ok := range []bool{s.Egress != nil, s.Pipelock != nil, s.GitGate != nil, s.Supervise != nil} {
			if ok {
				set++
			}
		}
		want := map[string]bool{SidecarEgress: s.Egress != nil, SidecarPipelock: s.Pipelock != nil,
			SidecarGitGate: s.GitGate != nil, SidecarSupervise: s.Supervise != nil}
		if !slices.Contains(SidecarNames, s.Name) {
			bad("unknown sidecar %q", s.Name)
		} else if set != 1 || !want[s.Name] {
			bad("sidecar %s must carry exactly its own configuration", s.Name)
		}
		if s.Name == SidecarEgress || s.Name == SidecarPipelock {
			egress++
			if s.Name != p.Egress.Sidecar {
				bad("egress.sidecar is %q but the egress sidecar is %s", p.Egress.Sidecar, s.Name)
			}
		}
		// A plan gets its listeners from its backend after evaluation
		// (sidecars.Configure); until then they are empty.
		if s.Listen != (Listener{}) {
			if s.Listen.Network != "tcp" && s.Listen.Network != "unix" {
				bad("sidecar %s listens on network %q; want tcp or unix", s.Name, s.Listen.Network)
			}
			if s.Listen.Address == "" || s.Listen.URL == "" {
				bad("sidecar %s has no listener", s.Name)
			}
		}
		for _, d := range durations(s) {
			if t, err := time.ParseDuration(d); err != nil || t <= 0 {
				bad("sidecar %s: %q is not a positive duration", s.Name, d)
			}
		}
		if s.GitGate != nil && len(s.GitGate.Remotes) == 0 {
			bad("git-gate has no remotes")
		}
		if s.GitGate != nil && s.GitGate.MaxPushBytes <= 0 {
			bad("git-gate max_push_bytes must be positive")
		}
	}
	if err := p.CheckEgressPolicy(); err != nil {
		errs = append(errs, err)
	}
	if egress != 1 {
		bad("a bottle has exactly one egress sidecar (egress or pipelock), this plan has %d", egress)
	}
	repos := map[string]bool{}
	for _, r := range p.Repos {
		if repos[r.Name] {
			bad("repository %s is listed twice", r.Name)
		}
		repos[r.Name] = true
		if r.URL != "" && !IsCommitID(r.Commit) {
			bad("repository %s: commit %q is not a full commit id", r.Name, r.Commit)
		}
		if (r.URL == "" || r.Override) && !path.IsAbs(r.Path) {
			bad("repository %s: path %q is not an absolute path", r.Name, r.Path)
		}
	}
	return errors.Join(errs...)
}

// IsCommitID reports whether s is a full SHA-1 commit id: 40 lower-case
// hex digits.
func IsCommitID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func durations(s Sidecar) []string {
	switch {
	case s.Egress != nil:
		return []string{s.Egress.ConnectTimeout, s.Egress.IdleTimeout}
	case s.Supervise != nil:
		return []string{s.Supervise.Timeout}
	}
	return nil
}

// CheckProtect checks one entry of Mount.Protect: a relative,
// slash-separated, clean path inside the mount, with an optional trailing
// "/" for a directory.
func CheckProtect(rel string) error {
	p := strings.TrimSuffix(rel, "/")
	switch {
	case p == "" || p == ".":
		return fmt.Errorf("protect %q: name a path inside the mount, such as \".env\"", rel)
	case path.IsAbs(p):
		return fmt.Errorf("protect %q: give a path relative to the mount", rel)
	case path.Clean(p) != p || strings.Contains(p, "\\") || p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("protect %q: give a clean path inside the mount (no \".\", \"..\", \"//\" or backslash)", rel)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("protect %q: control characters are not allowed", rel)
		}
	}
	return nil
}
