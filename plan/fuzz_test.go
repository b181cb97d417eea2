package plan

import (
	"strings"
	"testing"

	"github.com/bmatcuk/doublestar/v4"
)

func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"api.example.com", "*.example.com", "1.2.3.4", "bücher.example", "xn--bcher-kva.example", "a..b", "[::1]", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizeHost(in)
		if err != nil {
			return
		}
		// An accepted host is canonical: normalising it again is a no-op,
		// and it is never an IP literal or a bare wildcard.
		again, err := NormalizeHost(got)
		if err != nil || again != got {
			t.Fatalf("NormalizeHost(%q) = %q, but NormalizeHost(%q) = %q, %v", in, got, got, again, err)
		}
		if got == "*" || strings.Count(got, ".") < 1 {
			t.Fatalf("NormalizeHost(%q) accepted %q", in, got)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512MiB", "8GiB", "1.5GB", "1024", "4G", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := ParseSize(in)
		if err == nil && n < 1 {
			t.Fatalf("ParseSize(%q) = %d without an error", in, n)
		}
	})
}

func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"/repos/acme/**", "/a/{b,c}/*.json", "/v?/[a-z]", "/a\\*", "/a[", "/**/x", "/a/**b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if CheckPath(in) != nil {
			return
		}
		// An accepted path is one the egress sidecar can match without
		// an error, and holds nothing that would make the digest's
		// encoding ambiguous.
		if _, err := doublestar.Match(in, "/some/request/path"); err != nil {
			t.Fatalf("CheckPath(%q) accepted a pattern Match refuses: %v", in, err)
		}
		if !strings.HasPrefix(in, "/") || strings.ContainsRune(in, 0) {
			t.Fatalf("CheckPath(%q) accepted it", in)
		}
	})
}
