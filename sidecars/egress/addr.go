package egress

import "net/netip"

// specialRange is an address range the proxy never dials unless the
// deciding rule sets AllowPrivate.
type specialRange struct {
	prefix netip.Prefix
	class  string
}

// specialRanges lists the non-public ranges: the IANA IPv4 and IPv6
// special-purpose registries, less the ranges that are globally reachable.
// IPv4-mapped IPv6 addresses are unmapped before the check, and the IPv6
// forms that embed an IPv4 address (NAT64, 6to4) are
// checked by their embedded address as well. Everything else that is not
// global unicast is refused too.
var specialRanges = func() []specialRange {
	table := []struct{ cidr, class string }{
		{"0.0.0.0/8", "this-network"},
		{"10.0.0.0/8", "private"},
		{"100.64.0.0/10", "shared (CGNAT)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.169.254/32", "link-local (cloud metadata)"},
		{"169.254.0.0/16", "link-local"},
		{"172.16.0.0/12", "private"},
		{"192.0.0.0/24", "IETF protocol assignment"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"192.168.0.0/16", "private"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "IPv4-compatible (deprecated)"},
		{"64:ff9b:1::/48", "local-use NAT64"},
		{"100::/64", "discard-only"},
		{"2001::/23", "IETF protocol assignment"},
		{"2001:db8::/32", "documentation"},
		{"3fff::/20", "documentation"},
		{"5f00::/16", "segment routing"},
		{"fc00::/7", "unique-local"},
		{"fd00:ec2::254/128", "link-local (cloud metadata)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local"},
		{"ff00::/8", "multicast"},
	}
	out := make([]specialRange, len(table))
	for i, t := range table {
		out[i] = specialRange{netip.MustParsePrefix(t.cidr), t.class}
	}
	return out
}()

// Embedding prefixes whose IPv4 part decides too: NAT64 (RFC 6052) carries
// it in the last 32 bits, 6to4 (RFC 3056) in bits 16 to 48.
var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourPfx = netip.MustParsePrefix("2002::/16")
)

// AddrClass returns the kind of non-public address a is ("loopback",
// "private", "link-local (cloud metadata)", ...), or "" when a is a public
// unicast address the proxy may dial without AllowPrivate. An invalid
// address is "invalid".
func AddrClass(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid"
	}
	a = a.WithZone("").Unmap()
	for _, r := range specialRanges {
		if r.prefix.Contains(a) {
			return r.class
		}
	}
	if a.Is6() {
		b := a.As16()
		var v4 netip.Addr
		switch {
		case nat64Prefix.Contains(a):
			v4 = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		case sixToFourPfx.Contains(a):
			v4 = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		}
		if v4.IsValid() {
			if c := AddrClass(v4); c != "" {
				return c + " (embedded in " + a.String() + ")"
			}
		}
	}
	if !a.IsGlobalUnicast() {
		return "non-unicast"
	}
	return ""
}
