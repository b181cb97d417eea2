// Package sidecars is the one registry of bottle's sidecars.
//
// A sidecar is one Unit, declared by its own package (egress, gitgate,
// supervise, pipelock) and registered from that package's init: its
// loopback endpoint in the sandbox, its profile options and their schema,
// the section of the rendered sidecar configuration it reads, the
// environment it gives the agent, its host preflight and its server. The
// evaluator, the backends and the sidecar runtime all consult this
// registry, through plan types and Options (a profile's options in plain Go
// types) only; a sidecar package never imports a backend or the evaluator,
// and nothing here imports a sidecar. Importing sidecars/all links every
// unit in.
//
// The topology is the same for every backend (see Forwards): each sidecar
// listens on a unix socket; `bottle guest`, the sandbox's first process,
// listens on 127.0.0.1:<Unit.Port> for each socket and relays; the agent
// reaches the sidecar at Unit.URL().
package sidecars

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// Listen is an address a sidecar listens on, as the process that runs it
// sees it.
type Listen struct {
	// Network is "tcp" or "unix".
	Network string `json:"network"`
	// Address is "host:port" for tcp (port 0 picks a free port; the ready
	// file has the bound one) or an absolute socket path for unix.
	Address string `json:"address"`
	// Mode is the unix socket's permission bits (0 means 0600). A socket in
	// a directory that only the bottle's own sandbox can see (the docker
	// backend's per-bottle volume) is 0666, so that the agent can connect
	// whatever uid the image runs it as.
	Mode uint32 `json:"mode,omitempty"`
}

// Service is one running sidecar.
type Service interface {
	// Listeners returns the addresses the sidecar listens on, as bound.
	Listeners() []Listen
	// Serve runs the sidecar until ctx is done, then stops it within the
	// runtime's stop grace and returns nil; it returns an error when the
	// sidecar fails. Serve releases everything the service holds before it
	// returns; the runtime calls it exactly once for every service a
	// Factory made, with a context already done when startup failed
	// elsewhere.
	Serve(ctx context.Context) error
}

// Reloader is a Service that can apply a new configuration section while
// it runs (on SIGHUP); on an error it keeps its old configuration.
type Reloader interface {
	Reload(spec json.RawMessage) error
}

// Factory makes a sidecar's server from its configuration section. It binds
// every listener before it returns, so that readiness follows from all
// factories having returned; ctx is done when the process is asked to stop.
type Factory func(ctx context.Context, spec json.RawMessage, env *Env) (Service, error)

// Env is what a Factory gets besides its section.
type Env struct {
	// Slug and StateDir are the sidecar configuration's.
	Slug     string
	StateDir string
	// Stderr receives diagnostics.
	Stderr io.Writer

	mu       sync.Mutex
	services map[string]Service
}

// Service returns the running sidecar registered under name, or nil, for
// example for supervise to add an egress rule.
func (e *Env) Service(name string) Service {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.services[name]
}

// SetService records a started sidecar under name; the runtime calls it.
func (e *Env) SetService(name string, s Service) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.services == nil {
		e.services = map[string]Service{}
	}
	e.services[name] = s
}

// Host is what a unit's preflight may use of the host.
type Host struct {
	// StateDir is the bottle's claimed state directory (0700).
	StateDir string
	// Getenv reads the host environment (os.Getenv unless a test sets it).
	Getenv func(string) string
}

// Unit is one sidecar, everything bottle knows about it in one place.
type Unit struct {
	// Name is the sidecar's name in profiles, the plan and the sidecar
	// configuration ("egress", "git-gate", ...).
	Name string
	// Egress marks a sidecar that can be the bottle's one egress proxy.
	Egress bool
	// Port is the loopback TCP port bottle guest relays the sidecar on,
	// inside the sandbox; Path is appended to form its URL ("/mcp").
	Port int
	Path string
	// Options are the keyword options a profile may give the sidecar,
	// sorted: sidecar("name", option = value, ...). The evaluator refuses
	// any other.
	Options []string
	// Build is the sidecar's profile schema: it reads the options (only
	// names from Options reach it), checks them and fills in defaults, and
	// sets the sidecar's configuration in sc (sc.Name and sc.From are
	// set). An error is a profile error; its message is about the options
	// alone ("option timeout is int, want a string"), for the evaluator to
	// prefix with where and which sidecar. Nil: the sidecar has no options
	// and no configuration.
	Build func(o Options, sc *plan.Sidecar) error
	// Validate checks the whole plan for this sidecar (nil: nothing to
	// check). The evaluator calls it after building the plan; an error is
	// a profile error.
	Validate func(p *plan.Plan, sc plan.Sidecar) error
	// Env is the environment the agent needs to use the sidecar (nil:
	// none); url is the sidecar's URL in the sandbox.
	Env func(p *plan.Plan, sc plan.Sidecar, url string) []string
	// MCP marks a sidecar that is an MCP server (streamable HTTP at its
	// URL, known to the agent by the sidecar's name) and returns how long
	// one of its tools may take. The agent's provider registers it
	// (agents.Provider); nil: not an MCP server.
	MCP func(sc plan.Sidecar) (toolTimeout time.Duration, err error)
	// Section renders the sidecar's section of the sidecar configuration:
	// what its server reads, with listen where it must listen.
	Section func(p *plan.Plan, sc plan.Sidecar, listen Listen) (json.RawMessage, error)
	// Preflight checks the host for the sidecar without changing anything
	// (nil: nothing to check); one error per problem, each saying how to
	// fix it.
	Preflight func(ctx context.Context, p *plan.Plan, sc plan.Sidecar, h Host) error
	// New is the sidecar's server.
	New Factory
}

// URL is how the agent reaches the sidecar inside the sandbox.
func (u *Unit) URL() string {
	return "http://127.0.0.1:" + strconv.Itoa(u.Port) + u.Path
}

var (
	mu    sync.Mutex
	units = map[string]*Unit{}
)

// Register adds a unit. It is meant for package init functions and panics
// on a duplicate name or port, or a unit without a name, port, section or
// server.
func Register(u *Unit) {
	mu.Lock()
	defer mu.Unlock()
	if u.Name == "" || u.Port <= 0 || u.Port > 65535 || u.Section == nil || u.New == nil {
		panic(fmt.Sprintf("sidecar unit %q is incomplete", u.Name))
	}
	if _, dup := units[u.Name]; dup {
		panic(fmt.Sprintf("sidecar %q registered twice", u.Name))
	}
	for _, o := range units {
		if o.Port == u.Port {
			panic(fmt.Sprintf("sidecars %q and %q both use port %d", o.Name, u.Name, u.Port))
		}
	}
	units[u.Name] = u
}

// Lookup returns the unit registered under name.
func Lookup(name string) (*Unit, bool) {
	mu.Lock()
	defer mu.Unlock()
	u, ok := units[name]
	return u, ok
}

// Names lists the registered units' names, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	return slices.Sorted(maps.Keys(units))
}

// Get returns the unit of a plan sidecar, or an error naming what this
// build has.
func Get(name string) (*Unit, error) {
	if u, ok := Lookup(name); ok {
		return u, nil
	}
	return nil, fmt.Errorf("the %s sidecar is not available in this build (it has %v)", name, Names())
}
