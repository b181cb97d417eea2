package main

import (
	_ "github.com/bottle-dev/bottle/sidecars/all" // registers git-gate and supervise
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

// SidecarsCmd runs a bottle's sidecars; backends start it, people do not.
type SidecarsCmd struct {
	Config string `required:"" type:"path" help:"The rendered sidecar configuration (JSON)."`
}

// Run serves the sidecars until SIGTERM or SIGINT.
func (c *SidecarsCmd) Run(g *Globals) error {
	return srt.Run(g.Ctx, c.Config, g.Stdout, g.Stderr)
}
