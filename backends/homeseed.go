package backends

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/bottle-dev/bottle/agents"
)

// HomeSeedDir is the directory in the state directory holding the files
// rendered for the agent's HOME, which the backend shows bottle guest
// read-only (bottle guest --home-seed).
const HomeSeedDir = "agent-home"

// WriteHomeSeed writes files into dir afresh: directories 0755 and files
// 0644, so that the agent's user can read them whatever its uid (they
// hold no secret value: a key the agent may see is its placeholder, and
// the state directory around dir is 0700); bottle guest gives them the
// files' own modes in HOME.
func WriteHomeSeed(dir string, files []agents.File) error {
	if err := agents.CheckFiles(files); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("agent HOME files: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("agent HOME files: %w", err)
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("agent HOME files: %w", err)
		}
		// The mode bottle guest gives it in HOME is the owner's part of
		// f.Mode; here everyone may read it.
		if err := os.WriteFile(p, f.Data, f.Mode.Perm()&0o700|0o044); err != nil {
			return fmt.Errorf("agent HOME files: %w", err)
		}
		if err := os.Chmod(p, f.Mode.Perm()&0o700|0o044); err != nil {
			return fmt.Errorf("agent HOME files: %w", err)
		}
	}
	return nil
}
