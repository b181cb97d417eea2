package egress

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

var testRules = []plan.Rule{
	{Host: "*.example.com", Ports: []int{443}, From: "//bottle.star:3:6"},
	{Host: "api.example.com", Ports: []int{443, 8443}, From: "//bottle.star:4:6"},
	{Host: "example.org", Ports: []int{443}, From: "//bottle.star:5:6"},
	{Host: "*.internal.example.net", Ports: []int{443}, AllowPrivate: true, From: "//bottle.star:6:6"},
	{Host: "git.internal.example.net", Ports: []int{443}, From: "//bottle.star:7:6"},
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		host     string
		port     int
		allowed  bool
		rule     string // deciding rule when allowed, nearest rule otherwise
		reason   string
		allowFix string
	}{
		{"api.example.com", 443, true, "api.example.com", ReasonAllowed, ""},
		{"API.Example.COM.", 8443, true, "api.example.com", ReasonAllowed, ""},
		{"a.example.com", 443, true, "*.example.com", ReasonAllowed, ""},
		{"a.b.example.com", 443, true, "*.example.com", ReasonAllowed, ""},
		{"example.com", 443, false, "*.example.com", ReasonWildcardApex + ": *.example.com", `allow("example.com")`},
		{"a.example.com", 80, false, "*.example.com", ReasonPort + ": *.example.com allows port 443", `allow("a.example.com", ports = [80])`},
		{"example.org", 8443, false, "example.org", ReasonPort + ": example.org allows port 443", `allow("example.org", ports = [8443])`},
		{"www.example.org", 443, false, "example.org", ReasonSubdomain + ": example.org", `allow("www.example.org")`},
		{"example.net", 443, false, "", ReasonNoRule, `allow("example.net")`},
		{"notexample.org", 443, false, "", ReasonNoRule, `allow("notexample.org")`},
		{"xexample.com", 443, false, "", ReasonNoRule, `allow("xexample.com")`},
		{"git.internal.example.net", 443, true, "git.internal.example.net", ReasonAllowed, ""},
		{"bücher.example.org", 443, false, "example.org", ReasonSubdomain + ": example.org", `allow("xn--bcher-kva.example.org")`},
		{"93.184.216.34", 443, false, "", ReasonIPLiteral, ""},
		{"[::1]", 443, false, "", ReasonIPLiteral, ""},
		{"::ffff:127.0.0.1", 443, false, "", ReasonIPLiteral, ""},
		{"localhost", 443, false, "", ReasonInvalidHost, ""},
		{"*.example.com", 443, false, "", ReasonInvalidHost, ""},
		{"exa mple.com", 443, false, "", ReasonInvalidHost, ""},
		{"", 443, false, "", ReasonInvalidHost, ""},
		{"api.example.com", 0, false, "", ReasonInvalidPort, ""},
		{"api.example.com", 65536, false, "", ReasonInvalidPort, ""},
	} {
		d := Decide(testRules, tc.host, tc.port)
		if d.Allowed != tc.allowed || d.Reason != tc.reason || d.AllowLine() != tc.allowFix {
			t.Errorf("Decide(%q, %d) = allowed %v, reason %q, fix %q; want %v, %q, %q",
				tc.host, tc.port, d.Allowed, d.Reason, d.AllowLine(), tc.allowed, tc.reason, tc.allowFix)
		}
		r := d.Rule
		if !d.Allowed {
			r = d.Nearest
			if d.Rule != nil {
				t.Errorf("Decide(%q, %d): refused with deciding rule %+v", tc.host, tc.port, d.Rule)
			}
		}
		got := ""
		if r != nil {
			got = r.Host
		}
		if got != tc.rule {
			t.Errorf("Decide(%q, %d): rule %q, want %q", tc.host, tc.port, got, tc.rule)
		}
	}
}

// TestDecidePrefersExactGrantsPrivate: the most specific rule decides,
// and allow_private from any matching rule is granted with it.
func TestDecidePrefersExactGrantsPrivate(t *testing.T) {
	d := Decide(testRules, "git.internal.example.net", 443)
	if !d.Allowed || !d.Rule.AllowPrivate || d.Rule.From != "//bottle.star:7:6" {
		t.Errorf("want the exact rule to decide, with the wildcard's allow_private, got %+v", d.Rule)
	}
	if testRules[4].AllowPrivate {
		t.Error("Decide changed the rules it was given")
	}
	d = Decide(testRules, "api.example.com", 443)
	if !d.Allowed || d.Rule.Host != "api.example.com" {
		t.Errorf("want the exact rule to decide over the wildcard, got %+v", d.Rule)
	}
}

