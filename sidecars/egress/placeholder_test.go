package egress

import (
	"strings"
	"testing"
)

// TestPlaceholder keeps the real value's scheme prefix and length, marks
// the placeholder as bottle's, never repeats, and never holds the value.
func TestPlaceholder(t *testing.T) {
	for _, tc := range []struct{ real, prefix string }{
		{"sk-ant-api03-" + strings.Repeat("x", 95), "sk-ant-api03-"},
		{"ghp_" + strings.Repeat("y", 36), "ghp_"},
		{"plainvaluewithoutanyprefix-in-its-head" + strings.Repeat("z", 10), ""},
		{"short-key", "short-"},
	} {
		p, err := Placeholder(tc.real)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := Placeholder(tc.real)
		if !strings.HasPrefix(p, tc.prefix+PlaceholderMarker) || p == q || strings.Contains(p, tc.real) {
			t.Errorf("Placeholder(%q) = %q (again %q); want prefix %q, the marker, a new value each time", tc.real, p, q, tc.prefix)
		}
		want := max(len(tc.real), len(tc.prefix)+len(PlaceholderMarker)+minPlaceholderRandom)
		if len(p) != want {
			t.Errorf("Placeholder(%q) is %d long, want %d", tc.real, len(p), want)
		}
		if strings.Trim(p[len(tc.prefix)+len(PlaceholderMarker):], placeholderAlphabet) != "" {
			t.Errorf("Placeholder(%q) = %q has characters outside letters and digits", tc.real, p)
		}
	}
}
