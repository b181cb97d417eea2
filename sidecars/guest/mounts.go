package guest

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// CheckMounts checks specs written TARGET=DEV:INO: each TARGET must be the
// file the host checked, device and inode as stat(2) gives them. bottle
// checks a mount's source for symbolic links before it starts the
// sandbox; this closes the window between that check and the mount, in
// which another bottle's agent on the same workspace could swap the
// source. A mismatch is an error, and nothing runs.
func CheckMounts(specs []string) error {
	for _, spec := range specs {
		target, want, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("expect-mount %q: want TARGET=DEV:INO", spec)
		}
		fi, err := os.Stat(target)
		if err != nil {
			return fmt.Errorf("mount %s: %w", target, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("mount %s: no device and inode to compare", target)
		}
		if got := fmt.Sprintf("%d:%d", st.Dev, st.Ino); got != want {
			return fmt.Errorf("mount %s is not the directory bottle checked (%s, want %s): its source was replaced while the bottle started; nothing was run", target, got, want)
		}
	}
	return nil
}
