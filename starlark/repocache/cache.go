// Package repocache keeps the shared profile repositories that profiles
// load as "@name//file.star": one read-only directory per repository URL
// and commit, filled by Fetch with the real git and read by the evaluator
// through Dir alone.
//
// The layout under the cache root ($XDG_CACHE_HOME/bottle/repos) is
//
//	<first 16 hex digits of sha256(URL)>/<commit>/         the checked-out files, no .git
//	<first 16 hex digits of sha256(URL)>/<commit>.objects  the commit and its trees (Verify)
//
// A directory is created under a temporary name and renamed into place
// once its commit has been checked, so a directory at its final name is
// always complete. Files are 0444 and directories 0555.
package repocache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Root returns the cache root: $XDG_CACHE_HOME/bottle/repos, else
// ~/.cache/bottle/repos.
func Root() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "bottle", "repos"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the cache directory: %w (set XDG_CACHE_HOME or HOME)", err)
	}
	return filepath.Join(home, ".cache", "bottle", "repos"), nil
}

// Dir is where the files of url at commit are kept under root. It touches
// nothing.
func Dir(root, url, commit string) string {
	sum := sha256.Sum256([]byte(url))
	return filepath.Join(root, hex.EncodeToString(sum[:])[:16], commit)
}

// Has reports whether url at commit is in the cache under root: a real
// directory (not a symbolic link) with its objects file beside it. It
// does not check content; Verify does.
func Has(root, url, commit string) bool {
	st, err := os.Lstat(Dir(root, url, commit))
	if err != nil || !st.IsDir() {
		return false
	}
	ot, err := os.Lstat(Dir(root, url, commit) + ".objects")
	return err == nil && ot.Mode().IsRegular()
}

// ErrNoCommit is returned by Fetch when the repository has no such commit.
var ErrNoCommit = errors.New("no such commit")

// Fetch clones url, checks out commit, checks that HEAD is that commit,
// and stores the files read-only at Dir(root, url, commit), with the
// commit's objects beside them for Verify. It returns false, and does
// nothing, when they are already there and every file still matches the
// commit; an entry that no longer matches is an error that says to
// remove it (it was changed after it was fetched).
//
// git runs with the user's environment minus every GIT_* variable, no
// system config, no terminal prompt, no hooks, no fsmonitor, no
// submodules, object checking on, and only the file, https, http and ssh
// transports.
func Fetch(ctx context.Context, root, url, commit string) (fetched bool, err error) {
	final := Dir(root, url, commit)
	if Has(root, url, commit) {
		if err := verifyDir(root, url, commit); err != nil {
			return false, fmt.Errorf("the cached copy of %s at %s does not match the commit (%v): it was changed after it was fetched; remove %s and %s.objects and fetch again", url, commit, err, final, final)
		}
		return false, nil
	}
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return false, fmt.Errorf("create the repository cache: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".fetch-")
	if err != nil {
		return false, fmt.Errorf("create the repository cache: %w", err)
	}
	defer removeAll(tmp)
	work := filepath.Join(tmp, "w")

	// --no-local: a clone from a local path would copy or link the
	// objects without checking them against their ids.
	if _, err := git(ctx, tmp, "clone", "--quiet", "--no-local", "--no-checkout", "--template=", "--", url, work); err != nil {
		return false, err
	}
	if _, err := git(ctx, work, "cat-file", "-e", commit+"^{commit}"); err != nil {
		// Not reachable from a branch or tag: ask for the commit itself,
		// which servers that allow it will send.
		_, _ = git(ctx, work, "fetch", "--quiet", "origin", commit)
		if _, err := git(ctx, work, "cat-file", "-e", commit+"^{commit}"); err != nil {
			return false, fmt.Errorf("%w %s in %s; check the id with git ls-remote %s, or git log in a checkout", ErrNoCommit, commit, url, url)
		}
	}
	if _, err := git(ctx, work, "checkout", "--quiet", "--detach", commit); err != nil {
		return false, err
	}
	head, err := git(ctx, work, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		return false, err
	}
	if head != commit {
		return false, fmt.Errorf("checked out %s of %s but HEAD is %s; the cache was left unchanged", commit, url, head)
	}
	objects := filepath.Join(tmp, "objects")
	if err := writeObjects(ctx, work, commit, objects); err != nil {
		return false, fmt.Errorf("store %s: %w", url, err)
	}
	if err := os.RemoveAll(filepath.Join(work, ".git")); err != nil {
		return false, fmt.Errorf("store %s: %w", url, err)
	}
	if err := makeReadOnly(work); err != nil {
		return false, fmt.Errorf("store %s: %w", url, err)
	}
	if err := os.Rename(objects, final+".objects"); err != nil {
		return false, fmt.Errorf("store %s: %w", url, err)
	}
	if err := os.Rename(work, final); err != nil {
		if Has(root, url, commit) {
			// Another fetch stored it first; its copy is the same commit.
			return false, nil
		}
		return false, fmt.Errorf("store %s: %w", url, err)
	}
	return true, nil
}

// makeReadOnly makes every file under dir 0444 (0555 when executable)
// and every directory 0555, directories last so the walk can finish.
func makeReadOnly(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, p)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := fs.FileMode(0o444)
			if info.Mode()&0o100 != 0 {
				mode = 0o555
			}
			return os.Chmod(p, mode)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], 0o555); err != nil {
			return err
		}
	}
	return nil
}

// removeAll removes dir even when parts of it were made read-only.
func removeAll(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// gitConfig is passed with -c to every git Fetch runs.
var gitConfig = []string{
	"core.hooksPath=" + os.DevNull,
	"core.fsmonitor=false",
	"submodule.recurse=false",
	"transfer.fsckObjects=true",
	"advice.detachedHead=false",
	"protocol.allow=never",
	"protocol.file.allow=always",
	"protocol.https.allow=always",
	"protocol.http.allow=always",
	"protocol.ssh.allow=always",
}

// gitEnv is the environment git runs with: the user's (for ssh keys and
// credential helpers) without GIT_* variables that could redirect it.
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_PROTOCOL_FROM_USER=0", "LC_ALL=C")
}

// git runs git in dir and returns its stdout, trimmed. A failure's error
// holds the first line of git's stderr.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := gitStdin(ctx, dir, "", args...)
	return strings.TrimSpace(string(out)), err
}

// gitStdin runs git in dir with stdin and returns its stdout.
func gitStdin(ctx context.Context, dir, stdin string, args ...string) ([]byte, error) {
	var full []string
	for _, c := range gitConfig {
		full = append(full, "-c", c)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, errors.New("git is not installed; bottle fetch runs git to fetch repositories, install it and retry")
		}
		msg := strings.TrimSpace(errb.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("git %s: %s", args[0], msg)
	}
	return out.Bytes(), nil
}
