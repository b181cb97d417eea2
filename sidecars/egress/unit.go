package egress

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// Port is the built-in egress proxy's loopback port in the sandbox.
const Port = 3128

// LogFile is the default egress decision log (JSON lines) in the state
// directory.
const LogFile = "egress.jsonl"

// Spec is the "egress" section of the sidecar configuration: the built-in
// egress proxy.
type Spec struct {
	// Listen is where the proxy listens.
	Listen sidecars.Listen `json:"listen"`
	// Rules is the allow-list, canonical as in the plan.
	Rules []plan.Rule `json:"rules"`
	// ConnectTimeout and IdleTimeout are Go durations ("10s", "1h");
	// empty means egress.DefaultConnectTimeout and DefaultIdleTimeout.
	ConnectTimeout string `json:"connect_timeout,omitempty"`
	IdleTimeout    string `json:"idle_timeout,omitempty"`
	// InspectAll has the proxy decrypt every allowed host, as if each
	// rule set Inspect (sidecar("egress", inspect = True)).
	InspectAll bool `json:"inspect_all,omitempty"`
	// ScanLogOnly logs gitleaks findings in decrypted requests instead of
	// refusing them (plan.EgressConfig.OutboundScan "log").
	ScanLogOnly bool `json:"scan_log_only,omitempty"`
	// Log is the path of the decision log (JSON lines, mode 0600); empty
	// means LogFile in the state directory.
	Log string `json:"log,omitempty"`
	// Secrets is the name of the secrets file in the state directory
	// (SecretsFile), which the sidecar reads and removes at start; empty
	// when the bottle has no secrets.
	Secrets string `json:"secrets,omitempty"`
	// CA is where the sidecar writes its CA's certificate (CAFile next to
	// its socket) when it intercepts some host; empty when it intercepts
	// none.
	CA string `json:"ca,omitempty"`
}

// RuleAdder is implemented by the running egress sidecar: it adds an
// allow-list rule at once. Rules added this way survive a SIGHUP reload,
// which replaces only the rules that came from the configuration file.
type RuleAdder interface {
	AddRule(plan.Rule) error
}

// Unit is the built-in egress sidecar: the forward proxy that is the
// sandbox's only way out unless a profile picks pipelock. The agent reaches
// it through HTTP(S)_PROXY.
var Unit = &sidecars.Unit{
	Name:    plan.SidecarEgress,
	Egress:  true,
	Port:    Port,
	Options: options,
	Build:   build,
	Env: func(p *plan.Plan, _ plan.Sidecar, url string) []string {
		env := sidecars.ProxyEnv(url)
		if Intercepts(p) {
			env = append(env, sidecars.CAEnv()...)
		}
		return env
	},
	Section: func(p *plan.Plan, sc plan.Sidecar, listen sidecars.Listen) (json.RawMessage, error) {
		s := Spec{Listen: listen, Rules: p.Egress.Rules}
		if sc.Egress != nil {
			s.ConnectTimeout, s.IdleTimeout = sc.Egress.ConnectTimeout, sc.Egress.IdleTimeout
			s.InspectAll = sc.Egress.InspectAll
			s.ScanLogOnly = sc.Egress.OutboundScan == "log"
		}
		if len(p.Secrets) > 0 {
			s.Secrets = SecretsFile
		}
		if Intercepts(p) {
			if listen.Network != "unix" {
				return nil, errors.New("egress: interception needs a unix socket listener, next to which the CA is published")
			}
			s.CA = filepath.Join(filepath.Dir(listen.Address), CAFile)
		}
		return json.Marshal(s)
	},
	Preflight: func(_ context.Context, p *plan.Plan, _ plan.Sidecar, h sidecars.Host) error {
		if Intercepts(p) {
			_, err := sidecars.HostRoots(h.Getenv)
			return err
		}
		return nil
	},
	New: newService,
}

func init() { sidecars.Register(Unit) }

// resolver resolves the egress proxy's destinations; tests replace it
// with UseResolver.
var resolver Resolver = net.DefaultResolver

// upstreamRoots verifies intercepted upstreams; nil means the system's
// roots. Tests replace it with UseUpstreamRoots.
var upstreamRoots *x509.CertPool

