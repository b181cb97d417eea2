package starlark

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
	"github.com/bottle-dev/bottle/starlark/builtins"
)

// Env is what the plan depends on besides the profile: where bottle was
// started and where it keeps state.
type Env struct {
	// Workspace is the directory bottle was started from.
	Workspace string
	// StateHome is the directory holding every bottle's state directory,
	// normally $XDG_STATE_HOME/bottle.
	StateHome string
	// Taken reports whether a state directory is already in use; a slug
	// whose directory is taken gets a numeric suffix. Nil means os.Stat.
	Taken func(dir string) bool
}

// Load evaluates the profile and builds its validated plan.
func Load(ctx context.Context, src *Source, opts Options, env Env) (*plan.Plan, error) {
	st, err := Eval(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	return Build(st, src, env)
}

// Build turns what a profile declared into a complete plan: defaults
// filled in, the built-in egress sidecar added when none was declared,
// listeners, slug and state directory chosen, lists sorted, digest set.
func Build(st *builtins.State, src *Source, env Env) (*plan.Plan, error) {
	if st.Backend == nil {
		return nil, &Error{Pos: src.Label + ":1:1", Msg: "the profile declares no backend; call docker(image = ...) or smolmachines(image = ...)"}
	}
	name := profileName(src.Label)
	slug, stateDir, base := chooseSlug(name, src.Path, env)
	p := &plan.Plan{
		Version:  plan.Version,
		Profile:  plan.Profile{Name: name, Label: src.Label, Path: src.Path, Root: src.Root, Workspace: env.Workspace},
		Slug:     slug,
		StateDir: stateDir,
		Backend:  *st.Backend,
		Egress:   plan.Egress{Rules: slices.Clone(st.Rules)},
		Mounts:   slices.Clone(st.Mounts),
		Secrets:  slices.Clone(st.Secrets),
		Sidecars: slices.Clone(st.Sidecars),
		Repos:    slices.Clone(src.Repos),
	}
	p.Profile.Files = slices.Clone(st.Files)
	if st.Agent != nil {
		p.Agent = *st.Agent
	} else {
		p.Agent = plan.Agent{Command: []string{"claude"}}
	}
	if p.Agent.Workdir == "" {
		p.Agent.Workdir = p.Backend.Workdir
	}
	if p.Agent.Home == plan.HomePersistent {
		if p.Backend.Kind != plan.BackendDocker {
			return nil, &Error{Pos: p.Agent.From, Msg: "agent(home = \"persistent\") keeps HOME in a host directory bind-mounted into a docker container; the smolmachines backend does not have it yet"}
		}
		if p.Backend.User != "" {
			return nil, &Error{Pos: p.Agent.From, Msg: "agent(home = \"persistent\") keeps HOME as the invoking user's directory, which docker(user = ...) could not write; leave one of them out"}
		}
		// Beside the state directories, one per profile and workspace.
		p.Agent.HomeDir = filepath.Join(filepath.Dir(env.StateHome), "bottle-homes", base)
	}
	p.Agent.Env = slices.Clone(st.Env)

	egress := ""
	for _, sc := range p.Sidecars {
		if u, ok := sidecars.Lookup(sc.Name); ok && u.Egress {
			egress = sc.Name
		}
	}
	if egress == "" {
		egress = plan.SidecarEgress
		p.Sidecars = append(p.Sidecars, plan.Sidecar{
			Name: plan.SidecarEgress, Implicit: true,
			Egress: builtins.DefaultEgressConfig(),
		})
	}
	p.Egress.Sidecar = egress

	for i := range p.Egress.Rules {
		p.Egress.Rules[i].Ports = slices.Clone(p.Egress.Rules[i].Ports)
	}
	slices.SortStableFunc(p.Egress.Rules, func(a, b plan.Rule) int { return strings.Compare(a.Host, b.Host) })
	slices.SortStableFunc(p.Agent.Env, func(a, b plan.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(p.Mounts, func(a, b plan.Mount) int { return strings.Compare(a.Target, b.Target) })
	slices.SortStableFunc(p.Secrets, func(a, b plan.Secret) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(p.Sidecars, func(a, b plan.Sidecar) int { return strings.Compare(a.Name, b.Name) })
	for _, l := range []*[]plan.EnvVar{&p.Agent.Env} {
		if *l == nil {
			*l = []plan.EnvVar{}
		}
	}
	if p.Egress.Rules == nil {
		p.Egress.Rules = []plan.Rule{}
	}
	if p.Mounts == nil {
		p.Mounts = []plan.Mount{}
	}
	if p.Secrets == nil {
		p.Secrets = []plan.Secret{}
	}
	// What no one builtin call could check, reported at the call to
	// change. Validate checks it too, for plans not built here.
	var de *plan.DeclError
	if err := p.CheckEgressPolicy(); errors.As(err, &de) {
		return nil, &Error{Pos: de.From, Msg: de.Msg}
	}
	if err := p.Validate(); err != nil {
		return nil, &Error{Pos: src.Label + ":1:1", Msg: err.Error()}
	}
	// Each sidecar's own checks of the whole plan (pipelock refuses
	// rules it cannot enforce rather than widen silently).
	if err := sidecars.Validate(p); err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	p.Digest = p.ComputeDigest()
	return p, nil
}

// profileName is the profile's file name without .star, reduced to the
// characters a slug may hold.
func profileName(label string) string {
	base := strings.TrimSuffix(path.Base(label), ".star")
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
		if b.Len() >= 24 {
			break
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "bottle"
	}
	return name
}

// chooseSlug derives the slug from the profile name and a hash of the
// profile's path and the workspace; when that slug's state directory is in
// use (another bottle of the same profile is running), it appends -2, -3...
// It returns the slug, its state directory and the slug without the
// suffix.
func chooseSlug(name, profilePath string, env Env) (string, string, string) {
	taken := env.Taken
	if taken == nil {
		taken = func(dir string) bool {
			_, err := os.Lstat(dir)
			return err == nil
		}
	}
	sum := sha256.Sum256([]byte(profilePath + "\x00" + env.Workspace))
	base := name + "-" + hex.EncodeToString(sum[:])[:6]
	slug := base
	for i := 2; taken(filepath.Join(env.StateHome, slug)); i++ {
		slug = base + "-" + strconv.Itoa(i)
	}
	return slug, filepath.Join(env.StateHome, slug), base
}
