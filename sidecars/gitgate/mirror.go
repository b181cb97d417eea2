package gitgate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// refresh brings r's mirror up to date with its upstream: a bare clone the
// first time, then a pruning fetch of branches and tags. It fails when the
// upstream cannot be reached, so that nothing is served from a stale mirror.
// The caller holds r.mu.
func (g *Gate) refresh(ctx context.Context, r *remote) error {
	cred, err := credentialFor(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, g.upstreamTimeout)
	defer cancel()
	start := time.Now()
	if _, err := os.Stat(filepath.Join(r.dir, "HEAD")); errors.Is(err, os.ErrNotExist) {
		err = g.cloneMirror(ctx, r, cred)
		g.logRefresh(r, "clone", start, err)
		return err
	}
	_, err = g.run(ctx, gitCmd{dir: r.dir, args: []string{
		"fetch", "--quiet", "--prune", "--no-write-fetch-head", "--", r.URL,
		"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
	}}, cred)
	if err != nil {
		err = fmt.Errorf("fetch from upstream %q: %w", r.URL, err)
	}
	g.logRefresh(r, "fetch", start, err)
	return err
}

// cloneMirror makes r's mirror with a bare clone into a temporary directory
// renamed into place, so that a failed clone leaves nothing behind.
func (g *Gate) cloneMirror(ctx context.Context, r *remote, cred credential) error {
	tmp, err := os.MkdirTemp(filepath.Dir(r.dir), ".clone-"+r.Name+"-")
	if err != nil {
		return fmt.Errorf("create mirror of %q: %w", r.Name, err)
	}
	defer os.RemoveAll(tmp)
	dst := filepath.Join(tmp, "m.git")
	if _, err := g.run(ctx, gitCmd{args: []string{"clone", "--bare", "--quiet", "--no-hardlinks", "--", r.URL, dst}}, cred); err != nil {
		return fmt.Errorf("clone upstream %q: %w", r.URL, err)
	}
	if err := os.Rename(dst, r.dir); err != nil {
		return fmt.Errorf("create mirror of %q: %w", r.Name, err)
	}
	return nil
}

func (g *Gate) logRefresh(r *remote, op string, start time.Time, err error) {
	if err != nil {
		g.log.Error("upstream refresh failed", "remote", r.Name, "op", op, "error", err.Error())
		return
	}
	g.log.Info("upstream refreshed", "remote", r.Name, "op", op, "ms", time.Since(start).Milliseconds())
}

// Preflight checks, without contacting any upstream, that git (and ssh
// where needed) can be run and that every remote has a usable credential:
// an ssh URL a readable private key that only its owner can read and a
// known_hosts file that names the upstream host; an https URL with
// token_env a non-empty host environment variable. It returns nil or an
// error with one line per problem.
func (g *Gate) Preflight() error {
	var errs []error
	if out, err := exec.Command(g.git, "--version").Output(); err != nil {
		errs = append(errs, fmt.Errorf("git gate: cannot run %s: %v; install git", g.git, err))
	} else if !gitVersionOK(string(out)) {
		errs = append(errs, fmt.Errorf("git gate: %s is too old; the gate needs git 2.32 or newer", strings.TrimSpace(string(out))))
	}
	for _, name := range g.order {
		if err := g.preflightRemote(g.remotes[name]); err != nil {
			errs = append(errs, fmt.Errorf("git gate: remote %q (%s): %w", name, g.remotes[name].URL, err))
		}
	}
	return errors.Join(errs...)
}

func (g *Gate) preflightRemote(r *remote) error {
	if _, err := credentialFor(r); err != nil {
		// credentialFor names the remote itself; keep only its reason.
		_, reason, _ := strings.Cut(err.Error(), ": ")
		return errors.New(reason)
	}
	switch r.transport {
	case "file":
		p := strings.TrimPrefix(r.URL, "file://")
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("upstream repository not found: %v", err)
		}
	case "ssh":
		for _, tool := range []string{"ssh", "ssh-keygen"} {
			if _, err := exec.LookPath(tool); err != nil {
				return fmt.Errorf("%s is not installed; the gate needs OpenSSH for ssh URLs", tool)
			}
		}
		fi, err := os.Stat(r.SSHKey)
		if err != nil {
			return fmt.Errorf("ssh_key: %v", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("ssh_key %s is readable by others (mode %o); chmod 600 it", r.SSHKey, fi.Mode().Perm())
		}
		f, err := os.Open(r.SSHKey)
		if err != nil {
			return fmt.Errorf("ssh_key: %v", err)
		}
		f.Close()
		host, err := sshHost(r.URL)
		if err != nil {
			return err
		}
		if _, err := os.Stat(r.KnownHosts); err != nil {
			return fmt.Errorf("known_hosts: %v", err)
		}
		if err := exec.Command("ssh-keygen", "-F", host, "-f", r.KnownHosts).Run(); err != nil {
			return fmt.Errorf("known_hosts %s has no key for %s; add it (ssh-keyscan %s, then check the fingerprint)", r.KnownHosts, host, host)
		}
	case "https":
		if r.TokenEnv == "" {
			return errors.New("an https URL needs token_env naming a host environment variable that holds the token")
		}
	}
	return nil
}

// gitVersionOK reports whether `git --version` output names 2.32 or newer.
func gitVersionOK(out string) bool {
	f := strings.Fields(out)
	if len(f) < 3 {
		return false
	}
	var major, minor int
	if _, err := fmt.Sscanf(f[2], "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 2 || major == 2 && minor >= 32
}
