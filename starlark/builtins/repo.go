package builtins

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"unicode"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

// repoNameRE is what may follow "@" in a label: a letter, then letters,
// digits, "_" and "-".
var repoNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

const reposKey = "bottle.builtins.repos"

// Repos collects the repo() declarations of a bottle.root file.
type Repos struct {
	// Dir is the host directory holding bottle.root; relative paths
	// resolve from it.
	Dir string
	// Home is the user's home directory, for "~/..." paths.
	Home string
	// List holds the declarations in declaration order.
	List []plan.Repo
}

// AttachRepos stores r on thread, where repo() finds it.
func AttachRepos(thread *starlark.Thread, r *Repos) { thread.SetLocal(reposKey, r) }

// RootPredeclared returns the builtins of a bottle.root file: repo() only.
//
//	repo(name, git = URL, commit = ID)
//	repo(name, path = DIR)
//
// repo declares a shared profile repository that profiles under the root
// load from as "@name//file.star". A git repository is pinned to a full
// commit id (40 hex digits; branch and tag names are refused because they
// move) and read from the cache that `bottle fetch` fills; URL is https://,
// http://, ssh://, git@host:path, file:// or an absolute path, never a
// remote helper (ext::...). A path repository is a directory read in place,
// relative to the directory holding bottle.root.
func RootPredeclared() starlark.StringDict {
	return starlark.StringDict{"repo": starlark.NewBuiltin("repo", repo)}
}

func repo(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := maxPositional(b, args); err != nil {
		return nil, err
	}
	var name, git, commit, dir string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "git?", &git, "commit?", &commit, "path?", &dir); err != nil {
		return nil, err
	}
	rs, ok := thread.Local(reposKey).(*Repos)
	if !ok {
		return nil, fmt.Errorf("%s: repositories are declared in bottle.root only", b.Name())
	}
	if !repoNameRE.MatchString(name) {
		return nil, fmt.Errorf("%s: name %q is not a repository name: a letter, then at most 63 letters, digits, _ and -, as in name = \"acme\"", b.Name(), name)
	}
	for _, r := range rs.List {
		if r.Name == name {
			return nil, fmt.Errorf("%s: repository %q is declared twice, first at %s; give each repository its own name", b.Name(), name, r.From)
		}
	}
	r := plan.Repo{Name: name, From: callerPos(thread)}
	switch {
	case git != "" && dir != "", git == "" && dir == "":
		return nil, fmt.Errorf("%s: give git = URL with commit = ID, or path = DIR (exactly one of git and path)", b.Name())
	case hasControl(git) || hasControl(dir):
		// They would reach the terminal raw in the plan summary and the
		// approval prompt, where an escape sequence can hide lines.
		return nil, fmt.Errorf("%s: git or path %q holds control or invisible formatting characters", b.Name(), git+dir)
	case dir != "":
		if commit != "" {
			return nil, fmt.Errorf("%s: commit pins a git repository; a path repository is read as it is, so drop commit or use git = URL", b.Name())
		}
		st := &State{ProfileDir: rs.Dir, Home: rs.Home}
		r.Path = st.resolveHostPath(dir)
	default:
		if err := checkRepoURL(git); err != nil {
			return nil, fmt.Errorf("%s: %v", b.Name(), err)
		}
		switch {
		case commit == "":
			return nil, fmt.Errorf("%s: repository %q has no commit; pin it with commit = the full commit id, for example the output of git ls-remote %s HEAD", b.Name(), name, git)
		case !plan.IsCommitID(commit):
			return nil, fmt.Errorf("%s: commit %q is not a full commit id; branch and tag names move, so pin the 40 hex digits that git rev-parse %s prints in a checkout (or git ls-remote %s %s)", b.Name(), commit, commit, git, commit)
		}
		r.URL, r.Commit = git, commit
	}
	rs.List = append(rs.List, r)
	return starlark.None, nil
}

// hasControl reports whether s holds a control character or an invisible
// Unicode formatting character (bidirectional overrides, zero-width ones).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r)
	})
}

// scpLikeRE matches git's scp-like ssh URLs, user@host:path.
var scpLikeRE = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/.*$`)

// checkRepoURL refuses URLs git would not fetch plainly: ones it could
// take for an option, remote helpers (ext:: runs a command), credentials
// in the URL, and schemes other than https, http, ssh and file. Plain
// http is accepted because the pinned commit id, which git checks
// against the objects it receives, is what makes a fetch trustworthy.
func checkRepoURL(raw string) error {
	switch {
	case raw == "" || strings.HasPrefix(raw, "-") || strings.ContainsAny(raw, " \t\r\n\x00"):
		return fmt.Errorf("git %q is not a git URL", raw)
	case strings.Contains(raw, "::"):
		return fmt.Errorf("git %q names a git remote helper, which bottle does not run; use https://, ssh://, git@host:path or file://", raw)
	case path.IsAbs(raw):
		return nil
	case !strings.Contains(raw, "://"):
		if scpLikeRE.MatchString(raw) {
			return nil
		}
		return fmt.Errorf("git %q is not a git URL; use https://, ssh://, git@host:path, file:// or an absolute path", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("git %q: %v", raw, err)
	}
	if _, hasPass := u.User.Password(); hasPass {
		return fmt.Errorf("git %q holds a password; leave credentials to git's credential helper or ssh", u.Redacted())
	}
	switch u.Scheme {
	case "https", "http", "ssh":
		if u.Host == "" {
			return fmt.Errorf("git %q has no host", raw)
		}
		return nil
	case "file":
		return nil
	}
	return fmt.Errorf("git %q uses %q; use https://, ssh://, git@host:path or file://", u.Redacted(), u.Scheme)
}
