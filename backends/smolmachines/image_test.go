package smolmachines

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backends"
)

// engineRunner answers `image inspect` with id and makes `save` write size
// bytes, recording the commands.
type engineRunner struct {
	id      string
	inspect error
	size    int
	calls   []string
}

func (r *engineRunner) Output(_ context.Context, c backends.Cmd) ([]byte, error) {
	r.calls = append(r.calls, strings.Join(c.Args[:2], " "))
	switch {
	case c.Args[0] == "image" && c.Args[1] == "inspect":
		if r.inspect != nil {
			return nil, r.inspect
		}
		return []byte(r.id + "\n"), nil
	case c.Args[0] == "save" && c.Args[1] == "-o":
		if c.Args[3] != r.id {
			return nil, errors.New("saved by " + c.Args[3] + ", not by ID")
		}
		return nil, os.WriteFile(c.Args[2], make([]byte, r.size), 0o644)
	}
	return nil, errors.New("unexpected command " + strings.Join(c.Args, " "))
}

func (r *engineRunner) Attach(context.Context, backends.Cmd, backends.Stdio) (int, error) {
	return -1, errors.New("not attached")
}

// imageEnv points bottle at a cache in a temporary directory and at an
// engine CLI that exists (the runner answers for it).
func imageEnv(t *testing.T) string {
	t.Setenv("BOTTLE_DOCKER", "true")
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("SMOLVM_MAX_IMAGE_BYTES", "")
	return filepath.Join(cache, "bottle", "images")
}

