package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SeedHome copies the files bottle rendered for the agent (agents.File)
// from seed, a read-only directory in the sandbox, into home, the agent's
// HOME, as the agent's own user: directories 0700, files with their
// owner's permission bits only. A file already in home is replaced, except
// that a JSON object already there (a HOME kept between starts, where the
// agent keeps its own state beside bottle's keys) is merged with the
// seed's, the seed's values winning (mergeJSON). seed holds only
// directories and regular files; anything else is an error, and nothing is
// followed out of it or through a link in home.
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
			} else if err == nil && strings.HasSuffix(dst, ".json") {
				if old, err := os.ReadFile(dst); err == nil {
					data = mergeJSON(old, data)
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

// mergeJSON returns seed merged into old when both are JSON objects:
// objects are merged key by key, and any other value of seed replaces
// old's. Otherwise it returns seed.
func mergeJSON(old, seed []byte) []byte {
	var o, n map[string]any
	if json.Unmarshal(old, &o) != nil || json.Unmarshal(seed, &n) != nil || o == nil || n == nil {
		return seed
	}
	merged, err := json.MarshalIndent(mergeObjects(o, n), "", "  ")
	if err != nil {
		return seed
	}
	return append(merged, '\n')
}

func mergeObjects(old, seed map[string]any) map[string]any {
	for k, v := range seed {
		if so, ok := v.(map[string]any); ok {
			if oo, ok := old[k].(map[string]any); ok {
				old[k] = mergeObjects(oo, so)
				continue
			}
		}
		old[k] = v
	}
	return old
}
