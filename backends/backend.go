// Package backends is the contract between bottle's pipeline and the
// sandboxes it runs: a small Backend interface, a registry filled from each
// backend package's init (keyed by the profile builtin that selects it,
// "docker" or "smolmachines"), the Runner through which backends run
// external programs, and the per-bottle state directory they share.
package backends

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/bottle-dev/bottle/agents"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"syscall"

	"github.com/bottle-dev/bottle/plan"
)

// Backend runs bottles of one kind. Prepare and Preflight have no side
// effects; Launch creates the bottle, runs it to the end and tears it
// down again; Cleanup removes what bottles that are no longer running
// left behind.
type Backend interface {
	// Configure decides where the plan's sidecars listen (each
	// plan.Sidecar's Listen), as the process that runs them sees it. It
	// changes nothing outside the plan: a dry run calls it too.
	Configure(p *plan.Plan) error
	// Preflight runs read-only probes of the host (binaries, versions,
	// devices, images) and returns one error per problem, each a line that
	// says how to fix it.
	Preflight(ctx context.Context, b *Bottle) error
	// Launch starts the sidecars and the sandbox, runs the agent or the
	// one-off command with the given stdio, tears everything down in
	// reverse order and returns the command's exit code. When ctx is
	// cancelled (Ctrl-C, SIGTERM, bottle stop) it tears down what exists
	// so far and returns ctx's error, or, when the agent had started and
	// exited with a code of its own after the stop reached it, that code
	// and a nil error.
	Launch(ctx context.Context, b *Bottle, io Stdio) (int, error)
	// Resources lists the resources of this backend that carry bottle's
	// label, running or not.
	Resources(ctx context.Context) ([]Resource, error)
	// Remove deletes resources, ignoring those already gone: it returns
	// nil when there is nothing left to remove.
	Remove(ctx context.Context, rs []Resource) error
}

// SignalCause is the cause of a launch context that ended because bottle
// received a signal (Ctrl-C, SIGTERM from bottle stop, a closed terminal).
type SignalCause struct{ Signal os.Signal }

func (c SignalCause) Error() string { return fmt.Sprintf("received %v", c.Signal) }

// StopSignal is the signal a backend passes to the agent when ctx has
// ended: the one bottle received (SignalCause), else SIGTERM.
func StopSignal(ctx context.Context) syscall.Signal {
	var sc SignalCause
	if errors.As(context.Cause(ctx), &sc) {
		if s, ok := sc.Signal.(syscall.Signal); ok {
			return s
		}
	}
	return syscall.SIGTERM
}

// Bottle is one bottle being launched: its plan, its claimed state
// directory and what the launch needs from the host.
type Bottle struct {
	Plan *plan.Plan
	// State is the claimed, locked state directory.
	State *State
	// Command, when set, runs instead of the agent's command.
	Command []string
	// Secrets maps each secret's name to the value the agent gets, made
	// at launch: the real value of a secret visible to the agent, a
	// placeholder for one bound to hosts, whose value only the egress
	// sidecar holds (egress.PrepareSecrets).
	Secrets map[string]string
	// HomeFiles are the files the agent's provider rendered for this
	// launch, which bottle guest copies into the agent's HOME
	// (sidecars.AgentFiles, WriteHomeSeed).
	HomeFiles []agents.File
	// Executable is the bottle binary sidecars and guests run.
	Executable string
	// Progress receives one line per step, for people.
	Progress io.Writer
}

// Stdio is the terminal or pipes the agent runs with.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TTY is true when Stdin and Stdout are a terminal the agent should
	// get, as `docker run -it` would give it.
	TTY bool
}

// Resource is something a backend created for a bottle.
type Resource struct {
	Backend string `json:"backend"`
	// Kind is "container", "volume", "network", "machine" or "process".
	Kind string `json:"kind"`
	Name string `json:"name"`
	Slug string `json:"slug"`
	// Owner is the resource's LabelOwner (OwnerOf), empty for what
	// versions before owner labels made.
	Owner string `json:"owner,omitempty"`
	// Running is true for a container or machine that runs now.
	Running bool `json:"running,omitempty"`
}

func (r Resource) String() string {
	return fmt.Sprintf("%s %s %s (bottle %s)", r.Backend, r.Kind, r.Name, r.Slug)
}

// Labels every backend puts on what it creates, so that bottle cleanup can
// find a killed bottle's remains by its slug, and only its owner's.
const (
	LabelSlug   = "dev.bottle.slug"
	LabelDigest = "dev.bottle.digest"
	LabelOwner  = "dev.bottle.owner"
)

// OwnerOf names whose bottles keep their state under stateRoot (the
// directory holding the state directories, $XDG_STATE_HOME/bottle): the
// invoking uid and the first 12 hex digits of the SHA-256 of stateRoot's
// absolute path, "1000-3f2a9c0b1d4e". Two users, or one user with two
// state homes, are two owners: neither's ls or cleanup touches the other's
// bottles.
func OwnerOf(stateRoot string) string {
	if abs, err := filepath.Abs(stateRoot); err == nil {
		stateRoot = abs
	}
	sum := sha256.Sum256([]byte(filepath.Clean(stateRoot)))
	return strconv.Itoa(os.Getuid()) + "-" + hex.EncodeToString(sum[:])[:12]
}

// PlanOwner is the owner of a plan's bottle.
func PlanOwner(p *plan.Plan) string { return OwnerOf(filepath.Dir(p.StateDir)) }

var (
	mu       sync.Mutex
	registry = map[string]Backend{}
)

// Register makes a backend available under name; backends call it from init.
func Register(name string, b Backend) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("backends: Register called twice for " + name)
	}
	registry[name] = b
}

// Get returns the backend registered under name.
func Get(name string) (Backend, error) {
	mu.Lock()
	defer mu.Unlock()
	b, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("the %s backend is not available in this build", name)
	}
	return b, nil
}

// Names lists the registered backends, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	var names []string
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return slices.Clip(names)
}
