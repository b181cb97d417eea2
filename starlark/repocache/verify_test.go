package repocache

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fetched makes a git repository with two files, fetches it into a cache
// and returns the cache root, URL and commit.
func fetched(t *testing.T) (string, string, string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: Fetch runs the real git")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for name, body := range map[string]string{"lib/a.star": "a = 1\n", "b.star": "b = 2\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	run("add", ".")
	run("commit", "-q", "-m", "x")
	root, url, commit := filepath.Join(dir, "cache"), "file://"+src, run("rev-parse", "HEAD")
	if ok, err := Fetch(context.Background(), root, url, commit); err != nil || !ok {
		t.Fatalf("Fetch = %v, %v", ok, err)
	}
	return root, url, commit
}

func TestVerify(t *testing.T) {
	root, url, commit := fetched(t)
	blobs, err := Verify(root, url, commit)
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 2 || blobs["lib/a.star"].ID == "" || blobs["b.star"].ID == "" {
		t.Fatalf("blobs = %v, want lib/a.star and b.star", blobs)
	}
	v := VerifiedFS{FS: os.DirFS(Dir(root, url, commit)), Blobs: blobs}
	if data, err := v.ReadFile("lib/a.star"); err != nil || string(data) != "a = 1\n" {
		t.Fatalf("ReadFile = %q, %v", data, err)
	}
	if ok, err := Fetch(context.Background(), root, url, commit); err != nil || ok {
		t.Fatalf("second Fetch = %v, %v; want a verified cache hit", ok, err)
	}

	// A changed file fails ReadFile, and Fetch says the entry was changed.
	f := filepath.Join(Dir(root, url, commit), "b.star")
	os.Chmod(f, 0o644)
	if err := os.WriteFile(f, []byte("b = 3\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ReadFile("b.star"); err == nil || !strings.Contains(err.Error(), "differs from the pinned commit") {
		t.Errorf("ReadFile of a changed file: %v", err)
	}
	if _, err := Fetch(context.Background(), root, url, commit); err == nil || !strings.Contains(err.Error(), "changed after it was fetched") {
		t.Errorf("Fetch of a changed entry: %v", err)
	}

	// An objects file for other content does not verify: its commit
	// object no longer hashes to the pinned id.
	obj := Dir(root, url, commit) + ".objects"
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(obj, 0o644)
	forged := bytes.Replace(data, []byte("\nx\n"), []byte("\ny\n"), 1)
	if bytes.Equal(forged, data) {
		t.Fatal("test did not change the commit message")
	}
	if err := os.WriteFile(obj, forged, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(root, url, commit); err == nil {
		t.Error("Verify accepted an objects file whose commit was changed")
	}
}
