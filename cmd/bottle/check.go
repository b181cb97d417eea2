package main

// CheckCmd evaluates and validates a profile.
type CheckCmd struct {
	Profile string `arg:"" optional:"" predictor:"file" help:"Profile to check: a file, or a shipped profile by its label (//claude.star, //codex.star). Default: ./bottle.star, else //claude.star."`
	RepoFlags
}

// Run evaluates the profile and reports its digest.
func (c *CheckCmd) Run(g *Globals) error {
	p, err := loadPlan(g, c.Profile, c.RepoFlags)
	if err != nil {
		return err
	}
	return writeLine(g.Stdout, "%s: ok, %d allow rule(s), digest %s", p.Profile.Label, len(p.Egress.Rules), p.Digest)
}
