package builtins

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

var (
	remoteNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	scpLikeRE    = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/.*$`)
	branchRE     = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	tagPatternRE = regexp.MustCompile(`^[A-Za-z0-9._/*-]+$`)
)

// DefaultMaxPushBytes is the git gate's max_push_size when a profile sets
// none: 100 MiB.
const DefaultMaxPushBytes = 100 << 20

// remoteOptions are the keys of a remote given as a dict.
var remoteOptions = []string{"known_hosts", "protected", "protected_tags", "ssh_key", "token_env", "url"}

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

func buildGitGate(o *options, sc *plan.Sidecar) error {
	defKey, err := o.str("ssh_key", "")
	if err != nil {
		return err
	}
	defHosts, err := o.str("known_hosts", "")
	if err != nil {
		return err
	}
	defToken, err := o.str("token_env", "")
	if err != nil {
		return err
	}
	defProtected, err := o.strings("protected", []string{"main", "master"})
	if err != nil {
		return err
	}
	defProtectedTags, err := o.strings("protected_tags", []string{"*"})
	if err != nil {
		return err
	}
	maxPush, err := o.str("max_push_size", plan.FormatSize(DefaultMaxPushBytes))
	if err != nil {
		return err
	}
	maxPushBytes, err := plan.ParseSize(maxPush)
	if err != nil {
		return fmt.Errorf("option max_push_size: %v", err)
	}
	rv, ok := o.get("remotes")
	if !ok {
		return fmt.Errorf("option remotes is required, as in remotes = {\"origin\": \"git@github.com:acme/app.git\"}")
	}
	dict, ok := rv.(*starlark.Dict)
	if !ok || dict.Len() == 0 {
		return fmt.Errorf("option remotes is %s, want a non-empty dict of remote name to URL or to dict(url = ..., ssh_key = ..., ...)", rv.Type())
	}
	cfg := &plan.GitGateConfig{MaxPushBytes: maxPushBytes}
	for _, item := range dict.Items() {
		name, ok := item[0].(starlark.String)
		if !ok || len(name) > 64 || !remoteNameRE.MatchString(string(name)) || strings.HasSuffix(string(name), ".git") || strings.Contains(string(name), "..") {
			return fmt.Errorf("remote name %s is not a name such as \"origin\" (at most 64 letters, digits, ., _ and -, not ending in .git)", item[0])
		}
		r := plan.GitRemote{Name: string(name), SSHKey: defKey, KnownHosts: defHosts, TokenEnv: defToken, Protected: defProtected, ProtectedTags: defProtectedTags}
		switch v := item[1].(type) {
		case starlark.String:
			r.URL = string(v)
		case *starlark.Dict:
			sub := &options{sidecar: o.sidecar, state: o.state, vals: map[string]starlark.Value{}}
			for _, kv := range v.Items() {
				k, ok := kv[0].(starlark.String)
				if !ok || !slices.Contains(remoteOptions, string(k)) {
					return fmt.Errorf("remote %s has no option %s; its options are %s", name, kv[0], strings.Join(remoteOptions, ", "))
				}
				sub.vals[string(k)] = kv[1]
			}
			if r.URL, err = sub.str("url", ""); err != nil {
				return fmt.Errorf("remote %s: %v", name, err)
			}
			if r.SSHKey, err = sub.str("ssh_key", r.SSHKey); err != nil {
				return fmt.Errorf("remote %s: %v", name, err)
			}
			if r.KnownHosts, err = sub.str("known_hosts", r.KnownHosts); err != nil {
				return fmt.Errorf("remote %s: %v", name, err)
			}
			if r.TokenEnv, err = sub.str("token_env", r.TokenEnv); err != nil {
				return fmt.Errorf("remote %s: %v", name, err)
			}
			if r.Protected, err = sub.strings("protected", r.Protected); err != nil {
				return fmt.Errorf("remote %s: %v", name, err)
			}
			if r.ProtectedTags, err = sub.strings("protected_tags", r.ProtectedTags); err != nil {
				return fmt.Errorf("remote %s: %v", name, err)
			}
		default:
			return fmt.Errorf("remote %s is %s, want a URL string or a dict", name, item[1].Type())
		}
		if err := finishRemote(o.state, &r); err != nil {
			return fmt.Errorf("remote %s: %v", name, err)
		}
		cfg.Remotes = append(cfg.Remotes, r)
	}
	slices.SortFunc(cfg.Remotes, func(a, b plan.GitRemote) int { return strings.Compare(a.Name, b.Name) })
	sc.GitGate = cfg
	return nil
}

// finishRemote checks that a remote has the credential its URL needs and
// resolves its file paths; it keeps only the credential that applies.
func finishRemote(s *State, r *plan.GitRemote) error {
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
		r.SSHKey, r.KnownHosts, r.TokenEnv = s.resolveHostPath(r.SSHKey), s.resolveHostPath(r.KnownHosts), ""
	case "https":
		if r.TokenEnv == "" {
			return fmt.Errorf("an https URL needs token_env, the host environment variable that holds the token the gate pushes with")
		}
		if !envNameRE.MatchString(r.TokenEnv) {
			return fmt.Errorf("token_env %q is not an environment variable name", r.TokenEnv)
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
