package agents_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/agents"
	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/sidecars/egress"
)

// A file path that leaves HOME is refused by CheckFiles, and WriteHomeSeed
// writes nothing outside its directory for it.
func TestReviewCheckFilesEscapes(t *testing.T) {
	for _, p := range []string{
		"", "..", "../x", "../../etc/passwd", "/etc/passwd", "a/../../x", "a/../x",
		"./x", "a//b", "a/", ".claude/../../x", "x/..",
	} {
		files := []agents.File{{Path: p, Mode: 0o600, Data: []byte("ESCAPED")}}
		if err := agents.CheckFiles(files); err == nil {
			t.Errorf("CheckFiles accepted %q", p)
		}
		root := t.TempDir()
		dir := filepath.Join(root, "state", backends.HomeSeedDir)
		os.MkdirAll(filepath.Dir(dir), 0o700)
		if err := backends.WriteHomeSeed(dir, files, false); err == nil {
			t.Errorf("WriteHomeSeed accepted %q", p)
		}
		filepath.WalkDir(root, func(q string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				t.Errorf("%q: WriteHomeSeed wrote %s", p, q)
			}
			return nil
		})
	}
	// Two files where one is the other's directory: an error, not a write
	// elsewhere.
	dir := filepath.Join(t.TempDir(), backends.HomeSeedDir)
	err := backends.WriteHomeSeed(dir, []agents.File{{Path: ".claude", Mode: 0o600}, {Path: ".claude/settings.json", Mode: 0o600}}, false)
	if err == nil {
		t.Error("a file and a file under it were both written")
	}
}

// The files rendered for a key bound to hosts hold its placeholder's end,
// never any part of the real key, whatever the key's shape: the approved
// suffix is the last 20 characters of what the agent's environment holds.
func TestReviewClaudeFilesNoRealKey(t *testing.T) {
	for _, real := range []string{
		"sk-ant-api03-" + strings.Repeat("R3alK3yPart", 8) + "AA",
		"sk-ant-short-9Kq2Lm8Zr3Wx",
		"R3alK3yNoScheme9Kq2Lm8Zr3WxQ7vB",
		"7c9e6679-7425-40de-944b-e07fc1f90ae7\n",
	} {
		ph, err := egress.Placeholder(strings.TrimSpace(real))
		if err != nil {
			t.Fatal(err)
		}
		files, err := agents.Claude.Files(agents.Setup{Workdir: "/workspace", Env: map[string]string{"ANTHROPIC_API_KEY": ph}})
		if err != nil {
			t.Fatal(err)
		}
		trimmed := strings.TrimSpace(real)
		tail := trimmed[max(0, len(trimmed)-20):]
		for _, f := range files {
			if strings.Contains(string(f.Data), tail) {
				t.Errorf("%s holds the real key's end %q", f.Path, tail)
			}
			if !strings.Contains(string(f.Data), ph[len(ph)-20:]) && f.Path == ".claude.json" {
				t.Errorf("%s lacks the placeholder's end", f.Path)
			}
		}
	}
}

// Codex's config names the variable the key is in, never a value.
func TestReviewCodexFilesNoKey(t *testing.T) {
	files, err := agents.Codex.Files(agents.Setup{Env: map[string]string{"OPENAI_API_KEY": "sk-proj-REALREALREALREALREAL0123"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.Contains(string(f.Data), "REALREAL") {
			t.Errorf("%s holds the key:\n%s", f.Path, f.Data)
		}
	}
}
