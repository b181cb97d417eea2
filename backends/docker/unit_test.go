package docker

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPickSubnets(t *testing.T) {
	a, err := pickSubnets("claude-abc123", nil, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := pickSubnets("claude-abc123", nil, 2, 0)
	if a[0] != again[0] || a[1] != again[1] {
		t.Errorf("subnets are not derived deterministically from the slug: %v, %v", a, again)
	}
	if a[0] == a[1] || a[0].Overlaps(a[1]) {
		t.Errorf("the two networks share a subnet: %v", a)
	}
	for _, p := range a {
		if !subnetPool.Contains(p.Addr()) || p.Bits() != subnetBits || p.Overlaps(dockerBridge) {
			t.Errorf("subnet %v is outside the pool or overlaps docker0", p)
		}
	}
	// Subnets in use are skipped, and a retry moves on.
	used := []netip.Prefix{a[0], netip.MustParsePrefix("10.213.0.0/17")}
	b, err := pickSubnets("claude-abc123", used, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range b {
		if overlapsAny(p, used) {
			t.Errorf("picked %v, which is in use", p)
		}
	}
	c, _ := pickSubnets("claude-abc123", used, 2, 2)
	if c[0] == b[0] {
		t.Errorf("a retry picked the same subnet %v", c[0])
	}
	// Another slug starts elsewhere.
	other, _ := pickSubnets("claude-def456", nil, 2, 0)
	if other[0] == a[0] {
		t.Errorf("two slugs start at the same subnet %v", a[0])
	}
	// A full pool is an error that says what to do.
	if _, err := pickSubnets("x", []netip.Prefix{subnetPool}, 1, 0); err == nil || !strings.Contains(err.Error(), "bottle cleanup") {
		t.Errorf("full pool: %v", err)
	}
}

func TestListedLabel(t *testing.T) {
	l := listed{Labels: "dev.bottle.role=agent,dev.bottle.slug=claude-abc123,dev.bottle.digest=sha256:00"}
	if got := l.label(LabelSlug); got != "claude-abc123" {
		t.Errorf("slug label = %q", got)
	}
	if got := l.label("missing"); got != "" {
		t.Errorf("missing label = %q", got)
	}
}

func TestLocalRemotePath(t *testing.T) {
	for in, want := range map[string]string{
		"file:///srv/a.git":           "/srv/a.git",
		"/srv/b.git/":                 "/srv/b.git",
		"git@github.com:acme/app.git": "",
		"https://example.com/a.git":   "",
	} {
		if got := localRemotePath(in); got != want {
			t.Errorf("localRemotePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSidecarBinaryRefusesWhatTheBundleCannotRun(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	if _, err := sidecarBinary(notELF, "amd64"); err == nil || !strings.Contains(err.Error(), "BOTTLE_SIDECAR_BINARY") {
		t.Errorf("a non-ELF file: %v", err)
	}
	// The test binary itself is linked dynamically when cgo is on, and is
	// never built for another architecture.
	exe, _ := os.Executable()
	if _, err := sidecarBinary(exe, "riscv64"); err == nil {
		t.Errorf("a binary of another architecture was accepted")
	}
}
