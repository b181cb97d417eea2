package egress

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/bottle-dev/bottle/plan"
)

// DefaultPort is the port allow() grants when a profile names none; an
// allow line suggested for this port leaves ports out.
const DefaultPort = 443

// Reasons a Decision gives. They appear in refusal bodies and log lines and
// are kept stable; some are followed by details (": ...").
const (
	ReasonAllowed      = "allowed"
	ReasonNoRule       = "no rule allows this host"
	ReasonPort         = "this host is allowed only on other ports"
	ReasonWildcardApex = "a wildcard rule matches subdomains only, not the name itself"
	ReasonSubdomain    = "a rule for a parent name does not cover its subdomains"
	ReasonIPLiteral    = "IP literals are never allowed; use a host name"
	ReasonInvalidHost  = "not a valid host name"
	ReasonInvalidPort  = "not a valid port"
	ReasonPrivate      = "the host resolves to a non-public address"
)

// Decision is the verdict of the allow-list on one host and port.
type Decision struct {
	// Host is the request's host in canonical form (lower case, no trailing
	// dot, punycode); an IP literal in its usual text form; or, when it is
	// not a valid name, quoted as a Go string and cut at about 100 bytes.
	Host string
	// Port is the destination port.
	Port int
	// Allowed reports whether the rules allow Host:Port. The proxy may still
	// refuse an allowed destination by its resolved addresses.
	Allowed bool
	// Rule is the deciding rule when Allowed.
	Rule *plan.Rule
	// Nearest is, when not Allowed, the rule that came closest: the same
	// host on other ports, a wildcard whose apex Host is, or a rule for a
	// parent name of Host. It is nil when no rule comes close.
	Nearest *plan.Rule
	// Reason says why, as one of the Reason constants, possibly followed by
	// ": " and details.
	Reason string
	// NeedsPrivate is set when the destination was refused only because it
	// resolved to a non-public address; AllowLine then adds allow_private.
	NeedsPrivate bool

	// ruleIndex is the deciding rule's index in the rules decided by.
	ruleIndex int
}

// Decide applies rules to host and port. host may be in any case, carry a
// trailing dot, be internationalised or be an IP literal (always refused);
// rules must be canonical as plan.NormalizeHost returns them.
//
// Among the rules that match, the most specific decides: an exact name
// over a wildcard, then a longer wildcard over a shorter one, then the
// earlier rule; its methods, paths and inspection apply. AllowPrivate is
// a grant of its own: the deciding rule (Decision.Rule, a copy) has it
// when any matching rule does, since an allow-list is a union of grants.
// (Before methods and paths existed, an AllowPrivate rule decided first;
// a wildcard with allow_private would then have made an exact rule's
// method and path rules void.)
func Decide(rules []plan.Rule, host string, port int) Decision {
	d := Decision{Host: host, Port: port}
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		d.Host = ip.String()
		d.Reason = ReasonIPLiteral
		return d
	}
	name, err := plan.NormalizeHost(host)
	if err != nil || strings.Contains(host, "*") {
		d.Host = quoteInvalid(host)
		d.Reason = ReasonInvalidHost
		return d
	}
	d.Host = name
	if port < 1 || port > 65535 {
		d.Reason = ReasonInvalidPort
		return d
	}
	best := -1
	for i := range rules {
		r := &rules[i]
		if !plan.MatchHost(r.Host, name) || !slices.Contains(r.Ports, port) {
			continue
		}
		if best < 0 || better(r, &rules[best]) {
			best = i
		}
	}
	if best >= 0 {
		r := rules[best]
		for i := range rules {
			if rules[i].AllowPrivate && plan.MatchHost(rules[i].Host, name) && slices.Contains(rules[i].Ports, port) {
				r.AllowPrivate = true
			}
		}
		d.Allowed, d.Rule, d.Reason, d.ruleIndex = true, &r, ReasonAllowed, best
		return d
	}
	d.Reason = ReasonNoRule
	// The nearest rule, by preference: same host on other ports, a
	// wildcard over this apex, a rule for a parent name.
	for _, kind := range []int{nearPort, nearApex, nearParent} {
		for i := range rules {
			if near(&rules[i], name) == kind {
				r := rules[i]
				d.Nearest = &r
				d.Reason = nearReason(kind, &r)
				return d
			}
		}
	}
	return d
}

const (
	nearNone = iota
	nearPort
	nearApex
	nearParent
)

func near(r *plan.Rule, name string) int {
	switch {
	case plan.MatchHost(r.Host, name):
		return nearPort
	case r.Host == "*."+name:
		return nearApex
	case !strings.HasPrefix(r.Host, "*.") && strings.HasSuffix(name, "."+r.Host):
		return nearParent
	}
	return nearNone
}

func nearReason(kind int, r *plan.Rule) string {
	switch kind {
	case nearPort:
		return ReasonPort + ": " + r.Host + " allows " + portList(r.Ports)
	case nearApex:
		return ReasonWildcardApex + ": " + r.Host
	default:
		return ReasonSubdomain + ": " + r.Host
	}
}

// better reports whether a should decide over b when both match.
func better(a, b *plan.Rule) bool {
	aw, bw := strings.HasPrefix(a.Host, "*."), strings.HasPrefix(b.Host, "*.")
	if aw != bw {
		return !aw
	}
	return len(a.Host) > len(b.Host)
}

func portList(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return "port " + strings.Join(s, ", ")
}

// AllowLine returns the profile line that would allow the destination, such
// as `allow("example.org", ports = [8443])`, or "" when no rule can allow it
// (IP literals, invalid names and ports) or it is already allowed.
func (d Decision) AllowLine() string {
	if d.Allowed || d.Reason == ReasonIPLiteral || d.Reason == ReasonInvalidHost || d.Reason == ReasonInvalidPort {
		return ""
	}
	var b strings.Builder
	b.WriteString("allow(")
	b.WriteString(strconv.Quote(d.Host))
	if d.Port != DefaultPort {
		fmt.Fprintf(&b, ", ports = [%d]", d.Port)
	}
	if d.NeedsPrivate {
		b.WriteString(", allow_private = True")
	}
	b.WriteString(")")
	return b.String()
}

// DenialText is the plain-text body of a refusal: one line naming the
// destination and the reason, then, when a rule could allow it, a line with
// the allow() call to add. For example:
//
//	bottle: egress to example.org:8443 denied: no rule allows this host
//	to allow it, add to the profile: allow("example.org", ports = [8443])
func (d Decision) DenialText() string {
	s := "bottle: egress to " + hostPort(d.Host, d.Port) + " denied: " + d.Reason + "\n"
	if line := d.AllowLine(); line != "" {
		s += "to allow it, add to the profile: " + line + "\n"
	}
	return s
}

// quoteInvalid makes an invalid host safe to print and log: quoted, ASCII,
// and at most about 100 bytes.
func quoteInvalid(host string) string {
	const max = 100
	if len(host) > max {
		return strconv.QuoteToASCII(host[:max]) + "..."
	}
	return strconv.QuoteToASCII(host)
}

// hostPort joins host and port, bracketing an IPv6 literal.
func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
