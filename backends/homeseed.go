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

// WriteHomeSeed writes files into dir afresh, for the owner only, or,
// with shared, readable by everyone (directories 0755, files 0644) for an
// agent whose user is not the owner (docker(user = ...)); they hold no
// secret value (a key bound to hosts is its placeholder) and the state
// directory around dir is 0700. bottle guest gives them their own modes
// in HOME.
func WriteHomeSeed(dir string, files []agents.File, shared bool) error {
	dirMode, fileBits := os.FileMode(0o700), os.FileMode(0)
	if shared {
		dirMode, fileBits = 0o755, 0o044
	}
	if err := agents.CheckFiles(files); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("agent HOME files: %w", err)
	}
	if err := os.Mkdir(dir, dirMode); err != nil {
		return fmt.Errorf("agent HOME files: %w", err)
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
			return fmt.Errorf("agent HOME files: %w", err)
		}
		mode := f.Mode.Perm()&0o700 | 0o400 | fileBits
		if err := os.WriteFile(p, f.Data, mode); err != nil {
			return fmt.Errorf("agent HOME files: %w", err)
		}
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("agent HOME files: %w", err)
		}
	}
	return nil
}
