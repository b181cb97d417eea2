package guest

import (
	"encoding/json"
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
// seed's, the seed's values winning (mergeJSON).
//
// A HOME kept between starts holds whatever an earlier session left, so
// nothing in it is trusted: every path is opened under home as an os.Root,
// which no link leads out of, and a link, or anything else that is not of
// the kind the seed has, where the seed has a directory or a file is
// removed first. seed holds only directories and regular files; anything
// else is an error.
func SeedHome(seed, home string) error {
	if home == "" || !filepath.IsAbs(home) {
		return fmt.Errorf("seed HOME: HOME %q is not an absolute path", home)
	}
	root, err := os.OpenRoot(home)
	if err != nil {
		return fmt.Errorf("seed HOME: %w", err)
	}
	defer root.Close()
	return filepath.WalkDir(seed, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("seed HOME: %w", err)
		}
		rel, err := filepath.Rel(seed, p)
		if err != nil {
			return fmt.Errorf("seed HOME: %w", err)
		}
		if rel == "." {
			return nil
		}
		switch {
		case d.IsDir():
			// WalkDir comes to a directory before what is in it, so each
			// of a file's parents is a real directory by then.
			if fi, err := root.Lstat(rel); err == nil && fi.IsDir() {
				return nil
			} else if err == nil {
				if err := root.Remove(rel); err != nil {
					return fmt.Errorf("seed HOME: replace %s: %w", rel, err)
				}
			}
			if err := root.Mkdir(rel, 0o700); err != nil {
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
			if fi, err := root.Lstat(rel); err == nil && !fi.Mode().IsRegular() {
				if err := root.RemoveAll(rel); err != nil {
					return fmt.Errorf("seed HOME: replace %s: %w", rel, err)
				}
			} else if err == nil && strings.HasSuffix(rel, ".json") {
				if old, err := root.ReadFile(rel); err == nil {
					data = mergeJSON(old, data)
				}
			}
			mode := info.Mode().Perm() & 0o700
			if err := root.WriteFile(rel, data, mode); err != nil {
				return fmt.Errorf("seed HOME: %w", err)
			}
			return root.Chmod(rel, mode)
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
