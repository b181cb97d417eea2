package guest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SeedHome copies the files bottle rendered for the agent (agents.File)
// from seed, a read-only directory in the sandbox, into home, the agent's
// HOME, as the agent's own user: directories 0700, files with their
// owner's permission bits only. A file already in home is replaced. seed
// holds only directories and regular files; anything else is an error,
// and nothing is followed out of it.
func SeedHome(seed, home string) error {
	if home == "" || !filepath.IsAbs(home) {
		return fmt.Errorf("seed HOME: HOME %q is not an absolute path", home)
	}
	return filepath.WalkDir(seed, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("seed HOME: %w", err)
		}
		rel, err := filepath.Rel(seed, p)
		if err != nil {
			return fmt.Errorf("seed HOME: %w", err)
		}
		dst := filepath.Join(home, rel)
		switch {
		case d.IsDir():
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return fmt.Errorf("seed HOME: %w", err)
			}
			return nil
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("seed HOME: %w", err)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("seed HOME: %w", err)
			}
			// Not through a link the agent's HOME may hold already.
			if fi, err := os.Lstat(dst); err == nil && !fi.Mode().IsRegular() {
				if err := os.Remove(dst); err != nil {
					return fmt.Errorf("seed HOME: %w", err)
				}
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("seed HOME: %w", err)
			}
			if err := os.WriteFile(dst, data, info.Mode().Perm()&0o700); err != nil {
				return fmt.Errorf("seed HOME: %w", err)
			}
			return os.Chmod(dst, info.Mode().Perm()&0o700)
		default:
			return fmt.Errorf("seed HOME: %s is neither a file nor a directory", p)
		}
	})
}
