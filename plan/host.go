package plan

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// hostAccepted is appended to every host error: what allow() takes instead.
const hostAccepted = `; allow() takes a DNS name such as "api.example.com", or "*.example.com" for its subdomains`

// idnaProfile converts internationalised names to their ASCII (punycode)
// form with the rules browsers and resolvers use for lookups.
var idnaProfile = idna.Lookup

// NormalizeHost checks an allow-list host pattern and returns its canonical
// form: lower case, no trailing dot, internationalised labels in punycode.
// It accepts DNS names of at least two labels and "*.name" wildcards over
// such names; it rejects IP literals, "*" alone, wildcards over a top-level
// domain, empty labels, labels over 63 bytes, names over 253 bytes, characters
// outside letters, digits and hyphens, and non-ASCII that is not valid IDNA.
func NormalizeHost(host string) (string, error) {
	if host == "" {
		return "", errors.New("empty host" + hostAccepted)
	}
	if !utf8.ValidString(host) {
		return "", errors.New("host is not valid UTF-8" + hostAccepted)
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return "", fmt.Errorf("%q is an IP address, and IP literals are never allowed%s", ip.String(), hostAccepted)
	}
	if host == "*" || host == "*." {
		return "", errors.New(`"*" alone would allow every host` + hostAccepted)
	}
	wildcard := false
	name := host
	if strings.HasPrefix(name, "*.") {
		wildcard = true
		name = name[2:]
	}
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("%q: a wildcard is only accepted as the whole first label (\"*.example.com\")%s", host, hostAccepted)
	}
	name = strings.TrimSuffix(name, ".")
	ascii := strings.ToLower(name)
	if !isASCII(name) {
		a, err := idnaProfile.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("%q is not a valid internationalised domain name (%v)%s", host, err, hostAccepted)
		}
		ascii = strings.ToLower(a)
	}
	if len(ascii) > 253 {
		return "", fmt.Errorf("host is %d bytes long; DNS names are at most 253%s", len(ascii), hostAccepted)
	}
	labels := strings.Split(ascii, ".")
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return "", fmt.Errorf("%q: %v%s", host, err, hostAccepted)
		}
	}
	if len(labels) < 2 {
		if wildcard {
			return "", fmt.Errorf("%q would allow every name under the top-level domain %q%s", host, ascii, hostAccepted)
		}
		return "", fmt.Errorf("%q is a bare top-level domain or single-label name%s", host, hostAccepted)
	}
	if allDigits(labels[len(labels)-1]) {
		return "", fmt.Errorf("%q ends in a numeric label, which resolvers may read as an IP address%s", host, hostAccepted)
	}
	if wildcard {
		return "*." + ascii, nil
	}
	return ascii, nil
}

func checkLabel(l string) error {
	switch {
	case l == "":
		return errors.New("empty label")
	case len(l) > 63:
		return fmt.Errorf("label %.20q... is %d bytes long; labels are at most 63", l, len(l))
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("label %q holds %q; labels hold letters, digits and hyphens", l, c)
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// MatchHost reports whether the canonical host pattern matches name, which
// must already be lower case without a trailing dot. "*.example.com" matches
// "a.example.com" and "a.b.example.com" but not "example.com".
func MatchHost(pattern, name string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return len(name) > len(suffix) && strings.HasSuffix(name, suffix)
	}
	return pattern == name
}
