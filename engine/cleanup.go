package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bottle-dev/bottle/backends"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

// Removed is one thing Cleanup removed (or, in a dry run, would remove).
type Removed struct {
	// Resource is a backend's resource, or nil for a state directory.
	Resource *backends.Resource
	// StateDir is a stopped bottle's state directory.
	StateDir string
}

func (r Removed) String() string {
	if r.Resource != nil {
		return r.Resource.String()
	}
	return "state directory " + r.StateDir
}

// Mine reports whether a resource belongs to owner (backends.OwnerOf): it
// carries owner's label, or, made before owner labels, it carries none and
// does not run. A running sandbox of another owner is never its owner's.
func Mine(r backends.Resource, owner string) bool {
	return r.Owner == owner || (r.Owner == "" && !r.Running)
}

// Resources lists every backend's labelled resources, of every owner.
func Resources(ctx context.Context) ([]backends.Resource, error) {
	var all []backends.Resource
	for _, name := range backends.Names() {
		b, _ := backends.Get(name)
		rs, err := b.Resources(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		all = append(all, rs...)
	}
	return all, nil
}

// Cleanup removes every labelled resource of stateHome's owner
// (backends.OwnerOf) and every state directory under stateHome whose
// bottle no longer runs, with the host sidecar processes a killed bottle
// left running, and reports each through report as it goes. Another
// owner's resources are never touched, running or not.
// With dryRun it removes nothing and reports what it would remove. A
// second run finds nothing.
func Cleanup(ctx context.Context, stateHome string, dryRun bool, report func(Removed)) error {
	entries, err := backends.Scan(stateHome)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, e := range entries {
		if e.Running {
			running[e.Slug] = true
		}
	}
	res, err := Resources(ctx)
	if err != nil {
		return err
	}
	owner := backends.OwnerOf(stateHome)
	var errs []error
	for _, name := range backends.Names() {
		b, _ := backends.Get(name)
		var stale []backends.Resource
		for _, r := range res {
			if r.Backend == name && !running[r.Slug] && Mine(r, owner) {
				stale = append(stale, r)
			}
		}
		if len(stale) == 0 {
			continue
		}
		if !dryRun {
			if err := b.Remove(ctx, stale); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		for i := range stale {
			report(Removed{Resource: &stale[i]})
		}
	}
	for _, e := range entries {
		if e.Running {
			continue
		}
		if !dryRun {
			StopOrphanSidecars(e.Dir)
			backends.RemovePlaceholders(e.Dir)
			if err := os.RemoveAll(e.Dir); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		report(Removed{StateDir: e.Dir})
	}
	return errors.Join(errs...)
}

// StopOrphanSidecars kills the host sidecar process a killed bottle left
// running in state directory dir: it outlives its parent in its own process
// group and keeps holding the sidecars' lock. SIGTERM first, SIGKILL after
// five seconds.
func StopOrphanSidecars(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, srt.PIDFile))
	if err != nil {
		return
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err != nil || pid <= 1 {
		return
	}
	lock, err := os.OpenFile(filepath.Join(dir, srt.LockFile), os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer lock.Close()
	if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		return // nobody holds it: the sidecars are gone
	}
	syscall.Kill(-pid, syscall.SIGTERM)
	for i := 0; i < 50; i++ {
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
}
