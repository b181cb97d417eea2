package docker_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debianImage is a Debian image with git, made without a registry by
// scripts/debian-base-image; .ci/run builds it and names it here.
func debianImage(t *testing.T) string {
	t.Helper()
	img := os.Getenv("BOTTLE_TEST_DEBIAN_IMAGE")
	if img == "" || exec.Command("docker", "image", "inspect", img).Run() != nil {
		if os.Getenv("BOTTLE_CI") != "" {
			t.Fatalf("BOTTLE_TEST_DEBIAN_IMAGE=%q is not an image; .ci/run builds it with scripts/debian-base-image", img)
		}
		t.Skip("skipping: needs a Debian image with git; run scripts/debian-base-image and set BOTTLE_TEST_DEBIAN_IMAGE")
	}
	return img
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestGitGateInSandbox is DESIGN.md §2.4 end to end: from inside the
// agent container, `git push origin` goes to the gate; a clean push
// arrives upstream, a push carrying a secret (in a text file, or in a
// file git calls binary) is refused with remote:
// lines naming the rule (never the secret) and upstream is unchanged.
func TestGitGateInSandbox(t *testing.T) {
	e := newEnv(t)
	img := debianImage(t)
	e.extra = append(e.extra, "BOTTLE_BUNDLE_BASE="+img)

	upstream := filepath.Join(e.dir, "upstream.git")
	git(t, e.dir, "init", "--bare", "--initial-branch=main", upstream)
	seed := filepath.Join(e.dir, "seed")
	git(t, e.dir, "clone", upstream, seed)
	os.WriteFile(filepath.Join(seed, "README"), []byte("hello\n"), 0o644)
	git(t, seed, "add", "README")
	git(t, seed, "commit", "-m", "seed")
	git(t, seed, "push", "origin", "HEAD:main")
	before := git(t, upstream, "rev-parse", "main")

	profile := e.profile("git.star", `
docker(image = "`+img+`")
sidecar("git-gate", remotes = {"origin": "file://`+upstream+`"})
`)
	script := `set -e
export GIT_AUTHOR_NAME=agent GIT_AUTHOR_EMAIL=agent@example.com GIT_COMMITTER_NAME=agent GIT_COMMITTER_EMAIL=agent@example.com
cd /tmp
git clone -q file://` + upstream + ` work
cd work
echo clean > clean.txt && git add clean.txt && git commit -qm clean
git push origin HEAD:main 2>&1 && echo CLEAN-PUSHED
token="ghp_$(tr -dc A-Za-z0-9 </dev/urandom | head -c 36)"
printf 'github_token = "%s"\n' "$token" > config.py && git add config.py && git commit -qm leak
echo "$token" | sha256sum > /tmp/token.sum
if git push origin HEAD:main 2>&1; then echo SECRET-PUSHED; else echo SECRET-REFUSED; fi
git reset -q --hard HEAD~1
printf '\000token = "%s"\n' "$token" > data.bin && git add data.bin && git commit -qm binary
if git push origin HEAD:main 2>&1; then echo BINARY-PUSHED; else echo BINARY-REFUSED; fi
cat /tmp/token.sum
`
	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c", script)
	if code != 0 {
		t.Fatalf("bottle exited %d:\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, "CLEAN-PUSHED") {
		t.Fatalf("the clean push did not arrive:\n%s", out)
	}
	if !strings.Contains(out, "SECRET-REFUSED") || strings.Contains(out, "SECRET-PUSHED") {
		t.Fatalf("the push carrying a secret was not refused:\n%s", out)
	}
	// A file git calls binary (a NUL in its first 8000 bytes) is scanned
	// whole too.
	if !strings.Contains(out, "BINARY-REFUSED") || strings.Contains(out, "BINARY-PUSHED") || !strings.Contains(out, `"data.bin" line 1`) {
		t.Fatalf("the push carrying a secret in a binary file was not refused:\n%s", out)
	}
	if !strings.Contains(out, "remote:") || !strings.Contains(out, "github-pat") || !strings.Contains(out, "config.py") {
		t.Errorf("the refusal does not name the rule and file in remote: lines:\n%s", out)
	}
	if strings.Contains(out, "ghp_") {
		t.Errorf("the refusal shows the secret:\n%s", out)
	}
	after := git(t, upstream, "rev-parse", "main")
	if after == before {
		t.Errorf("the clean push did not move upstream's main")
	}
	if msg := git(t, upstream, "log", "-1", "--format=%s", "main"); msg != "clean" {
		t.Errorf("upstream's main is %q, want the clean commit", msg)
	}
}
