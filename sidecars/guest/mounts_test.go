package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCheckMounts: the directory bottle checked passes; another one at
// the target (a swapped source) is refused, and so is a bad spec.
func TestCheckMounts(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	id := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	if err := CheckMounts([]string{dir + "=" + id}); err != nil {
		t.Errorf("the same directory: %v", err)
	}
	if err := CheckMounts([]string{other + "=" + id}); err == nil || !strings.Contains(err.Error(), "is not the directory bottle checked") {
		t.Errorf("another directory: %v", err)
	}
	if err := CheckMounts([]string{filepath.Join(dir, "missing") + "=" + id}); err == nil {
		t.Error("a missing target passed")
	}
	if err := CheckMounts([]string{"nonsense"}); err == nil {
		t.Error("a bad spec passed")
	}
}
