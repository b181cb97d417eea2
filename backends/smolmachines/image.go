package smolmachines

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bottle-dev/bottle/backends"
)

// How the image reaches the microVM.
//
// A bottle's machine has no network device, and smolvm pulls a registry
// image inside the guest, so it refuses a registry image on a machine
// without a network at `machine create` (src/config.rs:828-872@v1.8.1,
// validate_image_fetchable). A local archive needs no network: `machine
// create --image PATH` takes a `docker save`-format tar
// (src/data/image_source.rs:55-83@v1.8.1 classifies an absolute path as a
// local archive), which smolvm stages on the host and flattens into the
// guest's root file system. The Smolfile's `image` is always read as a
// registry reference, so bottle writes none and passes the archive on the
// command line instead (the CLI's --image wins over the Smolfile's,
// src/cli/smolfile.rs:137@v1.8.1).
//
// bottle makes the archive with the container engine's own `save`: docker
// (or $BOTTLE_DOCKER, as the docker backend uses), else podman. That
// reuses the images the user already pulled or built, the engine's
// registry credentials and its platform choice; a registry client in
// bottle (go-containerregistry) would need none of that but would pull
// again, outside the user's engine, what they usually built locally. The
// archive is cached by the image's ID (the sha256 of its config, which
// changes whenever the content does) in $XDG_CACHE_HOME/bottle/images, so
// a rebuilt image is saved again and an unchanged one is not.

// defaultMaxImageBytes is smolvm's largest accepted archive, 8 GiB
// (src/data/image_source.rs:149-156@v1.8.1), unless SMOLVM_MAX_IMAGE_BYTES
// says otherwise; smolvm reads that variable from the environment bottle
// runs it with.
const defaultMaxImageBytes = 8 << 30

// maxImageBytes is the archive size smolvm accepts: SMOLVM_MAX_IMAGE_BYTES
// when it is a positive whole number of bytes, else 8 GiB, as smolvm
// reads it (src/data/image_source.rs:149-156@v1.8.1).
func maxImageBytes() int64 {
	if n, err := strconv.ParseInt(strings.TrimSpace(os.Getenv("SMOLVM_MAX_IMAGE_BYTES")), 10, 64); err == nil && n > 0 {
		return n
	}
	return defaultMaxImageBytes
}

// imageEngine is the container engine bottle saves images with.
type imageEngine struct {
	// path is the CLI's path; name is what the user knows it as.
	path, name string
}

// findImageEngine returns $BOTTLE_DOCKER, else docker, else podman from
// PATH, or an error that says what to install.
func findImageEngine() (imageEngine, error) {
	if name := os.Getenv("BOTTLE_DOCKER"); name != "" {
		p, err := exec.LookPath(name)
		if err != nil {
			return imageEngine{}, fmt.Errorf("BOTTLE_DOCKER names %s, which was not found; smolmachines hands the image to smolvm as a `docker save` archive, so bottle needs docker or podman to make it", name)
		}
		return imageEngine{path: p, name: name}, nil
	}
	for _, name := range []string{"docker", "podman"} {
		if p, err := exec.LookPath(name); err == nil {
			return imageEngine{path: p, name: name}, nil
		}
	}
	return imageEngine{}, errors.New("neither docker nor podman was found: the microVM has no network to pull its image, so bottle hands it to smolvm as a `docker save` archive and needs docker or podman to make it; install one (apt-get install docker.io, or podman) or set BOTTLE_DOCKER to its path")
}

