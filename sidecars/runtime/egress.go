package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars/egress"
)

// EgressSpec is the "egress" section of Config: the built-in egress proxy.
type EgressSpec struct {
	// Listen is where the proxy listens.
	Listen Listen `json:"listen"`
	// Rules is the allow-list, canonical as in the plan.
	Rules []plan.Rule `json:"rules"`
	// ConnectTimeout and IdleTimeout are Go durations ("10s", "1h");
	// empty means egress.DefaultConnectTimeout and DefaultIdleTimeout.
	ConnectTimeout string `json:"connect_timeout,omitempty"`
	IdleTimeout    string `json:"idle_timeout,omitempty"`
	// Log is the path of the decision log (JSON lines, mode 0600); empty
	// means EgressLogFile in the state directory.
	Log string `json:"log,omitempty"`
}

// RuleAdder is implemented by the running egress sidecar: it adds an
// allow-list rule at once. Rules added this way survive a SIGHUP reload,
// which replaces only the rules that came from the configuration file.
type RuleAdder interface {
	AddRule(plan.Rule) error
}

func init() {
	Register(plan.SidecarEgress, newEgress)
}

// resolver resolves the egress proxy's destinations; tests replace it.
var resolver egress.Resolver = net.DefaultResolver

// egressService runs an egress.Proxy on one listener.
type egressService struct {
	proxy   *egress.Proxy
	ln      net.Listener
	listen  Listen
	logFile *os.File

	mu    sync.Mutex
	added []plan.Rule // rules added at run time, kept across reloads
}

func parseEgressSpec(raw json.RawMessage) (*EgressSpec, error) {
	var s EgressSpec
	if err := decodeStrict(raw, &s); err != nil {
		return nil, fmt.Errorf("egress section: %w", err)
	}
	for _, r := range s.Rules {
		if err := egress.ValidateRule(r); err != nil {
			return nil, fmt.Errorf("egress section: %w", err)
		}
	}
	return &s, nil
}

func parseDuration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("egress section: %s %q is not a positive duration such as \"10s\"", name, s)
	}
	return d, nil
}

func newEgress(_ context.Context, raw json.RawMessage, env *Env) (Service, error) {
	spec, err := parseEgressSpec(raw)
	if err != nil {
		return nil, err
	}
	connect, err := parseDuration("connect_timeout", spec.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	idle, err := parseDuration("idle_timeout", spec.IdleTimeout)
	if err != nil {
		return nil, err
	}
	logPath := spec.Log
	if logPath == "" {
		logPath = filepath.Join(env.StateDir, EgressLogFile)
	}
	logFile, err := egress.OpenLogFile(logPath)
	if err != nil {
		return nil, err
	}
	proxy, err := egress.New(egress.Options{
		Rules:          spec.Rules,
		Resolver:       resolver,
		ConnectTimeout: connect,
		IdleTimeout:    idle,
		Log:            logFile,
	})
	if err != nil {
		logFile.Close()
		return nil, err
	}
	ln, err := Bind(spec.Listen)
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("egress: %w", err)
	}
	return &egressService{
		proxy:   proxy,
		ln:      ln,
		listen:  Listen{Network: ln.Addr().Network(), Address: ln.Addr().String()},
		logFile: logFile,
	}, nil
}

func (s *egressService) Listeners() []Listen { return []Listen{s.listen} }

func (s *egressService) Serve(ctx context.Context) error {
	defer s.logFile.Close()
	served := make(chan error, 1)
	go func() { served <- s.proxy.Serve(s.ln) }()
	select {
	case err := <-served:
		s.proxy.Close()
		if err == nil {
			err = errors.New("listener closed")
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), StopGrace)
	defer cancel()
	// Tunnels still open after the grace are cut; that is the stop's
	// purpose, not a failure.
	s.proxy.Shutdown(sctx)
	return <-served
}

// Reload replaces the rules from the configuration with spec's, keeping
// the rules added at run time. Listener, timeouts and log need a restart.
func (s *egressService) Reload(raw json.RawMessage) error {
	spec, err := parseEgressSpec(raw)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proxy.SetRules(append(slices.Clip(spec.Rules), s.added...))
}

// Rules returns the proxy's current allow-list.
func (s *egressService) Rules() []plan.Rule { return s.proxy.Rules() }

// AddRule adds r to the running proxy and keeps it across reloads.
func (s *egressService) AddRule(r plan.Rule) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.proxy.AddRule(r); err != nil {
		return err
	}
	s.added = append(s.added, r)
	return nil
}

// Bind opens a listener for a sidecar: a TCP address, or a unix socket
// (mode 0600) replacing one a dead process left behind.
func Bind(l Listen) (net.Listener, error) {
	switch l.Network {
	case "tcp":
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return ln, nil
	case "unix":
		if !filepath.IsAbs(l.Address) {
			return nil, fmt.Errorf("listen: unix socket path %q is not absolute", l.Address)
		}
		if fi, err := os.Lstat(l.Address); err == nil && fi.Mode().Type() == fs.ModeSocket {
			if c, err := net.Dial("unix", l.Address); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen: %s is in use by another process", l.Address)
			}
			os.Remove(l.Address)
		}
		ln, err := net.Listen("unix", l.Address)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		if err := os.Chmod(l.Address, 0o600); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen: %w", err)
		}
		return ln, nil
	}
	return nil, fmt.Errorf("listen: network %q is neither \"tcp\" nor \"unix\"", l.Network)
}
