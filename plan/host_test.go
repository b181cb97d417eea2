package plan

import (
	"strings"
	"testing"
)

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"api.example.com":                    "api.example.com",
		"API.Example.COM.":                   "api.example.com",
		"*.example.com":                      "*.example.com",
		"*.Example.com.":                     "*.example.com",
		"bücher.example":                     "xn--bcher-kva.example",
		"a-b.c-d.example":                    "a-b.c-d.example",
		"x1.example.io":                      "x1.example.io",
		strings.Repeat("a", 63) + ".example": strings.Repeat("a", 63) + ".example",
	} {
		got, err := NormalizeHost(in)
		if err != nil || got != want {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestNormalizeHostRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"":                                     "empty host",
		"1.2.3.4":                              "IP literals are never allowed",
		"::1":                                  "IP literals are never allowed",
		"[2001:db8::1]":                        "IP literals are never allowed",
		"*":                                    `"*" alone`,
		"*.":                                   `"*" alone`,
		"com":                                  "bare top-level domain",
		"localhost":                            "bare top-level domain",
		"*.com":                                "every name under the top-level domain",
		"a.*.com":                              "whole first label",
		"*a.example.com":                       "whole first label",
		"a..example.com":                       "empty label",
		".example.com":                         "empty label",
		strings.Repeat("a", 64) + ".example":   "labels are at most 63",
		strings.Repeat("abcdefgh.", 29) + "io": "at most 253",
		"-a.example.com":                       "hyphen",
		"a_b.example.com":                      "labels hold letters, digits and hyphens",
		"a b.example.com":                      "labels hold letters, digits and hyphens",
		"example.123":                          "numeric label",
		"1.2.3":                                "numeric label",
		"\xff.example.com":                     "not valid UTF-8",
		"xn--.example":                         "hyphen",
		"a\u200d.example":                      "not a valid internationalised",
	} {
		got, err := NormalizeHost(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NormalizeHost(%q) = %q, %v; want an error containing %q", in, got, err, want)
		}
	}
}

func TestMatchHost(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "x.api.example.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "badexample.com", false},
		{"*.example.com", ".example.com", false},
	} {
		if got := MatchHost(tc.pattern, tc.name); got != tc.want {
			t.Errorf("MatchHost(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "512MiB": 512 << 20, "8GiB": 8 << 30, "8gib": 8 << 30, "2GB": 2e9, "1.5GiB": 3 << 29, "10 KiB": 10 << 10, "4096B": 4096,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "4G", "4 g", "-1GiB", "0", "0.1", "1e9", "1..2GiB", "99999999999TiB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
	if got := FormatSize(4 << 30); got != "4GiB" {
		t.Errorf("FormatSize(4GiB) = %q", got)
	}
}
