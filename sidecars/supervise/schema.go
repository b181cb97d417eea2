package supervise

import (
	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// options are the profile options of sidecar("supervise", ...).
var options = []string{"timeout"}

// build is the schema of
//
//	sidecar("supervise", timeout = "10m")
//
// The supervision channel: an MCP server the agent calls to ask for a host
// or put a question to the operator. timeout, a positive duration, is how
// long a request waits for the operator's answer before it is refused.
func build(o sidecars.Options, sc *plan.Sidecar) error {
	t, err := o.Duration("timeout", "10m")
	if err != nil {
		return err
	}
	sc.Supervise = &plan.SuperviseConfig{Timeout: t}
	return nil
}
