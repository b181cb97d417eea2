package plan

import (
	"strings"
	"testing"
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
