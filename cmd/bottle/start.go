package main

import (
	"encoding/json"
	"fmt"
)

// StartCmd starts a bottle.
type StartCmd struct {
	Profile string `arg:"" optional:"" predictor:"file" help:"Profile to start: a file, or a shipped profile by its label (//claude.star, //codex.star). Default: ./bottle.star, else //claude.star."`
	DryRun  bool   `help:"Evaluate the profile and print the plan; create nothing and run nothing."`
	Format  string `enum:"text,json" default:"text" help:"Output format of the plan: text or json."`
	Yes     bool   `short:"y" help:"Do not ask before launching a profile whose digest has not been approved."`
	RepoFlags
}

// Help explains the one-off command form.
func (c *StartCmd) Help() string {
	return `Arguments after "--" run as a one-off command in the sandbox instead of the agent,
and bottle exits with its exit code:

  bottle start --yes profile.star -- make test`
}

// Run evaluates the profile and prints or launches it. Before a launch
// (not a dry run) it fetches the repositories that are not in the cache
// yet, saying so on stderr: DESIGN.md §5 has only bottle fetch fill the
// cache, but issue 15, which wins where they differ, lets start fetch
// first. A dry run, like check, only reads the cache.
func (c *StartCmd) Run(g *Globals) error {
	src, err := openProfile(g, c.Profile, c.RepoFlags)
	if err != nil {
		return err
	}
	if !c.DryRun {
		if err := fetchRepos(g, src, false); err != nil {
			return err
		}
	}
	p, err := evalPlan(g, src)
	if err != nil {
		return err
	}
	if c.DryRun {
		if c.Format == "json" {
			enc := json.NewEncoder(g.Stdout)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			return enc.Encode(p)
		}
		return writeSummary(g.Stdout, p)
	}
	if c.Format == "json" {
		return usageErr(fmt.Errorf("--format=json prints the plan and needs --dry-run"))
	}
	return c.launch(g, p)
}
