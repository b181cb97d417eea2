package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/bottle-dev/bottle/plan"
)

// writeSummary prints the plan as a summary a person reads in seconds.
func writeSummary(w io.Writer, p *plan.Plan) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// Every cell is escaped: a profile's strings must not drive the
	// terminal (an ESC[8m in the agent's command hid the lines after it).
	row := func(cols ...string) {
		for i, c := range cols {
			cols[i] = visible(c, false)
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}

	row("profile", p.Profile.Label, p.Profile.Path)
	for _, r := range p.Repos {
		switch {
		case r.Override && r.URL != "":
			row("repo", "@"+r.Name, r.Path+" (--override-repo of "+r.URL+" at "+r.Commit+")")
		case r.Override:
			row("repo", "@"+r.Name, r.Path+" (--override-repo)")
		case r.URL != "":
			row("repo", "@"+r.Name, r.URL+" at "+r.Commit)
		default:
			row("repo", "@"+r.Name, r.Path)
		}
	}
	b := p.Backend
	res := []string{}
	if b.CPUs > 0 {
		res = append(res, "cpus "+strconv.FormatFloat(b.CPUs, 'f', -1, 64))
	}
	if b.MemoryBytes > 0 {
		res = append(res, "memory "+plan.FormatSize(b.MemoryBytes))
	}
	if b.PidsLimit > 0 {
		res = append(res, "pids "+strconv.FormatInt(b.PidsLimit, 10))
	}
	if len(b.CapAdd) > 0 {
		res = append(res, "caps "+strings.Join(b.CapAdd, " "))
	}
	if b.StorageBytes > 0 {
		res = append(res, "storage "+plan.FormatSize(b.StorageBytes))
	}
	if b.Runtime != "" {
		res = append(res, "runtime "+b.Runtime)
	}
	if b.User != "" {
		res = append(res, "user "+b.User)
	}
	row("backend", b.Kind+" "+b.Image, strings.Join(res, ", "))
	agentNote := "in " + p.Agent.Workdir
	if p.Agent.Provider != "" {
		agentNote += ", prepared as " + p.Agent.Provider
	}
	if p.Agent.Home == plan.HomePersistent {
		agentNote += ", HOME kept in " + p.Agent.HomeDir
	}
	row("agent", strings.Join(quoteArgs(p.Agent.Command), " "), agentNote)
	for _, e := range p.Agent.Env {
		row("  env", e.Name+"="+strconv.Quote(e.Value), e.From)
	}
	for _, s := range p.Secrets {
		row("  secret", s.Name, s.From, secretSummary(s))
	}
	if len(p.Egress.Rules) == 0 {
		row("allow", "nothing: the sandbox reaches no host")
	}
	for _, r := range p.Egress.Rules {
		ports := make([]string, len(r.Ports))
		for i, port := range r.Ports {
			ports[i] = strconv.Itoa(port)
		}
		host := r.Host + ":" + strings.Join(ports, ",")
		if r.AllowPrivate {
			host += " (private addresses allowed)"
		}
		if rs := ruleRestrictions(r); rs != "" {
			row("allow", host, r.From, rs)
		} else {
			row("allow", host, r.From)
		}
	}
	for _, s := range p.Sidecars {
		from := s.From
		if s.Implicit {
			from = "built in, added because the profile names no egress sidecar"
		}
		var notes []string
		if s.Egress != nil && s.Egress.InspectAll {
			notes = append(notes, "inspects every allowed host")
		}
		if s.Egress != nil && s.Egress.OutboundScan == "log" {
			notes = append(notes, "logs outbound-scan findings without refusing them")
		}
		if len(notes) > 0 {
			row("sidecar", s.Name+" at "+s.Listen.URL, from, strings.Join(notes, "; "))
		} else {
			row("sidecar", s.Name+" at "+s.Listen.URL, from)
		}
	}
	for _, m := range p.Mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		row("mount", m.Target+" ("+mode+")", m.From, "<- "+m.HostPath)
		if !m.ReadOnly {
			row("  locked", protectSummary(m.Protect))
		}
	}
	row("state", p.StateDir)
	row("digest", p.Digest)
	return tw.Flush()
}

// secretSummary says where a secret comes from and who sees its value.
func secretSummary(s plan.Secret) string {
	src := "from env " + s.FromEnv
	if s.FromFile != "" {
		src = "from file " + s.FromFile
	}
	if s.Visible() {
		return src + ", visible to the agent"
	}
	return src + ", bound to " + andList(s.Hosts) + " (the agent gets a placeholder)"
}

// ruleRestrictions is what narrows a rule, for its summary line: its
// methods, its paths and whether it is inspected; empty for none.
func ruleRestrictions(r plan.Rule) string {
	var parts []string
	if len(r.Methods) > 0 {
		parts = append(parts, "methods "+strings.Join(r.Methods, " "))
	}
	if len(r.Paths) > 0 {
		parts = append(parts, "paths "+strings.Join(quoteArgs(r.Paths), " "))
	}
	if r.Inspect {
		parts = append(parts, "inspected")
	}
	return strings.Join(parts, "; ")
}

// andList joins "a", "a and b", "a, b and c".
func andList(l []string) string {
	if len(l) <= 1 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " and " + l[len(l)-1]
}

// quoteArgs quotes the arguments that a shell would split.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

// protectSummary says what a writable mount protects: the defaults, and
// what the profile added.
func protectSummary(list []string) string {
	var extra []string
	for _, p := range list {
		if !slices.Contains(plan.DefaultProtect, p) {
			extra = append(extra, p)
		}
	}
	s := "the defaults (git config, hooks), the profile"
	if len(extra) > 0 {
		s += ", " + strings.Join(extra, " ")
	}
	return s
}
