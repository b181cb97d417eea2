package guest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// reviewSeed makes a seed like the Claude provider's: .claude.json and
// .claude/settings.json.
func reviewSeed(t *testing.T) string {
	t.Helper()
	seed := t.TempDir()
	if err := os.MkdirAll(filepath.Join(seed, ".claude"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seed, ".claude.json"), []byte(`{"hasCompletedOnboarding":true,"customApiKeyResponses":{"approved":["SEEDSUFFIX"]},"mcpServers":{"supervise":{"type":"http","url":"http://127.0.0.1:8765/mcp"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seed, ".claude", "settings.json"), []byte(`{"env":{"DISABLE_AUTOUPDATER":"1"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return seed
}

// seedWithin runs SeedHome and fails the test when it does not return in
// time (a FIFO opened for writing blocks until a reader comes).
func seedWithin(t *testing.T, seed, home string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- SeedHome(seed, home) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("SeedHome blocked on what HOME holds")
		return nil
	}
}

// A kept HOME where the previous run made .claude a link to a directory
// elsewhere in the sandbox: SeedHome must not write the seed's files
// through it (its doc: "nothing is followed ... through a link in home"),
// nor read and merge what is there.
func TestReviewSeedHomeDirLinkNotFollowed(t *testing.T) {
	seed, home := reviewSeed(t), t.TempDir()
	outside := t.TempDir()
	victim := filepath.Join(outside, "settings.json")
	if err := os.WriteFile(victim, []byte(`{"victim":"keep"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(home, ".claude")); err != nil {
		t.Fatal(err)
	}
	err := seedWithin(t, seed, home)
	if b, _ := os.ReadFile(victim); string(b) != `{"victim":"keep"}` {
		t.Errorf("SeedHome wrote through the link .claude -> %s (err %v): the file outside HOME now holds\n%s", outside, err, b)
	}
	if err == nil {
		fi, lerr := os.Lstat(filepath.Join(home, ".claude"))
		if lerr != nil || !fi.IsDir() {
			t.Errorf("SeedHome succeeded but .claude is not a directory of HOME's own: %v %v", fi.Mode(), lerr)
		}
	}
}

// A link at a JSON file's place is removed, not merged from nor written
// through, also when it points at a JSON object.
func TestReviewSeedHomeJSONLinkNotMerged(t *testing.T) {
	seed, home := reviewSeed(t), t.TempDir()
	outside := filepath.Join(t.TempDir(), "host.json")
	if err := os.WriteFile(outside, []byte(`{"hostSecret":"do-not-copy"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(home, ".claude.json")); err != nil {
		t.Fatal(err)
	}
	if err := seedWithin(t, seed, home); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != `{"hostSecret":"do-not-copy"}` {
		t.Errorf("written through the link: %s", b)
	}
	b, _ := os.ReadFile(filepath.Join(home, ".claude.json"))
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got["hostSecret"]; ok {
		t.Errorf("the link's target was merged into HOME: %s", b)
	}
}

// FIFOs and sockets planted at the seed's places do not block SeedHome
// and are replaced by the seed's files.
func TestReviewSeedHomeFIFO(t *testing.T) {
	seed, home := reviewSeed(t), t.TempDir()
	if err := os.Mkdir(filepath.Join(home, ".claude"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{".claude.json", ".claude/settings.json"} {
		if err := syscall.Mkfifo(filepath.Join(home, rel), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := seedWithin(t, seed, home); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{".claude.json", ".claude/settings.json"} {
		fi, err := os.Lstat(filepath.Join(home, rel))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: %v %v, want a regular file", rel, fi, err)
		}
	}
}

// .claude made a regular file (or a FIFO) where the seed has a directory:
// an error or a directory, never a hang or a write elsewhere.
func TestReviewSeedHomeDirIsNotDir(t *testing.T) {
	for _, kind := range []string{"file", "fifo"} {
		seed, home := reviewSeed(t), t.TempDir()
		p := filepath.Join(home, ".claude")
		if kind == "file" {
			os.WriteFile(p, []byte("x"), 0o600)
		} else if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		err := seedWithin(t, seed, home)
		if err == nil {
			if fi, lerr := os.Lstat(p); lerr != nil || !fi.IsDir() {
				t.Errorf("%s: SeedHome succeeded, .claude is %v", kind, fi.Mode())
			}
		}
	}
}

// What the agent kept cannot override bottle's keys: the seed's values
// win in the merge, arrays included.
func TestReviewSeedHomeMergeSeedWins(t *testing.T) {
	seed, home := reviewSeed(t), t.TempDir()
	os.Mkdir(filepath.Join(home, ".claude"), 0o700)
	os.WriteFile(filepath.Join(home, ".claude.json"), []byte(`{"hasCompletedOnboarding":false,"customApiKeyResponses":{"approved":["ATTACKER"],"rejected":["x"]},"mcpServers":{"supervise":{"type":"stdio","command":"evil","url":"http://10.0.0.1/"}}}`), 0o600)
	os.WriteFile(filepath.Join(home, ".claude", "settings.json"), []byte(`{"env":{"DISABLE_AUTOUPDATER":"0"}}`), 0o600)
	if err := seedWithin(t, seed, home); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(home, ".claude.json"))
	var got struct {
		Onboarding bool `json:"hasCompletedOnboarding"`
		Keys       struct {
			Approved []string `json:"approved"`
		} `json:"customApiKeyResponses"`
		MCP map[string]map[string]any `json:"mcpServers"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Onboarding || len(got.Keys.Approved) != 1 || got.Keys.Approved[0] != "SEEDSUFFIX" ||
		got.MCP["supervise"]["url"] != "http://127.0.0.1:8765/mcp" || got.MCP["supervise"]["type"] != "http" {
		t.Errorf("the agent's values beat the seed's:\n%s", b)
	}
	s, _ := os.ReadFile(filepath.Join(home, ".claude", "settings.json"))
	var set struct{ Env map[string]string }
	json.Unmarshal(s, &set)
	if set.Env["DISABLE_AUTOUPDATER"] != "1" {
		t.Errorf("settings: %s", s)
	}
}

// A seed holding a FIFO or a link to a directory is refused, and nothing
// is written through it.
func TestReviewSeedHomeSeedSpecialFiles(t *testing.T) {
	seed := reviewSeed(t)
	if err := syscall.Mkfifo(filepath.Join(seed, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := seedWithin(t, seed, t.TempDir()); err == nil {
		t.Error("a FIFO in the seed was accepted")
	}
	seed = reviewSeed(t)
	if err := os.Symlink(t.TempDir(), filepath.Join(seed, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := seedWithin(t, seed, t.TempDir()); err == nil {
		t.Error("a link to a directory in the seed was accepted")
	}
}
