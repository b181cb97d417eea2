package gitgate

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

var (
	scpLikeRE    = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/.*$`)
	branchRE     = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	tagPatternRE = regexp.MustCompile(`^[A-Za-z0-9._/*-]+$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// maxProfileRemoteName is the longest remote name a profile may use.
const maxProfileRemoteName = 64

// options are the profile options of sidecar("git-gate", ...).
var options = []string{"known_hosts", "max_push_size", "protected", "protected_tags", "remotes", "ssh_key", "token_env"}

// remoteOptions are the keys of a remote given as a dict.
var remoteOptions = []string{"known_hosts", "protected", "protected_tags", "ssh_key", "token_env", "url"}

// build is the schema of
//
//	sidecar("git-gate", remotes = {name: url or dict(url = ..., ...)},
//	        ssh_key = None, known_hosts = None, token_env = None,
//	        protected = ["main", "master"], protected_tags = ["*"],
//	        max_push_size = "100MiB")
//
// The git gate. remotes (required) maps each remote's name, such as
// "origin", to its upstream URL, or to a dict holding url and any of the
// per-remote options ssh_key, known_hosts, token_env, protected and
// protected_tags; the sidecar's options of those names are every remote's
// defaults. An ssh URL (git@host:path, ssh://) needs ssh_key and
// known_hosts, host paths resolved like mount()'s; an https URL needs
// token_env, the host environment variable holding the token; a local
// upstream is an absolute path or file:// URL. protected lists branches
// that may not be force-pushed or deleted, protected_tags tag names or
// patterns ("v*") that may be created but not moved or deleted.
// max_push_size ("100MiB", "1GiB") bounds one push.
func build(o sidecars.Options, sc *plan.Sidecar) error {
	defKey, err := o.String("ssh_key", "")
	if err != nil {
		return err
	}
	defHosts, err := o.String("known_hosts", "")
	if err != nil {
		return err
	}
	defToken, err := o.String("token_env", "")
	if err != nil {
		return err
	}
	defProtected, err := o.Strings("protected", []string{"main", "master"})
	if err != nil {
		return err
	}
	defProtectedTags, err := o.Strings("protected_tags", []string{"*"})
	if err != nil {
		return err
	}
	maxPush, err := o.String("max_push_size", plan.FormatSize(DefaultMaxPushBytes))
	if err != nil {
		return err
	}
	maxPushBytes, err := plan.ParseSize(maxPush)
	if err != nil {
		return fmt.Errorf("option max_push_size: %v", err)
	}
	if !o.Has("remotes") {
		return fmt.Errorf("option remotes is required, as in remotes = {\"origin\": \"git@github.com:acme/app.git\"}")
	}
	items, err := o.Dict("remotes", "a non-empty dict of remote name to URL or to dict(url = ..., ssh_key = ..., ...)")
	if err != nil {
		return err
	}
	cfg := &plan.GitGateConfig{MaxPushBytes: maxPushBytes}
	for _, item := range items {
		// Messages quote the name as the profile wrote it.
		name, quoted := item.Key.Name, item.Key.Repr
		if !item.Key.IsString || len(name) > maxProfileRemoteName || !remoteNameRE.MatchString(name) || strings.HasSuffix(name, ".git") || strings.Contains(name, "..") {
			return fmt.Errorf("remote name %s is not a name such as \"origin\" (at most 64 letters, digits, ., _ and -, not ending in .git)", quoted)
		}
		r := plan.GitRemote{Name: name, SSHKey: defKey, KnownHosts: defHosts, TokenEnv: defToken, Protected: defProtected, ProtectedTags: defProtectedTags}
		switch v := item.Value.(type) {
		case string:
			r.URL = v
		case sidecars.Options:
			for _, k := range v.Keys() {
				if !k.IsString || !slices.Contains(remoteOptions, k.Name) {
					return fmt.Errorf("remote %s has no option %s; its options are %s", quoted, k.Repr, strings.Join(remoteOptions, ", "))
				}
			}
			if r.URL, err = v.String("url", ""); err != nil {
				return fmt.Errorf("remote %s: %v", quoted, err)
			}
			if r.SSHKey, err = v.String("ssh_key", r.SSHKey); err != nil {
				return fmt.Errorf("remote %s: %v", quoted, err)
			}
			if r.KnownHosts, err = v.String("known_hosts", r.KnownHosts); err != nil {
				return fmt.Errorf("remote %s: %v", quoted, err)
			}
			if r.TokenEnv, err = v.String("token_env", r.TokenEnv); err != nil {
				return fmt.Errorf("remote %s: %v", quoted, err)
			}
			if r.Protected, err = v.Strings("protected", r.Protected); err != nil {
				return fmt.Errorf("remote %s: %v", quoted, err)
			}
			if r.ProtectedTags, err = v.Strings("protected_tags", r.ProtectedTags); err != nil {
				return fmt.Errorf("remote %s: %v", quoted, err)
			}
		default:
			return fmt.Errorf("remote %s is %s, want a URL string or a dict", quoted, item.Type)
		}
		if err := finishRemote(o, &r); err != nil {
			return fmt.Errorf("remote %s: %v", quoted, err)
		}
		cfg.Remotes = append(cfg.Remotes, r)
	}
	slices.SortFunc(cfg.Remotes, func(a, b plan.GitRemote) int { return strings.Compare(a.Name, b.Name) })
	sc.GitGate = cfg
	return nil
}

// finishRemote checks that a remote has the credential its URL needs and
// resolves its file paths; it keeps only the credential that applies.
func finishRemote(o sidecars.Options, r *plan.GitRemote) error {
	kind, err := gitURLKind(r.URL)
	if err != nil {
		return err
	}
	for _, b := range r.Protected {
		if !branchRE.MatchString(b) || strings.Contains(b, "..") {
			return fmt.Errorf("protected branch %q is not a branch name", b)
		}
	}
	for _, t := range r.ProtectedTags {
		if !tagPatternRE.MatchString(t) || strings.Contains(t, "..") {
			return fmt.Errorf("protected tag %q is not a tag name or pattern such as \"v*\" or \"*\"", t)
		}
	}
	for _, l := range []*[]string{&r.Protected, &r.ProtectedTags} {
		// The sidecar's defaults are shared by its remotes: sort a copy.
		*l = slices.Clone(*l)
		slices.Sort(*l)
		*l = slices.Compact(*l)
		if *l == nil {
			*l = []string{}
		}
	}
	switch kind {
	case "ssh":
		if r.SSHKey == "" || r.KnownHosts == "" {
			return fmt.Errorf("an ssh URL needs ssh_key (the private key the gate pushes with) and known_hosts (a file holding the server's host key)")
		}
		r.SSHKey, r.KnownHosts, r.TokenEnv = o.HostPath(r.SSHKey), o.HostPath(r.KnownHosts), ""
	case "https":
		if r.TokenEnv == "" {
			return fmt.Errorf("an https URL needs token_env, the host environment variable that holds the token the gate pushes with")
		}
		if !envNameRE.MatchString(r.TokenEnv) {
			return fmt.Errorf("token_env %q is not an environment variable name", r.TokenEnv)
		}
		if reservedTokenEnv(r.TokenEnv) {
			return fmt.Errorf("token_env %q names a variable that the sidecars' own programs read (bottle, git, ssh, the loader); keep the token in a variable of its own, such as GH_TOKEN", r.TokenEnv)
		}
		r.SSHKey, r.KnownHosts = "", ""
	case "file":
		// git does not apply url.*.insteadOf to a bare path, so the
		// sandbox could not be pointed at the gate for one: keep local
		// upstreams as file:// URLs.
		if path.IsAbs(r.URL) {
			r.URL = "file://" + path.Clean(r.URL)
		}
		r.SSHKey, r.KnownHosts, r.TokenEnv = "", "", ""
	}
	return nil
}

// gitURLKind classifies an upstream URL as "ssh", "https" or "file", or
// explains why the gate will not use it.
func gitURLKind(raw string) (string, error) {
	if raw == "" || strings.HasPrefix(raw, "-") || strings.ContainsAny(raw, " \t\r\n\x00") {
		return "", fmt.Errorf("url %q is not a git URL", raw)
	}
	if path.IsAbs(raw) {
		return "file", nil
	}
	if !strings.Contains(raw, "://") {
		if scpLikeRE.MatchString(raw) {
			return "ssh", nil
		}
		return "", fmt.Errorf("url %q is not a git URL; use git@host:path, ssh://, https:// or an absolute path", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("url %q: %v", raw, err)
	}
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			return "", fmt.Errorf("url %q holds a password; put the token in a host environment variable and name it with token_env", u.Redacted())
		}
	}
	switch u.Scheme {
	case "ssh", "https":
		if u.Host == "" {
			return "", fmt.Errorf("url %q has no host", raw)
		}
		return u.Scheme, nil
	case "file":
		return "file", nil
	}
	return "", fmt.Errorf("url %q uses %q; the gate speaks ssh://, https:// and file:// (plain http would expose the token)", u.Redacted(), u.Scheme)
}

// reservedTokenEnv reports whether name is a variable that would change
// how the sidecars run if the gate's token were passed under it: the
// docker bundle gets the token as an environment variable of that name,
// which wins over the image's own (an adversarial review set token_env to
// BOTTLE_PIPELOCK and made the bundle look for pipelock on a host path).
func reservedTokenEnv(name string) bool {
	switch name {
	case "PATH", "HOME", "USER", "SHELL", "TMPDIR", "TZ", "LANG", "IFS", "ENV", "BASH_ENV":
		return true
	}
	for _, prefix := range []string{"BOTTLE_", "LD_", "GIT_", "SSH_", "GCONV_", "LC_", "DOCKER_", "XDG_"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}
