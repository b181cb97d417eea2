package main

import (
	"errors"
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bottle-dev/bottle/sidecars/supervise"
	"github.com/bottle-dev/bottle/sidecars/supervise/tui"
)

// ApproveCmd approves a pending request of a stuck agent.
type ApproveCmd struct {
	ID   string `arg:"" help:"The request's id (see bottle supervise --once)."`
	Note string `help:"A note for the agent; for a question, the answer."`
	Host string `help:"Approve this host instead of the requested one (egress requests)."`
	Port int    `help:"Approve this port instead of the requested one (egress requests)."`
}

// Run answers the request and prints the allow() line for the profile.
func (c *ApproveCmd) Run(g *Globals) error {
	return answer(g, c.ID, true, c.Note, c.Host, c.Port)
}

// DenyCmd denies a pending request.
type DenyCmd struct {
	ID   string `arg:"" help:"The request's id (see bottle supervise --once)."`
	Note string `help:"A note for the agent saying why."`
}

// Run answers the request.
func (c *DenyCmd) Run(g *Globals) error {
	return answer(g, c.ID, false, c.Note, "", 0)
}

func answer(g *Globals, id string, approve bool, note, host string, port int) error {
	if !supervise.ValidID(id) {
		return usageErr(fmt.Errorf("%q is not a request id; bottle supervise --once lists them", id))
	}
	root, err := stateHome()
	if err != nil {
		return err
	}
	dir, err := supervise.Locate(root, id)
	if err != nil {
		return usageErr(err)
	}
	var prop *supervise.Proposal
	if pending, err := supervise.Pending(dir); err == nil {
		for i := range pending {
			if pending[i].ID == id {
				prop = &pending[i]
			}
		}
	}
	var opts []supervise.AnswerOption
	if host != "" || port != 0 {
		opts = append(opts, supervise.WithEdit(host, port))
	}
	if err := supervise.Answer(dir, id, approve, note, opts...); err != nil {
		if errors.Is(err, supervise.ErrAlreadyAnswered) || errors.Is(err, supervise.ErrExpired) || errors.Is(err, supervise.ErrUnknownProposal) {
			return usageErr(err)
		}
		return err
	}
	if !approve {
		return writeLine(g.Stderr, "bottle: denied %s", id)
	}
	if err := writeLine(g.Stderr, "bottle: approved %s", id); err != nil {
		return err
	}
	if prop != nil && prop.Kind == supervise.KindEgress {
		if host == "" {
			host = prop.Host
		}
		if port == 0 {
			port = prop.Port
		}
		return writeLine(g.Stdout, "To keep it, add to the profile: %s", supervise.AllowLine(host, port))
	}
	return nil
}

// SuperviseCmd shows the pending requests of every running bottle.
type SuperviseCmd struct {
	Once bool `help:"Print the pending requests and exit, without the interactive view."`
}

// Run lists or opens the terminal UI; approved egress requests end with the
// allow() lines to add to the profile (bottle never edits a profile).
func (c *SuperviseCmd) Run(g *Globals) error {
	root, err := stateHome()
	if err != nil {
		return err
	}
	if c.Once {
		dirs, err := supervise.StateDirs(root)
		if err != nil {
			return err
		}
		items, err := tui.Load(dirs)
		if err != nil {
			return err
		}
		return tui.WriteList(g.Stdout, items, time.Now())
	}
	lines, err := tui.Run(tui.RootLoader(root), tea.WithOutput(g.Stderr))
	if err != nil {
		return err
	}
	if len(lines) > 0 {
		fmt.Fprintln(g.Stdout, "Add these lines to the profile to keep the approved hosts:")
	}
	for _, l := range lines {
		fmt.Fprintln(g.Stdout, visible(l, false))
	}
	return nil
}
