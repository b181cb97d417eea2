package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
