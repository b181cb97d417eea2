package egress

import (
	"fmt"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// options are the profile options of sidecar("egress", ...).
var options = []string{"connect_timeout", "idle_timeout", "inspect", "scan"}

// build is the schema of
//
//	sidecar("egress", connect_timeout = "10s", idle_timeout = "1h", inspect = False, scan = "block")
//
// The built-in egress proxy, the default when a profile declares no egress
// sidecar. connect_timeout bounds dialing an allowed destination;
// idle_timeout closes a tunnel with no traffic in either direction for that
// long (there is no cap on total duration). Both are positive durations
// ("30s", "10m", "1h"). inspect = True has the proxy decrypt the TLS of
// every allowed host and scan what leaves, as if each allow() set inspect
// (plan.EgressConfig.InspectAll). scan says what a gitleaks finding in a
// decrypted request does: "block" (the default) refuses the request, "log"
// logs it and lets it through, for a workspace whose code trips a rule;
// the bottle's own secret values and placeholders are refused either way
// (plan.EgressConfig.OutboundScan).
func build(o sidecars.Options, sc *plan.Sidecar) error {
	var c plan.EgressConfig
	var err error
	if c.ConnectTimeout, err = o.Duration("connect_timeout", "10s"); err != nil {
		return err
	}
	if c.IdleTimeout, err = o.Duration("idle_timeout", "1h"); err != nil {
		return err
	}
	if c.InspectAll, err = o.Bool("inspect", false); err != nil {
		return err
	}
	scan, err := o.String("scan", "block")
	if err != nil {
		return err
	}
	switch scan {
	case "block":
	case "log":
		c.OutboundScan = "log"
	default:
		return fmt.Errorf("option scan is %q; want \"block\" or \"log\"", scan)
	}
	sc.Egress = &c
	return nil
}
