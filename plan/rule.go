package plan

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// NormalizeMethods checks the HTTP methods of a rule and returns them
// upper-cased, sorted and de-duplicated. Each must be an HTTP token (RFC
// 9110, section 5.6.2); CONNECT is refused, because the egress sidecar
// decides a tunnel by its host and port before any method inside it is
// seen. An empty list is an error: it would allow no request, and a rule
// without methods allows every one.
func NormalizeMethods(methods []string) ([]string, error) {
	if len(methods) == 0 {
		return nil, errors.New("methods is empty, which would allow no request; leave methods out to allow every method")
	}
	out := make([]string, 0, len(methods))
	for _, m := range methods {
		up := strings.ToUpper(m)
		switch {
		case up == "":
			return nil, errors.New(`methods holds an empty string; give HTTP methods such as "GET"`)
		case !isToken(up):
			return nil, fmt.Errorf("method %q is not an HTTP method name: those are letters, digits and !#$%%&'*+-.^_`|~", m)
		case up == "CONNECT":
			return nil, errors.New("method CONNECT cannot be allowed or refused: it opens the tunnel, which the egress sidecar decides by host and port alone; leave it out")
		}
		out = append(out, up)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// isToken reports whether s is an RFC 9110 token: one or more tchar.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// NormalizePaths checks the path globs of a rule (CheckPath) and returns
// them sorted and de-duplicated. An empty list is an error: it would allow
// no request, and a rule without paths allows every path.
func NormalizePaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New(`paths is empty, which would allow no request; leave paths out to allow every path, or give "/**"`)
	}
	for _, p := range paths {
		if err := CheckPath(p); err != nil {
			return nil, err
		}
	}
	out := slices.Clone(paths)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// CheckPath checks one path glob of a rule. Paths are globs in the syntax
// of github.com/bmatcuk/doublestar/v4, matched against a request's URL
// path, percent-decoded, without its query: "*" matches within one path
// segment, "**" (a whole segment) any number of segments, "?" one
// character other than "/", "[abc]" and "[a-z]" one character of a class,
// "{a,b}" either alternative, and "\" escapes the next character.
//
// A path must start with "/" and be a valid glob. Refused as well, because
// they could never match what they seem to say: a query ("?" followed by
// "=") or a fragment ("#"), which are not part of the path; a
// percent-escape, since the path is matched decoded; "." and ".."
// segments, because the egress sidecar refuses requests whose path holds
// them on hosts with path rules; a "**" that is not a whole segment, which
// would act as "*"; and control characters.
func CheckPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q does not start with \"/\"; paths are globs on the URL path, such as \"/repos/acme/**\"", p)
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("path %q holds a control character", p)
	case strings.Contains(p, "#"):
		return fmt.Errorf("path %q holds \"#\": a fragment is never sent to the server, and paths match the URL path only", p)
	case !doublestar.ValidatePattern(p):
		return fmt.Errorf("path %q is not a valid glob: check that every [ and { is closed and that no \\ ends it", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("path %q holds a %q segment; the egress sidecar refuses request paths with dot segments, so it could never match", p, seg)
		}
	}
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && isHex(p[i+1]) && isHex(p[i+2]) {
			return fmt.Errorf("path %q holds the escape %q; paths are matched against the decoded URL path, so write the character itself", p, p[i:i+3])
		}
	}
	return checkGlobSyntax(p)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// checkGlobSyntax refuses the globs doublestar accepts but reads otherwise
// than they look: "**" inside a segment, and "?" starting what looks like a
// query. Escaped characters and character classes are skipped.
func checkGlobSyntax(p string) error {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '[':
			for i++; i < len(p) && p[i] != ']'; i++ {
				if p[i] == '\\' {
					i++
				}
			}
		case '?':
			if strings.Contains(p[i:], "=") {
				return fmt.Errorf("path %q looks like it holds a query; paths match the URL path only, without the query (a \"?\" in a glob matches one character)", p)
			}
		case '*':
			n := 1
			for i+n < len(p) && p[i+n] == '*' {
				n++
			}
			if n > 2 {
				return fmt.Errorf("path %q holds %q; write \"**\" for any number of segments or \"*\" for part of one", p, p[i:i+n])
			}
			if n == 2 && (p[i-1] != '/' || i+2 < len(p) && p[i+2] != '/') {
				return fmt.Errorf("path %q holds \"**\" inside a segment, where it matches like \"*\"; \"**\" spans segments only as a whole segment, as in \"/a/**\" or \"/a/**/b\"", p)
			}
			i += n - 1
		}
	}
	return nil
}

// CheckRule checks that a rule is valid and canonical, as allow() makes
// it: its host (NormalizeHost), its ports, and its methods and paths as
// NormalizeMethods and NormalizePaths return them (an empty, non-nil list
// is refused, as allow() refuses methods = []).
func CheckRule(r Rule) error {
	canon, err := NormalizeHost(r.Host)
	if err != nil {
		return err
	}
	if canon != r.Host {
		return fmt.Errorf("host %q is not in canonical form %q", r.Host, canon)
	}
	if len(r.Ports) == 0 {
		return fmt.Errorf("%s has no ports", r.Host)
	}
	for _, port := range r.Ports {
		if port < 1 || port > 65535 {
			return fmt.Errorf("%s: port %d is out of range", r.Host, port)
		}
	}
	if r.Methods != nil {
		m, err := NormalizeMethods(r.Methods)
		if err != nil {
			return fmt.Errorf("%s: %v", r.Host, err)
		}
		if !slices.Equal(m, r.Methods) {
			return fmt.Errorf("%s: methods %q are not upper case, sorted and unique", r.Host, r.Methods)
		}
	}
	if r.Paths != nil {
		p, err := NormalizePaths(r.Paths)
		if err != nil {
			return fmt.Errorf("%s: %v", r.Host, err)
		}
		if !slices.Equal(p, r.Paths) {
			return fmt.Errorf("%s: paths %q are not sorted and unique", r.Host, r.Paths)
		}
	}
	return nil
}

