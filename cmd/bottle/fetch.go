package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bstar "github.com/bottle-dev/bottle/starlark"
	"github.com/bottle-dev/bottle/starlark/repocache"
)

// FetchCmd fills the repository cache for a profile.
type FetchCmd struct {
	Profile string `arg:"" optional:"" predictor:"file" help:"Profile whose bottle.root declares the repositories (default: ./bottle.star, else the nearest bottle.root at or above the current directory)."`
	RepoFlags
}

// Help explains what is fetched and where.
func (c *FetchCmd) Help() string {
	return `Clones each git repository that the profile's bottle.root declares with
repo(name = ..., git = URL, commit = ID), checks out exactly that commit, and
stores its files read-only in $XDG_CACHE_HOME/bottle/repos. Evaluation (check,
policy check, start --dry-run) reads only that cache and never the network.
Path repositories and overridden ones are read in place and not fetched.`
}

// Run fetches every git repository not in the cache yet and prints one
// line per repository.
func (c *FetchCmd) Run(g *Globals) error {
	arg := c.Profile
	if arg == "" {
		if _, err := os.Stat(defaultProfile); err != nil {
			if wd, err := os.Getwd(); err == nil {
				if root, ok := bstar.FindRoot(wd); ok {
					arg = filepath.Join(root, bstar.RootMarker)
				}
			}
		}
	}
	src, err := openProfile(g, arg, c.RepoFlags)
	if err != nil {
		return err
	}
	if len(src.Repos) == 0 {
		return writeLine(g.Stdout, "%s: %s declares no repositories; nothing to fetch", src.Label, bstar.RootMarker)
	}
	return fetchRepos(g, src, true)
}

// fetchRepos fetches src's git repositories that are not in the cache.
// With all, it reports every repository on stdout; otherwise (before a
// launch) it says on stderr only which ones it fetches.
func fetchRepos(g *Globals, src *bstar.Source, all bool) error {
	if len(src.Repos) == 0 {
		return nil
	}
	cache, err := repocache.Root()
	if err != nil {
		return err
	}
	// Repository names, URLs and paths come from bottle.root.
	out, errOut := visibleWriter{g.Stdout}, visibleWriter{g.Stderr}
	for _, r := range src.Repos {
		switch {
		case r.Override:
			if all {
				fmt.Fprintf(out, "@%s: overridden by %s, not fetched\n", r.Name, r.Path)
			}
			continue
		case r.URL == "":
			if all {
				fmt.Fprintf(out, "@%s: read in place from %s, nothing to fetch\n", r.Name, r.Path)
			}
			continue
		}
		if !all && !repocache.Has(cache, r.URL, r.Commit) {
			fmt.Fprintf(errOut, "bottle: fetching @%s (%s at %s), which is not in the cache yet\n", r.Name, r.URL, r.Commit)
		}
		// Fetch also checks a cached copy against its commit.
		fetched, err := repocache.Fetch(g.Ctx, cache, r.URL, r.Commit)
		if err != nil {
			err = fmt.Errorf("fetch @%s, declared at %s: %w", r.Name, r.From, err)
			if errors.Is(err, repocache.ErrNoCommit) {
				return usageErr(err)
			}
			return err
		}
		switch {
		case all && fetched:
			fmt.Fprintf(out, "@%s: fetched %s at %s\n", r.Name, r.URL, r.Commit)
		case all:
			fmt.Fprintf(out, "@%s: %s at %s is in the cache\n", r.Name, r.URL, r.Commit)
		}
	}
	return nil
}
