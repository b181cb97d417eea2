package gitgate

import (
	"strings"
	"testing"
)

// TestGitURLKind: the gate takes ssh, https and local upstreams, and
// refuses what would hand git a command, an option or a password.
func TestGitURLKind(t *testing.T) {
	for _, c := range []struct{ url, kind, err string }{
		{"git@github.com:acme/app.git", "ssh", ""},
		{"ssh://git@github.com/acme/app.git", "ssh", ""},
		{"https://github.com/acme/app.git", "https", ""},
		{"/srv/git/app.git", "file", ""},
		{"file:///srv/git/app.git", "file", ""},
		{"", "", "is not a git URL"},
		{"-uupload-pack=touch /tmp/x", "", "is not a git URL"},
		{"ext::true", "", "use git@host:path"},
		{"relative/app.git", "", "use git@host:path"},
		{"https://me:hunter2@github.com/a.git", "", "holds a password"},
		{"https:///a.git", "", "has no host"},
		{"http://example.com/a.git", "", "plain http would expose the token"},
	} {
		kind, err := gitURLKind(c.url)
		if kind != c.kind || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("gitURLKind(%q) = %q, %v; want %q, %q", c.url, kind, err, c.kind, c.err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("gitURLKind(%q) shows the password: %v", c.url, err)
		}
	}
}
