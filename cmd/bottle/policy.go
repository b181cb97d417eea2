package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars/egress"
)

// PolicyCmd groups the policy commands.
type PolicyCmd struct {
	Check PolicyCheckCmd `cmd:"" help:"Say whether a profile lets the sandbox reach HOST[:PORT], and which rule decides."`
}

// PolicyCheckCmd answers "may the sandbox reach this host?".
type PolicyCheckCmd struct {
	Args   []string `arg:"" name:"[profile] host[:port]" help:"An optional profile (default: ./bottle.star, else the shipped claude.star), then HOST or HOST:PORT (port 443 if omitted)."`
	Format string   `enum:"text,json" default:"text" help:"Output format: text or json."`
	RepoFlags
}

// Help explains the exit codes.
func (c *PolicyCheckCmd) Help() string {
	return `Exits 0 when the profile allows the destination, 1 when it denies it, and 2 on a
usage or profile error. The decision is the allow-list's; at run time the egress
sidecar also refuses a name that resolves to a non-public address unless its
rule sets allow_private.`
}

type policyResult struct {
	Decision  string     `json:"decision"`
	Host      string     `json:"host"`
	Port      int        `json:"port"`
	Reason    string     `json:"reason"`
	Rule      *plan.Rule `json:"rule,omitempty"`
	Nearest   *plan.Rule `json:"nearest,omitempty"`
	AllowLine string     `json:"allow_line,omitempty"`
	Digest    string     `json:"digest"`
}

// Run decides and prints the verdict; a denial exits 1.
func (c *PolicyCheckCmd) Run(g *Globals) error {
	var profile, target string
	switch len(c.Args) {
	case 1:
		target = c.Args[0]
	case 2:
		profile, target = c.Args[0], c.Args[1]
	default:
		return usageErr(fmt.Errorf("policy check takes [PROFILE] HOST[:PORT], got %d arguments", len(c.Args)))
	}
	host, port, err := splitTarget(target)
	if err != nil {
		return usageErr(err)
	}
	p, err := loadPlan(g, profile, c.RepoFlags)
	if err != nil {
		return err
	}
	d := egress.Decide(p.Egress.Rules, host, port)
	res := policyResult{Decision: "deny", Host: d.Host, Port: d.Port, Reason: d.Reason, Nearest: d.Nearest,
		AllowLine: d.AllowLine(), Digest: p.Digest}
	if d.Allowed {
		res.Decision, res.Rule, res.Nearest = "allow", d.Rule, nil
	}
	if c.Format == "json" {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if err := writePolicyText(g, res); err != nil {
		return err
	}
	if !d.Allowed {
		return &exitError{code: exitRuntime, err: errSilent}
	}
	return nil
}

func writePolicyText(g *Globals, r policyResult) error {
	dest := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	var b strings.Builder
	if r.Decision == "allow" {
		fmt.Fprintf(&b, "allow %s\n  by %s at %s\n", dest, ruleLine(*r.Rule), r.Rule.From)
	} else {
		fmt.Fprintf(&b, "deny %s\n  %s\n", dest, r.Reason)
		if r.Nearest != nil {
			fmt.Fprintf(&b, "  nearest rule: %s at %s\n", ruleLine(*r.Nearest), r.Nearest.From)
		}
		if r.AllowLine != "" {
			fmt.Fprintf(&b, "  to allow it, add to the profile: %s\n", r.AllowLine)
		}
	}
	_, err := fmt.Fprint(g.Stdout, visible(b.String(), true))
	return err
}

// ruleLine renders a rule as the allow() call that makes it, with the
// methods and paths that narrow which requests it lets through.
func ruleLine(r plan.Rule) string {
	s := "allow(" + strconv.Quote(r.Host)
	if len(r.Ports) != 1 || r.Ports[0] != 443 {
		ports := make([]string, len(r.Ports))
		for i, p := range r.Ports {
			ports[i] = strconv.Itoa(p)
		}
		s += ", ports = [" + strings.Join(ports, ", ") + "]"
	}
	if r.AllowPrivate {
		s += ", allow_private = True"
	}
	if len(r.Methods) > 0 {
		s += ", methods = " + starlarkList(r.Methods)
	}
	if len(r.Paths) > 0 {
		s += ", paths = " + starlarkList(r.Paths)
	}
	if r.Inspect {
		s += ", inspect = True"
	}
	return s + ")"
}

// starlarkList writes strings as a Starlark list literal.
func starlarkList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// splitTarget parses HOST, HOST:PORT or [IPv6]:PORT; the port defaults to 443.
func splitTarget(s string) (string, int, error) {
	if s == "" {
		return "", 0, fmt.Errorf("empty host; give HOST or HOST:PORT")
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare name, or a bare IPv6 literal.
		return strings.Trim(s, "[]"), egress.DefaultPort, nil
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", portStr)
	}
	return host, port, nil
}
