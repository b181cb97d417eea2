package gitgate

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
)

// baseEnv is the environment of every git the gate runs: nothing of the
// gate's own environment but PATH and TMPDIR, so that no GIT_* variable,
// user or system config, credential helper, ssh config or agent can change
// what git does. home is an empty gate-owned directory.
func baseEnv(home string) []string {
	env := []string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_ATTR_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=",
		"SSH_ASKPASS=",
		"LC_ALL=C",
	}
	for _, k := range []string{"PATH", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// transportOf classifies an upstream URL the way git does and refuses the
// ones the gate cannot authenticate or that embed a credential.
func transportOf(raw string) (string, error) {
	switch {
	case raw == "":
		return "", errors.New("empty URL")
	case strings.HasPrefix(raw, "/"):
		return "file", nil
	case strings.Contains(raw, "::"):
		return "", fmt.Errorf("URL %q uses a git remote helper, which the gate does not run", raw)
	case !strings.Contains(raw, "://"):
		// scp-like [user@]host:path
		host, _, ok := strings.Cut(raw, ":")
		if !ok || host == "" || strings.Contains(host, "/") {
			return "", fmt.Errorf("URL %q is neither an absolute path, a scheme://… URL nor user@host:path", raw)
		}
		return "ssh", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse URL: %w", err)
	}
	if _, has := u.User.Password(); has {
		return "", errors.New("the URL embeds a password; put the token in a host environment variable and name it in token_env")
	}
	switch u.Scheme {
	case "file":
		return "file", nil
	case "ssh", "git+ssh", "ssh+git":
		return "ssh", nil
	case "https":
		return "https", nil
	case "http":
		return "http", nil
	}
	return "", fmt.Errorf("URL scheme %q is not supported (use ssh, https or a local path)", u.Scheme)
}

// sshHost returns the host (and port, as "[host]:port") a ssh URL names, in
// the form ssh-keygen -F looks up in known_hosts.
func sshHost(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		host, _, _ := strings.Cut(raw, ":")
		if i := strings.LastIndex(host, "@"); i >= 0 {
			host = host[i+1:]
		}
		return strings.Trim(host, "[]"), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse URL: %w", err)
	}
	if p := u.Port(); p != "" && p != "22" {
		return "[" + u.Hostname() + "]:" + p, nil
	}
	return u.Hostname(), nil
}

// credential is what a git talking to one upstream needs: extra
// environment, and the strings that must never reach a log or a client.
type credential struct {
	env     []string
	secrets []string
}

// credentialFor builds r's credential. ssh gets a GIT_SSH_COMMAND with the
// gate's key and known_hosts only (strict host key checking, no agent, no
// user ssh config); https gets the token as an http.<url>.extraHeader passed
// through GIT_CONFIG_* variables, so it never appears in any argv.
func credentialFor(r *remote) (credential, error) {
	var c credential
	switch r.transport {
	case "ssh":
		if r.SSHKey == "" || r.KnownHosts == "" {
			return c, fmt.Errorf("remote %q: an ssh URL needs ssh_key and known_hosts", r.Name)
		}
		c.env = append(c.env, "GIT_SSH_VARIANT=ssh", "GIT_SSH_COMMAND="+strings.Join([]string{
			"ssh", "-F", os.DevNull,
			"-i", shellQuote(r.SSHKey),
			"-o", "IdentitiesOnly=yes",
			"-o", "IdentityAgent=none",
			"-o", "StrictHostKeyChecking=yes",
			"-o", "UserKnownHostsFile=" + shellQuote(r.KnownHosts),
			"-o", "GlobalKnownHostsFile=" + os.DevNull,
			"-o", "UpdateHostKeys=no",
			"-o", "BatchMode=yes",
			"-o", "PasswordAuthentication=no",
			"-o", "KbdInteractiveAuthentication=no",
			"-o", "ConnectTimeout=20",
			"-o", "ServerAliveInterval=15",
		}, " "))
	case "https", "http":
		if r.TokenEnv == "" {
			return c, nil
		}
		if r.transport == "http" {
			return c, fmt.Errorf("remote %q: refusing to send the token in %s over plain http", r.Name, r.TokenEnv)
		}
		tok := os.Getenv(r.TokenEnv)
		if tok == "" {
			return c, fmt.Errorf("remote %q: host environment variable %s is empty or unset", r.Name, r.TokenEnv)
		}
		basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + tok))
		c.env = append(c.env,
			"GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http."+r.URL+".extraHeader",
			"GIT_CONFIG_VALUE_0=Authorization: Basic "+basic,
		)
		c.secrets = []string{tok, basic}
	}
	return c, nil
}

// redact replaces every secret in s.
func (c credential) redact(s string) string {
	for _, v := range c.secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "[REDACTED]")
		}
	}
	return s
}

// shellQuote quotes s for the sh that git runs GIT_SSH_COMMAND with.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// gitCmd describes one git invocation.
type gitCmd struct {
	dir    string    // -C dir
	env    []string  // added to the gate's base environment
	stdin  io.Reader // nil: empty
	stdout io.Writer // nil: collected and returned
	args   []string
}

// run runs git and returns its stdout (when c.stdout is nil). A failure's
// error holds git's stderr, trimmed, after redaction by cred.
func (g *Gate) run(ctx context.Context, c gitCmd, cred credential) ([]byte, error) {
	args := append([]string{"-C", c.dir}, c.args...)
	if c.dir == "" {
		args = c.args
	}
	cmd := exec.CommandContext(ctx, g.git, args...)
	cmd.Env = append(append(append([]string{}, g.baseEnv...), cred.env...), c.env...)
	cmd.Stdin = c.stdin
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	if c.stdout != nil {
		cmd.Stdout = c.stdout
	}
	cmd.Stderr = &limitedBuffer{buf: &errb, max: 64 << 10}
	if err := cmd.Run(); err != nil {
		msg := cred.redact(strings.TrimSpace(errb.String()))
		if msg == "" {
			return out.Bytes(), fmt.Errorf("git %s: %w", subcommand(c.args), err)
		}
		return out.Bytes(), fmt.Errorf("git %s: %w: %s", subcommand(c.args), err, msg)
	}
	return out.Bytes(), nil
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// subcommand names the git subcommand in args, skipping "-c key=value".
func subcommand(args []string) string {
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "-c":
			i++
		case !strings.HasPrefix(args[i], "-"):
			return args[i]
		}
	}
	return ""
}