// imageID asks the engine for the local image's ID, "sha256:" and 64 hex
// digits (podman prints the digits alone). An image the engine does not
// have is an error that says how to get it.
func (s *Backend) imageID(ctx context.Context, e imageEngine, image string) (string, error) {
	out, err := s.runner().Output(ctx, backends.Cmd{Path: e.path, Args: []string{"image", "inspect", "--format", "{{.Id}}", image}})
	if err != nil {
		msg := strings.ToLower(err.Error())
		if strings.Contains(msg, "no such image") || strings.Contains(msg, "image not known") || strings.Contains(msg, "no such object") {
			return "", fmt.Errorf("the image %s is not in %s's image store; the microVM has no network to pull it, so bottle saves it from there: run `%s pull %s` (or build it) first", image, e.name, e.name, image)
		}
		return "", fmt.Errorf("ask %s for the image %s: %v", e.name, image, firstLine(err.Error()))
	}
	id := strings.TrimPrefix(strings.TrimSpace(string(out)), "sha256:")
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%s image inspect %s printed %q, not an image ID", e.name, image, firstLine(string(out)))
	}
	return "sha256:" + id, nil
}

// imageCacheDir is $XDG_CACHE_HOME/bottle/images, else the user's cache
// directory's.
func imageCacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "bottle", "images"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the cache directory for image archives: %w (set XDG_CACHE_HOME or HOME)", err)
	}
	return filepath.Join(d, "bottle", "images"), nil
}

// archivePath is where the archive of the image with this ID is cached.
func archivePath(dir, id string) string {
	return filepath.Join(dir, strings.Replace(id, ":", "-", 1)+".tar")
}

// imageArchive returns the path of a `docker save` archive of image, from
// the cache when the engine's image still has the same ID, else saved
// now (by ID, so a tag moved meanwhile cannot change what is saved). An
// archive over smolvm's size limit is an error naming the limit.
func (s *Backend) imageArchive(ctx context.Context, image string, progress io.Writer) (string, error) {
	e, err := findImageEngine()
	if err != nil {
		return "", err
	}
	id, err := s.imageID(ctx, e, image)
	if err != nil {
		return "", err
	}
	dir, err := imageCacheDir()
	if err != nil {
		return "", err
	}
	dst := archivePath(dir, id)
	if st, err := os.Stat(dst); err == nil && st.Mode().IsRegular() {
		return dst, checkArchiveSize(image, st.Size())
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create the image cache: %w", err)
	}
	removeStaleSaves(dir)
	tmp, err := os.CreateTemp(dir, saveTempPattern)
	if err != nil {
		return "", fmt.Errorf("create the image cache: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // a no-op once renamed
	fmt.Fprintf(progress, "bottle: saving %s (%s) for the microVM with %s save\n", image, id[:19], e.name)
	if _, err := s.runner().Output(ctx, backends.Cmd{Path: e.path, Args: []string{"save", "-o", tmp.Name(), id}}); err != nil {
		return "", fmt.Errorf("save the image %s with %s: %v", image, e.name, firstLine(err.Error()))
	}
	st, err := os.Stat(tmp.Name())
	if err != nil {
		return "", fmt.Errorf("save the image %s: %w", image, err)
	}
	if err := checkArchiveSize(image, st.Size()); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("cache the image archive: %w", err)
	}
	return dst, nil
}

// saveTempPattern names the file a save writes before it is renamed.
const saveTempPattern = ".save-*.tar"

// staleSaveAge is how long a save's temporary file must have been left
// unwritten before removeStaleSaves takes it for a dead bottle's (a
// forced exit skips the removal).
const staleSaveAge = time.Hour

// removeStaleSaves removes the temporary files of saves that ended without
// removing them; a save still running writes to its file and is left.
func removeStaleSaves(dir string) {
	stale, _ := filepath.Glob(filepath.Join(dir, saveTempPattern))
	for _, f := range stale {
		if st, err := os.Lstat(f); err == nil && st.Mode().IsRegular() && time.Since(st.ModTime()) > staleSaveAge {
			os.Remove(f)
		}
	}
}

// checkArchiveSize refuses an archive smolvm would refuse.
func checkArchiveSize(image string, size int64) error {
	if limit := maxImageBytes(); size > limit {
		return fmt.Errorf("the archive of %s is %d bytes, over smolvm's limit of %d bytes; make the image smaller, or raise the limit with SMOLVM_MAX_IMAGE_BYTES (bytes) in bottle's environment", image, size, limit)
	}
	return nil
}
