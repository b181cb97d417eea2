package pipelock

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/render"
	"github.com/bottle-dev/bottle/sidecars"
)

// Port is pipelock's loopback port in the sandbox.
const Port = 8888

// Unit is pipelock as the bottle's egress sidecar.
var Unit = &sidecars.Unit{
	Name:   plan.SidecarPipelock,
	Egress: true,
	Port:   Port,
	Validate: func(p *plan.Plan, _ plan.Sidecar) error {
		// Refuse what pipelock cannot enforce rather than widen silently.
		return render.CheckPipelockRules(p)
	},
	Env: func(_ *plan.Plan, _ plan.Sidecar, url string) []string { return sidecars.ProxyEnv(url) },
	Section: func(_ *plan.Plan, _ plan.Sidecar, listen sidecars.Listen) (json.RawMessage, error) {
		return json.Marshal(map[string]any{"listen": listen})
	},
	New: func(context.Context, json.RawMessage, *sidecars.Env) (sidecars.Service, error) {
		return nil, errors.New("pipelock cannot run yet")
	},
}

func init() { sidecars.Register(Unit) }