// NormalizeSecretHosts checks the hosts a secret is bound to and returns
// them canonical (NormalizeHost), sorted and de-duplicated. An empty list
// is an error: a secret bound to no host is one the agent sees, which is
// what leaving hosts out says.
func NormalizeSecretHosts(hosts []string) ([]string, error) {
	if len(hosts) == 0 {
		return nil, errors.New("hosts is empty; leave hosts out to give the agent the real value, or name the hosts the secret is for")
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		canon, err := NormalizeHost(h)
		if err != nil {
			return nil, err
		}
		out = append(out, canon)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// CoversHost reports whether some rule allows every name host stands for:
// for a name, a rule that matches it (MatchHost); for "*.x", a rule for
// "*.x" itself or a wildcard over a parent of x. A rule for one name never
// covers a wildcard.
func CoversHost(rules []Rule, host string) bool {
	return slices.ContainsFunc(rules, func(r Rule) bool { return coversHost(r.Host, host) })
}

func coversHost(pattern, host string) bool {
	if apex, ok := strings.CutPrefix(host, "*."); ok {
		return pattern == host || strings.HasPrefix(pattern, "*.") && MatchHost(pattern, apex)
	}
	return MatchHost(pattern, host)
}

// DeclError is a problem with one declaration of a plan, at From.
type DeclError struct {
	// From is the position of the declaration at fault.
	From string
	// Msg says what is wrong and what to do, starting with the builtin
	// that made the declaration ("secret: ...").
	Msg string
}

func (e *DeclError) Error() string {
	if e.From == "" {
		return e.Msg
	}
	return e.From + ": " + e.Msg
}

// CheckEgressPolicy checks what no one declaration shows: that a secret's
// hosts are allowed, that secrets bound to hosts and rules with methods,
// paths or inspect have the built-in egress sidecar, which alone can see
// inside TLS, and that no two rules compete to decide the same host and
// port with different restrictions. It returns every problem, joined, each
// a *DeclError at the declaration to change.
//
// Two rules for the same host may both allow a port: the egress sidecar
// lets exactly one rule decide each request (a rule with allow_private
// first, then the earlier one), so the other's methods, paths and inspect
// would never apply. Such rules must not differ in those. Rules for
// different hosts do not compete: for a name that both an exact rule and a
// wildcard match, the exact rule decides, and its restrictions (or their
// absence) are the only ones that apply.
func (p *Plan) CheckEgressPolicy() error {
	var errs []error
	bad := func(from, format string, args ...any) {
		errs = append(errs, &DeclError{From: from, Msg: fmt.Sprintf(format, args...)})
	}
	builtin := p.Egress.Sidecar == SidecarEgress
	for _, s := range p.Secrets {
		if len(s.Hosts) == 0 {
			continue
		}
		if !builtin {
			bad(s.From, "secret: %s: secret(hosts=...) needs the built-in egress sidecar; %s cannot substitute placeholders; "+
				"remove sidecar(%q) to use the built-in one, or leave hosts out to give the agent the real value", s.Name, p.Egress.Sidecar, p.Egress.Sidecar)
			continue
		}
		for _, h := range s.Hosts {
			if CoversHost(p.Egress.Rules, h) {
				continue
			}
			if strings.HasPrefix(h, "*.") {
				bad(s.From, "secret: %s is bound to %q, but no allow() rule allows all of it; add allow(%q), or a wildcard over a parent domain", s.Name, h, h)
			} else {
				bad(s.From, "secret: %s is bound to %q, which no allow() rule allows; add allow(%q)", s.Name, h, h)
			}
		}
	}
	// The first rule for each host and port; every later one must have
	// its restrictions, or two rules differ and one of them never decides.
	first := map[string]int{}
	for i, r := range p.Egress.Rules {
		if !builtin && r.Intercepted() {
			bad(r.From, "allow: allow(%q) with %s needs the built-in egress sidecar; bottle runs %s without TLS interception, so it cannot see a request's method or path or inspect it; "+
				"remove sidecar(%q) to use the built-in one, or leave %s out", r.Host, restrictionNames(r), p.Egress.Sidecar, p.Egress.Sidecar, restrictionNames(r))
		}
		for _, port := range r.Ports {
			key := r.Host + ":" + strconv.Itoa(port)
			j, ok := first[key]
			if !ok {
				first[key] = i
				continue
			}
			if prev := p.Egress.Rules[j]; !sameRestrictions(prev, r) {
				bad(r.From, "allow: this rule and the one at %s both allow %s on port %d with different methods, paths or inspect, "+
					"but one rule decides each request, so the other would never apply; merge them into one allow(), or give each its own ports",
					prev.From, r.Host, port)
				break
			}
		}
	}
	return errors.Join(errs...)
}

func sameRestrictions(a, b Rule) bool {
	return a.Inspect == b.Inspect && slices.Equal(a.Methods, b.Methods) && slices.Equal(a.Paths, b.Paths)
}

// restrictionNames names what makes r intercepted: "methods", "paths and
// inspect", ...
func restrictionNames(r Rule) string {
	var names []string
	if len(r.Methods) > 0 {
		names = append(names, "methods")
	}
	if len(r.Paths) > 0 {
		names = append(names, "paths")
	}
	if r.Inspect {
		names = append(names, "inspect")
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
