package backends

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestClaimLocksAndRefusesATakenSlug(t *testing.T) {
	home := filepath.Join(t.TempDir(), "bottle")
	dir := filepath.Join(home, "p-123456")
	st, err := Claim(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory mode: %v, %v", fi.Mode(), err)
	}
	if _, err := Claim(dir); !errors.Is(err, ErrTaken) {
		t.Fatalf("second Claim = %v, want ErrTaken", err)
	}
	if !Locked(dir) {
		t.Fatalf("a claimed directory is not locked")
	}
	if err := st.WriteInfo(Info{Slug: "p-123456", Backend: "docker", PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, InfoFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("info file mode %v", fi.Mode())
	}
	entries, err := Scan(home)
	if err != nil || len(entries) != 1 || !entries[0].Running || entries[0].Info.Backend != "docker" {
		t.Fatalf("Scan = %+v, %v", entries, err)
	}
	if err := st.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Release left the directory: %v", err)
	}
	if err := st.Release(); err != nil {
		t.Errorf("a second Release = %v, want nil", err)
	}
}

func TestScanSeesAbandonedDirectories(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "gone-abcdef")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, InfoFile), []byte(`{"slug":"gone-abcdef","backend":"docker","pid":1}`), 0o600)
	os.WriteFile(filepath.Join(dir, LockFile), nil, 0o600)
	entries, err := Scan(home)
	if err != nil || len(entries) != 1 || entries[0].Running {
		t.Fatalf("an unlocked directory with an info file counts as running: %+v, %v", entries, err)
	}
	if entries, _ := Scan(filepath.Join(home, "missing")); entries != nil {
		t.Errorf("a missing home lists bottles")
	}
}