const (
	idA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// TestImageArchiveCache: the archive is saved once per image ID, by ID, and
// reused while the ID stays; a rebuilt image (new ID) is saved again.
func TestImageArchiveCache(t *testing.T) {
	dir := imageEnv(t)
	r := &engineRunner{id: idA, size: 100}
	s := &Backend{Runner: r}
	ctx := context.Background()
	a, err := s.imageArchive(ctx, "agent:1", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "sha256-"+idA[7:]+".tar"); a != want {
		t.Errorf("archive %s, want %s", a, want)
	}
	if _, err := s.imageArchive(ctx, "agent:1", io.Discard); err != nil {
		t.Fatal(err)
	}
	if want := []string{"image inspect", "save -o", "image inspect"}; !slices.Equal(r.calls, want) {
		t.Errorf("commands %q, want %q (the second launch uses the cache)", r.calls, want)
	}
	r.id, r.calls = idB, nil
	b, err := s.imageArchive(ctx, "agent:1", io.Discard)
	if err != nil || b == a {
		t.Fatalf("after a rebuild: %s, %v; want a new archive", b, err)
	}
	if want := []string{"image inspect", "save -o"}; !slices.Equal(r.calls, want) {
		t.Errorf("commands %q, want %q", r.calls, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("cache holds %d entries, want the two archives and no temporary file", len(entries))
	}
}

// TestImageArchiveSizeLimit: an archive over smolvm's limit
// (SMOLVM_MAX_IMAGE_BYTES, 8 GiB by default) is refused and not cached.
func TestImageArchiveSizeLimit(t *testing.T) {
	if maxImageBytes() != 8<<30 {
		t.Fatalf("default limit %d, want smolvm's 8 GiB", maxImageBytes())
	}
	dir := imageEnv(t)
	t.Setenv("SMOLVM_MAX_IMAGE_BYTES", "10")
	s := &Backend{Runner: &engineRunner{id: idA, size: 11}}
	_, err := s.imageArchive(context.Background(), "agent:1", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "over smolvm's limit of 10 bytes") || !strings.Contains(err.Error(), "SMOLVM_MAX_IMAGE_BYTES") {
		t.Errorf("imageArchive = %v, want the limit and how to raise it", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused archive stayed in the cache: %v", entries)
	}
	t.Setenv("SMOLVM_MAX_IMAGE_BYTES", "11")
	if _, err := s.imageArchive(context.Background(), "agent:1", io.Discard); err != nil {
		t.Errorf("at the limit: %v", err)
	}
}

// TestImageMissing: preflight's image check names the fix for an image the
// engine does not have, and for a host with neither docker nor podman.
func TestImageMissing(t *testing.T) {
	imageEnv(t)
	s := &Backend{Runner: &engineRunner{inspect: errors.New("true image inspect: Error response from daemon: No such image: agent:1")}}
	e, err := findImageEngine()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.imageID(context.Background(), e, "agent:1"); err == nil || !strings.Contains(err.Error(), "run `true pull agent:1` (or build it)") {
		t.Errorf("imageID = %v, want the pull hint", err)
	}
	s.Runner = &engineRunner{id: "not-an-id"}
	if _, err := s.imageID(context.Background(), e, "agent:1"); err == nil || !strings.Contains(err.Error(), "not an image ID") {
		t.Errorf("imageID = %v, want a refusal of the ID", err)
	}
	t.Setenv("BOTTLE_DOCKER", "")
	t.Setenv("PATH", t.TempDir())
	if _, err := findImageEngine(); err == nil || !strings.Contains(err.Error(), "neither docker nor podman") {
		t.Errorf("findImageEngine = %v, want what to install", err)
	}
	t.Setenv("BOTTLE_DOCKER", "no-such-engine")
	if _, err := findImageEngine(); err == nil || !strings.Contains(err.Error(), "BOTTLE_DOCKER names no-such-engine") {
		t.Errorf("findImageEngine = %v, want BOTTLE_DOCKER named", err)
	}
}

// TestImageArchiveRealDocker saves a real image with the real docker CLI and
// daemon and checks it is a docker save archive smolvm can take: a tar whose
// manifest.json names a config and layers it holds.
func TestImageArchiveRealDocker(t *testing.T) {
	img := os.Getenv("BOTTLE_TEST_DEBIAN_IMAGE")
	if err := exec.Command("docker", "info").Run(); err != nil || img == "" {
		if os.Getenv("BOTTLE_CI") != "" {
			t.Fatalf("CI must run this: docker info: %v; BOTTLE_TEST_DEBIAN_IMAGE=%q", err, img)
		}
		t.Skip("skipping: needs a Docker daemon and BOTTLE_TEST_DEBIAN_IMAGE (scripts/debian-base-image)")
	}
	t.Setenv("BOTTLE_DOCKER", "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	s := &Backend{}
	a, err := s.imageArchive(context.Background(), img, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	var manifest []struct {
		Config string
		Layers []string
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not a tar: %v", a, err)
		}
		names[h.Name] = true
		if h.Name == "manifest.json" {
			if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
				t.Fatalf("manifest.json: %v", err)
			}
		}
	}
	if len(manifest) != 1 || !names[manifest[0].Config] || len(manifest[0].Layers) == 0 {
		t.Fatalf("manifest %+v does not describe one image in the archive", manifest)
	}
	for _, l := range manifest[0].Layers {
		if !names[l] {
			t.Errorf("layer %s is not in the archive", l)
		}
	}
	st1, _ := os.Stat(a)
	if b, err := s.imageArchive(context.Background(), img, io.Discard); err != nil || b != a {
		t.Fatalf("second call: %s, %v", b, err)
	}
	if st2, _ := os.Stat(a); !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("the archive was saved again")
	}
}

// BenchmarkImageArchive measures what delivering the image costs a launch
// with the real docker: the cached path (an image inspect and a stat)
// beside a cold save of the same image, and the bare inspect as the
// baseline every launch pays anyway in preflight.
func BenchmarkImageArchive(b *testing.B) {
	img := os.Getenv("BOTTLE_TEST_DEBIAN_IMAGE")
	if err := exec.Command("docker", "info").Run(); err != nil || img == "" {
		b.Skip("skipping: needs a Docker daemon and BOTTLE_TEST_DEBIAN_IMAGE")
	}
	b.Setenv("BOTTLE_DOCKER", "")
	s := &Backend{}
	ctx := context.Background()
	e, err := findImageEngine()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("inspect", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.imageID(ctx, e, img); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.Setenv("XDG_CACHE_HOME", b.TempDir())
		if _, err := s.imageArchive(ctx, img, io.Discard); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.imageArchive(ctx, img, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("save", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			b.Setenv("XDG_CACHE_HOME", b.TempDir())
			b.StartTimer()
			if _, err := s.imageArchive(ctx, img, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestImageStaleSaves: a save's temporary file left by a bottle that was
// forced to exit (a second Ctrl-C) is removed by the next save once it has
// not been written for an hour; a recent one, maybe another bottle's save
// in progress, is left.
func TestImageStaleSaves(t *testing.T) {
	dir := imageEnv(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old, recent := filepath.Join(dir, ".save-1.tar"), filepath.Join(dir, ".save-2.tar")
	for _, f := range []string{old, recent} {
		if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	s := &Backend{Runner: &engineRunner{id: idA, size: 10}}
	if _, err := s.imageArchive(context.Background(), "agent:1", io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the stale save is still there: %v", err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("a recent save was removed: %v", err)
	}
}
