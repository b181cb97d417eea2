package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bottle-dev/bottle/agents"
)

// StartCmd starts a bottle.
type StartCmd struct {
	Profile string `arg:"" optional:"" predictor:"file" help:"Profile to start: a file, or a shipped profile by its label (//claude.star, //codex.star). Default: ./bottle.star, else //claude.star."`
	DryRun  bool   `help:"Evaluate the profile and print the plan; create nothing and run nothing."`
	Format  string `enum:"text,json" default:"text" help:"Output format of the plan: text or json."`
	Yes     bool   `short:"y" help:"Do not ask before launching a profile whose digest has not been approved."`
	Prompt  string `placeholder:"TEXT" help:"Run the agent without a terminal on this prompt and print its answer (its provider's non-interactive mode: claude -p, codex exec), for CI and scripts; bottle exits with the agent's exit code."`
	RepoFlags
}

// Help explains the one-off command form.
func (c *StartCmd) Help() string {
	return `Arguments after "--" run as a one-off command in the sandbox instead of the agent,
and bottle exits with its exit code:

  bottle start --yes profile.star -- make test

--prompt runs the agent's own non-interactive mode on a prompt, with no
terminal and nothing on its stdin, and prints its answer:

  bottle start --yes --prompt "fix the failing test" profile.star`
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
	command := g.Passthrough
	if c.Prompt != "" {
		if len(command) > 0 {
			return usageErr(fmt.Errorf("--prompt runs the agent on a prompt; a command after \"--\" runs instead of the agent: give one or the other"))
		}
		prov := agents.For(p.Agent.Provider, p.Agent.Command)
		if prov == nil || prov.Headless == nil {
			return usageErr(fmt.Errorf("--prompt needs an agent bottle knows how to run on a prompt (%s), and this profile's agent is %q; run its own non-interactive mode after \"--\"", strings.Join(agents.Names(), ", "), strings.Join(p.Agent.Command, " ")))
		}
		command = prov.Headless(c.Prompt)
	}
	return c.launch(g, p, command)
}
