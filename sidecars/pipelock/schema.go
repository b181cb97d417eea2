package pipelock

import (
	"fmt"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// options are the profile options of sidecar("pipelock", ...).
var options = []string{"body_scan_action", "explain_blocks", "idle_timeout_seconds", "max_tunnel_seconds", "request_body_scanning"}

// build is the schema of
//
//	sidecar("pipelock", explain_blocks = True, request_body_scanning = False,
//	        body_scan_action = "block", idle_timeout_seconds = 3600,
//	        max_tunnel_seconds = 86400)
//
// pipelock as the bottle's egress sidecar instead of the built-in proxy.
// explain_blocks adds pipelock's hint header to refusals;
// request_body_scanning turns on DLP of request bodies, and
// body_scan_action ("block" or "warn") says what a finding does;
// idle_timeout_seconds and max_tunnel_seconds (1 to 604800) are pipelock's
// forward-proxy limits on a tunnel's idle time and its life.
func build(o sidecars.Options, sc *plan.Sidecar) error {
	var c plan.PipelockConfig
	var err error
	if c.ExplainBlocks, err = o.Bool("explain_blocks", true); err != nil {
		return err
	}
	if c.RequestBodyScanning, err = o.Bool("request_body_scanning", false); err != nil {
		return err
	}
	if c.BodyScanAction, err = o.String("body_scan_action", "block"); err != nil {
		return err
	}
	if c.BodyScanAction != "block" && c.BodyScanAction != "warn" {
		return fmt.Errorf("option body_scan_action is %q, want \"block\" or \"warn\"", c.BodyScanAction)
	}
	if c.IdleTimeoutSeconds, err = o.Int("idle_timeout_seconds", 3600, 1, 7*24*3600); err != nil {
		return err
	}
	if c.MaxTunnelSeconds, err = o.Int("max_tunnel_seconds", 24*3600, 1, 7*24*3600); err != nil {
		return err
	}
	sc.Pipelock = &c
	return nil
}
