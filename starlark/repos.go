package starlark

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/starlark/builtins"
	"github.com/bottle-dev/bottle/starlark/repocache"
)

// rootLabel is bottle.root's label in positions.
const rootLabel = "//" + RootMarker

// readRepos evaluates bottle.root, whose only builtin is repo(). An empty
// bottle.root declares nothing and only marks the root.
//
// A repository's own bottle.root, if it has one, is not read: "@name"
// always means what the project's bottle.root declares, so a library can
// load another repository only under the name the project gives it.
//
// print() output goes to prints, or else to os.Stderr; a guard, if any,
// keeps the evaluation under MemoryLimit.
func readRepos(ctx context.Context, fsys fs.FS, root string, prints io.Writer, guard *memoryGuard) ([]plan.Repo, error) {
	data, err := fs.ReadFile(fsys, RootMarker)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", filepath.Join(root, RootMarker), describeFSError(err, ""))
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil, nil
	}
	home, _ := os.UserHomeDir()
	rs := &builtins.Repos{Dir: root, Home: home}
	th := &starlark.Thread{Name: rootLabel}
	if prints != nil {
		th.Print = func(_ *starlark.Thread, msg string) { fmt.Fprintln(prints, msg) }
	}
	th.SetMaxExecutionSteps(DefaultMaxSteps)
	guard.attach(th, DefaultMaxSteps)
	builtins.AttachRepos(th, rs)
	stop := context.AfterFunc(ctx, func() { th.Cancel(cancelReason(ctx)) })
	defer stop()
	if _, err := starlark.ExecFileOptions(fileOptions, th, rootLabel, data, builtins.RootPredeclared()); err != nil {
		return nil, AsError(err)
	}
	slices.SortFunc(rs.List, func(a, b plan.Repo) int { return strings.Compare(a.Name, b.Name) })
	return rs.List, nil
}

// OverrideRepo makes labels "@name//..." read from dir, a local checkout,
// instead of what bottle.root declares for name; the plan shows it.
func (s *Source) OverrideRepo(name, dir string) error {
	i := slices.IndexFunc(s.Repos, func(r plan.Repo) bool { return r.Name == name })
	if i < 0 {
		return fmt.Errorf("--override-repo %s=%s: %s", name, dir, declaredNames(s.Repos, name))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("--override-repo %s=%s: %w", name, dir, err)
	}
	s.Repos[i].Path, s.Repos[i].Override = abs, true
	return nil
}

// declaredNames explains that name is not declared, listing what is.
func declaredNames(repos []plan.Repo, name string) string {
	if len(repos) == 0 {
		return fmt.Sprintf("no repository named %s: %s declares no repositories; add repo(name = %q, git = URL, commit = ID) to it", name, RootMarker, name)
	}
	names := make([]string, len(repos))
	for i, r := range repos {
		names[i] = r.Name
	}
	return fmt.Sprintf("no repository named %s: %s declares %s", name, RootMarker, strings.Join(names, ", "))
}

func (l *loader) declared(name string) *plan.Repo {
	for i := range l.src.Repos {
		if l.src.Repos[i].Name == name {
			return &l.src.Repos[i]
		}
	}
	return nil
}

func (l *loader) unknownRepo(name string) error {
	return errors.New(declaredNames(l.src.Repos, name))
}

// root returns the file system of repository name ("" for the profile
// root), opening it on first use. A git repository is read from the
// cache only; one that is not there is an error naming bottle fetch.
func (l *loader) root(name string) (fs.FS, error) {
	if fsys, ok := l.roots[name]; ok {
		return fsys, nil
	}
	r := l.declared(name)
	if r == nil {
		return nil, l.unknownRepo(name)
	}
	dir := r.Path
	if dir == "" {
		dir = repocache.Dir(l.opts.RepoCache, r.URL, r.Commit)
		if l.opts.RepoCache == "" || !repocache.Has(l.opts.RepoCache, r.URL, r.Commit) {
			return nil, fmt.Errorf("repository @%s (%s at %s) has not been fetched; run bottle fetch with this profile first (evaluation never touches the network)", name, r.URL, shortCommit(r.Commit))
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		fix := "fix path in " + RootMarker + " at " + r.From
		if r.Override {
			fix = "fix --override-repo " + name + "=DIR"
		}
		return nil, fmt.Errorf("repository @%s: cannot open %s (%v); %s", name, dir, errors.Unwrap(err), fix)
	}
	l.opened = append(l.opened, root)
	fsys := root.FS()
	if r.Path == "" {
		// The files of a fetched commit are checked against it as they
		// are read: the cache is only as good as the pinned id.
		blobs, err := repocache.Verify(l.opts.RepoCache, r.URL, r.Commit)
		if err != nil {
			return nil, fmt.Errorf("repository @%s (%s at %s): the cache does not match the pinned commit (%v); remove %s and run bottle fetch again", name, r.URL, shortCommit(r.Commit), err, dir)
		}
		fsys = repocache.VerifiedFS{FS: fsys, Blobs: blobs, SHA256: len(r.Commit) == 64}
	}
	l.roots[name] = fsys
	return fsys, nil
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
