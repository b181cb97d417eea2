package guest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSeedHome(t *testing.T) {
	seed, home := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(seed, ".claude"), 0o755)
	os.WriteFile(filepath.Join(seed, ".claude.json"), []byte(`{"a":1}`), 0o644)
	os.WriteFile(filepath.Join(seed, ".claude", "settings.json"), []byte(`{}`), 0o644)
	// What HOME holds already is replaced, a link by a file.
	os.WriteFile(filepath.Join(home, ".claude.json"), []byte("old"), 0o600)
	os.MkdirAll(filepath.Join(home, ".claude"), 0o700)
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("keep"), 0o600)
	os.Symlink(outside, filepath.Join(home, ".claude", "settings.json"))
	if err := SeedHome(seed, home); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{".claude.json": `{"a":1}`, ".claude/settings.json": `{}`} {
		p := filepath.Join(home, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != want || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %q, mode %v; want %q, a file, 0600", rel, b, fi.Mode(), want)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Errorf("the seed was written through a link in HOME: %q", b)
	}
	// A seed with anything but files and directories is refused.
	os.Symlink("/etc/passwd", filepath.Join(seed, "link"))
	if err := SeedHome(seed, t.TempDir()); err == nil {
		t.Error("a link in the seed was accepted")
	}
	if err := SeedHome(seed, "relative"); err == nil {
		t.Error("a relative HOME was accepted")
	}
}