func TestDenialText(t *testing.T) {
	d := Decide(testRules, "example.org", 8443)
	want := "bottle: egress to example.org:8443 denied: this host is allowed only on other ports: example.org allows port 443\n" +
		"to allow it, add to the profile: allow(\"example.org\", ports = [8443])\n"
	if got := d.DenialText(); got != want {
		t.Errorf("DenialText:\n%s\nwant:\n%s", got, want)
	}
	d = Decide(testRules, "[2001:db8::1]", 443)
	want = "bottle: egress to [2001:db8::1]:443 denied: IP literals are never allowed; use a host name\n"
	if got := d.DenialText(); got != want {
		t.Errorf("DenialText:\n%s\nwant:\n%s", got, want)
	}
	d = Decide(nil, "evil\r\nX-Injected: 1", 443)
	if got := d.DenialText(); strings.Count(got, "\n") != 1 || !strings.Contains(got, `"evil\r\nX-Injected: 1"`) {
		t.Errorf("an invalid host must be quoted on one line, got %q", got)
	}
	d = Decide(nil, strings.Repeat("a", 5000), 443)
	if len(d.Host) > 110 {
		t.Errorf("an invalid host must be cut, got %d bytes", len(d.Host))
	}
}

func TestAddrClass(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
	}{
		{"93.184.216.34", true},
		{"8.8.8.8", true},
		{"2606:4700::1111", true},
		{"127.0.0.1", false},
		{"127.8.9.10", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"172.32.0.1", true},
		{"192.168.1.1", false},
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"100.128.0.1", true},
		{"169.254.169.254", false},
		{"169.254.1.1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"198.18.0.1", false},
		{"192.0.2.1", false},
		{"::", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:93.184.216.34", true},
		{"::127.0.0.1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fec0::1", false},
		{"ff02::1", false},
		{"fd00:ec2::254", false},
		{"64:ff9b::7f00:1", false},
		{"64:ff9b::a00:1", false},
		{"64:ff9b::5db8:d822", true},
		{"2002:7f00:1::1", false},
		{"2002:5db8:d822::1", true},
		{"2001:db8::1", false},
		{"2001::1", false},
	} {
		a := netip.MustParseAddr(tc.addr)
		class := AddrClass(a)
		if (class == "") != tc.public {
			t.Errorf("AddrClass(%s) = %q; want public %v", tc.addr, class, tc.public)
		}
	}
	if AddrClass(netip.Addr{}) == "" {
		t.Error("the zero Addr must not be public")
	}
}

func TestValidateRule(t *testing.T) {
	for _, r := range []plan.Rule{
		{Host: "Example.com", Ports: []int{443}},
		{Host: "example.com.", Ports: []int{443}},
		{Host: "example.com", Ports: nil},
		{Host: "example.com", Ports: []int{0}},
		{Host: "example.com", Ports: []int{70000}},
		{Host: "*", Ports: []int{443}},
		{Host: "10.0.0.1", Ports: []int{443}},
	} {
		if err := ValidateRule(r); err == nil {
			t.Errorf("ValidateRule(%+v) = nil, want an error", r)
		}
	}
	if err := ValidateRule(plan.Rule{Host: "*.example.com", Ports: []int{443, 80}}); err != nil {
		t.Errorf("ValidateRule: %v", err)
	}
}

func FuzzDecide(f *testing.F) {
	for _, s := range []string{"api.example.com", "EXAMPLE.com.", "*.example.com", "[::1]", "1.2.3.4", "bücher.example.org", "a..b", ""} {
		f.Add(s, 443)
	}
	f.Fuzz(func(t *testing.T, host string, port int) {
		d := Decide(testRules, host, port)
		if d.Allowed {
			if d.Rule == nil || !plan.MatchHost(d.Rule.Host, d.Host) {
				t.Fatalf("allowed %q:%d by %+v", host, port, d.Rule)
			}
			if _, err := netip.ParseAddr(d.Host); err == nil {
				t.Fatalf("allowed IP literal %q", host)
			}
			return
		}
		text := d.DenialText()
		if strings.Count(text, "\n") > 2 || !strings.HasPrefix(text, "bottle: egress to ") {
			t.Fatalf("denial text %q", text)
		}
		if line := d.AllowLine(); line != "" {
			if _, err := plan.NormalizeHost(d.Host); err != nil {
				t.Fatalf("suggested %s for an invalid host: %v", line, err)
			}
		}
	})
}
