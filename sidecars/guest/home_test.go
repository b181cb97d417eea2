package guest

import (
	"encoding/json"
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

// A kept HOME keeps what the agent wrote beside bottle's keys.
func TestSeedHomeMergesJSON(t *testing.T) {
	seed, home := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(seed, ".claude.json"), []byte(`{"hasCompletedOnboarding":true,"projects":{"/workspace":{"hasTrustDialogAccepted":true}},"customApiKeyResponses":{"approved":["new"]}}`), 0o600)
	os.WriteFile(filepath.Join(seed, "config.toml"), []byte("a = 1\n"), 0o600)
	os.WriteFile(filepath.Join(home, ".claude.json"), []byte(`{"numStartups":7,"projects":{"/workspace":{"history":["x"],"hasTrustDialogAccepted":false},"/other":{}},"customApiKeyResponses":{"approved":["old"]}}`), 0o600)
	os.WriteFile(filepath.Join(home, "config.toml"), []byte("b = 2\n"), 0o600)
	if err := SeedHome(seed, home); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(home, ".claude.json"))
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	ws := got["projects"].(map[string]any)["/workspace"].(map[string]any)
	approved := got["customApiKeyResponses"].(map[string]any)["approved"].([]any)
	if got["numStartups"] != float64(7) || got["hasCompletedOnboarding"] != true || ws["hasTrustDialogAccepted"] != true ||
		ws["history"] == nil || got["projects"].(map[string]any)["/other"] == nil || len(approved) != 1 || approved[0] != "new" {
		t.Errorf("merged: %s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(home, "config.toml")); string(b) != "a = 1\n" {
		t.Errorf("a file that is not JSON is replaced: %q", b)
	}
}
