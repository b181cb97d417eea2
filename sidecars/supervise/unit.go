package supervise

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// Port is the supervise MCP server's loopback port in the sandbox.
const Port = 8765

// Spec is the "supervise" section of the sidecar configuration.
type Spec struct {
	Listen  sidecars.Listen `json:"listen"`
	Timeout string          `json:"timeout"`
}

// Unit is the supervision channel: an MCP server the agent calls when it
// is blocked, answered by the operator with bottle approve/deny.
var Unit = &sidecars.Unit{
	Name:    plan.SidecarSupervise,
	Port:    Port,
	Path:    Path,
	Options: options,
	Build:   build,
	MCP:     toolTimeout,
	Section: func(_ *plan.Plan, sc plan.Sidecar, listen sidecars.Listen) (json.RawMessage, error) {
		if sc.Supervise == nil {
			return nil, errors.New("the supervise sidecar has no configuration")
		}
		return json.Marshal(Spec{Listen: listen, Timeout: sc.Supervise.Timeout})
	},
	New: newService,
}

func init() { sidecars.Register(Unit) }

// toolTimeout is how long one of the server's tools may take: as long as
// the operator may take to answer.
func toolTimeout(sc plan.Sidecar) (time.Duration, error) {
	if sc.Supervise == nil {
		return 0, errors.New("the supervise sidecar has no configuration")
	}
	return time.ParseDuration(sc.Supervise.Timeout)
}

// egressControl is what supervise needs of the running egress proxy.
type egressControl interface {
	RuleSource
	RuleAdder
}

func newService(_ context.Context, raw json.RawMessage, env *sidecars.Env) (sidecars.Service, error) {
	var spec Spec
	if err := sidecars.Decode(raw, &spec); err != nil {
		return nil, fmt.Errorf("supervise section: %w", err)
	}
	timeout, err := ParseTimeout(spec.Timeout)
	if err != nil {
		return nil, err
	}
	proxy, ok := env.Service(plan.SidecarEgress).(egressControl)
	if !ok {
		return nil, errors.New("supervise adds approved rules to the built-in egress sidecar, which this bottle does not run")
	}
	audit, err := OpenAudit(env.StateDir)
	if err != nil {
		return nil, err
	}
	srv, err := New(Config{StateDir: env.StateDir, Timeout: timeout, Rules: proxy, Adder: proxy, Audit: audit})
	if err != nil {
		audit.Close()
		return nil, err
	}
	ln, err := sidecars.Bind(spec.Listen)
	if err != nil {
		audit.Close()
		return nil, fmt.Errorf("supervise: %w", err)
	}
	return &sidecars.ServiceFunc{
		Listen: sidecars.Bound(ln),
		Run: func(ctx context.Context) error {
			defer audit.Close()
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), sidecars.StopGrace)
			defer cancel()
			return errors.Join(srv.Shutdown(sctx), <-errc)
		},
	}, nil
}