// UseUpstreamRoots makes the egress sidecars started from now on verify
// intercepted upstreams with pool and returns a function that restores
// the previous roots. For tests.
func UseUpstreamRoots(pool *x509.CertPool) (restore func()) {
	old := upstreamRoots
	upstreamRoots = pool
	return func() { upstreamRoots = old }
}

// UseResolver makes the egress sidecars started from now on resolve with r
// and returns a function that restores the previous resolver. For tests.
func UseResolver(r Resolver) (restore func()) {
	old := resolver
	resolver = r
	return func() { resolver = old }
}

// shutdownGrace is how long a stopping egress sidecar lets open tunnels and
// upgraded connections run on before it cuts them. It is shorter than
// sidecars.StopGrace, after which the sidecar process may be killed, so
// that what it cuts is still logged. Tests shorten it.
var shutdownGrace = sidecars.StopGrace - time.Second

// service runs a Proxy on one listener.
type service struct {
	proxy   *Proxy
	ln      net.Listener
	listen  sidecars.Listen
	logFile *RotatingFile

	mu    sync.Mutex
	added []plan.Rule // rules added at run time, kept across reloads
}

func parseSpec(raw json.RawMessage) (*Spec, error) {
	var s Spec
	if err := sidecars.Decode(raw, &s); err != nil {
		return nil, fmt.Errorf("egress section: %w", err)
	}
	for _, r := range s.Rules {
		if err := ValidateRule(r); err != nil {
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

func newService(_ context.Context, raw json.RawMessage, env *sidecars.Env) (sidecars.Service, error) {
	spec, err := parseSpec(raw)
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
		logPath = filepath.Join(env.StateDir, LogFile)
	}
	var secrets []Secret
	if spec.Secrets != "" {
		if filepath.Base(spec.Secrets) != spec.Secrets {
			return nil, fmt.Errorf("egress section: secrets %q is not a file name", spec.Secrets)
		}
		if secrets, err = takeSecrets(filepath.Join(env.StateDir, spec.Secrets)); err != nil {
			return nil, err
		}
	}
	logFile, err := OpenLogFile(logPath)
	if err != nil {
		return nil, err
	}
	proxy, err := New(Options{
		Rules:          spec.Rules,
		Resolver:       resolver,
		ConnectTimeout: connect,
		IdleTimeout:    idle,
		Log:            logFile,
		Secrets:        secrets,
		InspectAll:     spec.InspectAll,
		ScanLogOnly:    spec.ScanLogOnly,
		UpstreamRoots:  upstreamRoots,
	})
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if spec.CA != "" {
		pem := proxy.CACertPEM()
		if pem == nil {
			logFile.Close()
			return nil, errors.New("egress: a CA file is asked for, but no host is intercepted")
		}
		// Before the socket exists: bottle guest, which waits for the
		// socket, then finds the certificate.
		if err := sidecars.WriteFileAtomic(spec.CA, pem, 0o644); err != nil {
			logFile.Close()
			return nil, fmt.Errorf("egress: publish the CA certificate: %w", err)
		}
	}
	ln, err := sidecars.Bind(spec.Listen)
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("egress: %w", err)
	}
	return &service{
		proxy:   proxy,
		ln:      ln,
		listen:  sidecars.Bound(ln),
		logFile: logFile,
	}, nil
}

func (s *service) Listeners() []sidecars.Listen { return []sidecars.Listen{s.listen} }

func (s *service) Serve(ctx context.Context) error {
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
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	// Tunnels and upgraded connections still open after the grace are
	// cut; that is the stop's purpose, not a failure.
	s.proxy.Shutdown(sctx)
	return <-served
}

// Reload replaces the rules from the configuration with spec's, keeping
// the rules added at run time. Listener, timeouts and log need a restart.
func (s *service) Reload(raw json.RawMessage) error {
	spec, err := parseSpec(raw)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proxy.SetRules(append(slices.Clip(spec.Rules), s.added...))
}

// Rules returns the proxy's current allow-list.
func (s *service) Rules() []plan.Rule { return s.proxy.Rules() }

// AddRule adds r to the running proxy and keeps it across reloads.
func (s *service) AddRule(r plan.Rule) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.proxy.AddRule(r); err != nil {
		return err
	}
	s.added = append(s.added, r)
	return nil
}
