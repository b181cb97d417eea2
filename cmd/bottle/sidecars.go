package main

import (
	_ "github.com/bottle-dev/bottle/sidecars/all" // links every sidecar unit in
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

// SidecarsCmd runs a bottle's sidecars; backends start it, people do not.
type SidecarsCmd struct {
	Config string `required:"" type:"path" help:"The rendered sidecar configuration (JSON)."`
	Log    string `type:"path" help:"Also append everything the sidecars print, and how they fail, to this file (mode 0600, rotated at 16 MiB), which bottle logs reads; the docker bundle's output otherwise stays in docker's own log."`
}

// Run serves the sidecars until SIGTERM or SIGINT, or until the
// controlling bottle dies.
func (c *SidecarsCmd) Run(g *Globals) error {
	if c.Log != "" {
		return srt.RunLogged(g.Ctx, c.Config, c.Log, g.Stdout, g.Stderr)
	}
	return srt.Run(g.Ctx, c.Config, g.Stdout, g.Stderr)
}
