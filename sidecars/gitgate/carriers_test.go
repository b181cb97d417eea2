package gitgate

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"golang.org/x/text/encoding/charmap"

	"github.com/bottle-dev/bottle/plan"
)

// Every place a push carries bytes upstream, with a secret in it: each push
// must be refused, upstream unchanged, and neither the client's output nor
// the gate's log may hold the secret (except where the client itself
// printed it: a ref name is echoed back by git).

// utf16LE encodes s as UTF-16LE, with a byte-order mark when bom is set.
func utf16LE(s string, bom bool) []byte {
	var b bytes.Buffer
	if bom {
		b.Write([]byte{0xff, 0xfe})
	}
	for _, u := range utf16.Encode([]rune(s)) {
		b.WriteByte(byte(u))
		b.WriteByte(byte(u >> 8))
	}
	return b.Bytes()
}

func gzipped(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zipped(t testing.TB, files map[string][]byte) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, data := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// commitBytes writes a file with exactly these bytes and commits it.
func commitBytes(t testing.TB, dir, name string, data []byte, msg string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	gitOK(t, dir, "add", "--", name)
	gitOK(t, dir, "commit", "-q", "-m", msg)
	return gitOK(t, dir, "rev-parse", "HEAD")
}

// gitStdin runs git with stdin in dir.
func gitStdin(t testing.TB, dir, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = clientEnv(dir)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

func TestSecretInEveryBlobForm(t *testing.T) {
	requireGit(t)
	line := func(s string) string { return "token = \"" + s + "\"\n" }
	cases := []struct {
		name, file string
		data       func(t testing.TB, secret string) []byte
		want       []string
	}{
		{"nul-first-byte", "data.bin", func(_ testing.TB, s string) []byte { return append([]byte{0}, line(s)...) }, []string{`"data.bin" line 1`}},
		{"nul-late", "data.bin", func(_ testing.TB, s string) []byte {
			return append(append(bytes.Repeat([]byte("x\n"), 5000), 0), line(s)...)
		}, []string{`"data.bin" line 5001`}},
		{"utf16-bom", "notes.txt", func(_ testing.TB, s string) []byte { return utf16LE("a\n"+line(s), true) }, []string{`"notes.txt" line 2`, "UTF-16"}},
		{"utf16-no-bom", "notes.txt", func(_ testing.TB, s string) []byte { return utf16LE("a\n"+line(s), false) }, []string{`"notes.txt" line 2`, "NUL bytes removed"}},
		{"gzip", "backup.env.gz", func(t testing.TB, s string) []byte { return gzipped(t, []byte("a\nb\n"+line(s))) }, []string{`"backup.env.gz" line 3`, "gunzipped"}},
		{"tar-gz-like", "dump.gz", func(t testing.TB, s string) []byte {
			return gzipped(t, gzipped(t, []byte(line(s))))
		}, []string{`"dump.gz" line 1`}},
		{"zip-member", "config.zip", func(t testing.TB, s string) []byte {
			return zipped(t, map[string][]byte{"conf/app.env": []byte("x\n" + line(s))})
		}, []string{`"config.zip!conf/app.env" line 2`, "unzipped"}},
		{"zip-member-name", "names.zip", func(t testing.TB, s string) []byte {
			return zipped(t, map[string][]byte{"keys/" + s + ".txt": []byte("nothing\n")})
		}, []string{"zip member names"}},
		{"sqlite-page", "app.db", func(_ testing.TB, s string) []byte {
			page := make([]byte, 4096)
			copy(page, "SQLite format 3\x00")
			copy(page[3000:], "\x05\x00\x17\x81"+s)
			return page
		}, []string{`"app.db" line 1`}},
		{"base64-in-binary", "blob.bin", func(_ testing.TB, s string) []byte {
			return append([]byte{0, 1, 2, '\n'}, []byte("cfg: "+b64(line(s))+"\n")...)
		}, []string{`"blob.bin" line 2`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
			work := tg.cloneVia(t, "origin", up)
			secret := fakeGitHubPAT(t)
			sha := commitBytes(t, work, tc.file, tc.data(t, secret), "add "+tc.file)
			want := append([]string{"github-pat", "of commit " + sha[:12]}, tc.want...)
			if tc.name == "zip-member-name" {
				want = []string{"github-pat", "zip member names"}
			}
			refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret}, want...)
		})
	}
}

func b64(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var out strings.Builder
	b := []byte(s)
	for len(b) >= 3 {
		n := uint(b[0])<<16 | uint(b[1])<<8 | uint(b[2])
		out.WriteString(string([]byte{alphabet[n>>18&63], alphabet[n>>12&63], alphabet[n>>6&63], alphabet[n&63]}))
		b = b[3:]
	}
	switch len(b) {
	case 1:
		n := uint(b[0]) << 16
		out.WriteString(string([]byte{alphabet[n>>18&63], alphabet[n>>12&63], '=', '='}))
	case 2:
		n := uint(b[0])<<16 | uint(b[1])<<8
		out.WriteString(string([]byte{alphabet[n>>18&63], alphabet[n>>12&63], alphabet[n>>6&63], '='}))
	}
	return out.String()
}

// refusedRefPush is refusedPush for pushes whose ref name holds the
// secret: git itself prints the name it pushed, so only the gate's own
// lines and its log are checked for the secret.
func refusedRefPush(t *testing.T, tg *testGate, up, work string, pushArgs []string, secret string, want ...string) {
	t.Helper()
	before := allRefs(t, up)
	out, err := gitRun(t, work, append([]string{"push"}, pushArgs...)...)
	if err == nil {
		t.Fatalf("push succeeded, want it refused:\n%s", out)
	}
	for _, w := range append([]string{"PUSH REFUSED"}, want...) {
		if !strings.Contains(out, w) {
			t.Errorf("push output lacks %q:\n%s", w, out)
		}
	}
	if after := allRefs(t, up); after != before {
		t.Errorf("upstream refs changed:\nbefore %s\nafter  %s", before, after)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "remote: git-gate:") && strings.Contains(l, secret) {
			t.Errorf("the gate's own line shows the secret: %q", l)
		}
	}
	assertNoSecrets(t, []string{secret}, tg.log.String())
	if !strings.Contains(tg.log.String(), "withheld") {
		t.Errorf("log does not withhold the ref name:\n%s", tg.log.String())
	}
}

func TestSecretInRefNames(t *testing.T) {
	requireGit(t)
	for _, tc := range []struct {
		name string
		args func(secret string) []string
	}{
		{"branch", func(s string) []string { return []string{"origin", "main:refs/heads/" + s} }},
		{"branch-nested", func(s string) []string { return []string{"origin", "main:refs/heads/feature/" + s} }},
		{"lightweight-tag", func(s string) []string { return []string{"origin", "main:refs/tags/" + s} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
			work := tg.cloneVia(t, "origin", up)
			commitFile(t, work, "clean.txt", "clean\n", "clean")
			secret := fakeGitHubPAT(t)
			refusedRefPush(t, tg, up, work, tc.args(secret), secret, "github-pat in the ref name of update 1")
		})
	}
	t.Run("annotated-tag-name", func(t *testing.T) {
		up := newUpstream(t)
		tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
		work := tg.cloneVia(t, "origin", up)
		secret := fakeGitHubPAT(t)
		gitOK(t, work, "tag", "-a", "-m", "release", secret)
		// The tag object's "tag" header holds the name too.
		refusedRefPush(t, tg, up, work, []string{"origin", "refs/tags/" + secret}, secret, "github-pat in the ref name", "the header of tag")
	})
}

func TestSecretInTagOfTag(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	secret := fakeGitHubPAT(t)
	gitOK(t, work, "tag", "-a", "inner", "-m", "inner "+secret)
	inner := gitOK(t, work, "rev-parse", "inner")
	gitOK(t, work, "-c", "advice.nestedTag=false", "tag", "-a", "outer", "inner", "-m", "outer")
	gitOK(t, work, "tag", "-d", "inner")
	refusedPush(t, tg, up, work, []string{"origin", "refs/tags/outer:refs/tags/v1"}, []string{secret},
		"github-pat in the message line 1 of tag "+inner[:12])
}

func TestSecretInCommitHeaders(t *testing.T) {
	requireGit(t)
	for _, tc := range []struct {
		name  string
		extra func(secret string) string // headers after committer
		env   func(secret string) []string
		want  string
	}{
		{"author-name", nil, func(s string) []string { return []string{"GIT_AUTHOR_NAME=" + s} }, "the header of commit"},
		{"committer-email", nil, func(s string) []string { return []string{"GIT_COMMITTER_EMAIL=" + s + "@example.com"} }, "the header of commit"},
		{"extra-header", func(s string) string { return "x-note " + s + "\n" }, nil, "the header of commit"},
		{"gpgsig", func(s string) string {
			return "gpgsig -----BEGIN PGP SIGNATURE-----\n \n " + s + "\n -----END PGP SIGNATURE-----\n"
		}, nil, "the header of commit"},
		// A NUL in a commit is refused by index-pack --strict (nulInCommit),
		// so the message is in EBCDIC, where no byte of it reads as ASCII.
		{"encoding-ebcdic-message", func(string) string { return "encoding IBM037\n" }, nil, "message decoded as IBM037"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
			work := tg.cloneVia(t, "origin", up)
			secret := fakeGitHubPAT(t)
			var sha string
			if tc.env != nil {
				writeFile(t, work, "f.txt", "clean\n")
				gitOK(t, work, "add", "f.txt")
				cmd := exec.Command("git", "commit", "-q", "-m", "clean")
				cmd.Dir, cmd.Env = work, append(clientEnv(work), tc.env(secret)...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("commit: %v\n%s", err, out)
				}
				sha = gitOK(t, work, "rev-parse", "HEAD")
			} else {
				tree := gitOK(t, work, "rev-parse", "HEAD^{tree}")
				parent := gitOK(t, work, "rev-parse", "HEAD")
				msg := "subject\n"
				if strings.HasPrefix(tc.extra(secret), "encoding") {
					b, err := charmap.CodePage037.NewEncoder().String("subject\n\nkey " + secret + "\n")
					if err != nil {
						t.Fatal(err)
					}
					if strings.Contains(b, secret) {
						t.Fatal("the encoded message still shows the secret")
					}
					msg = b
				}
				obj := "tree " + tree + "\nparent " + parent +
					"\nauthor A <a@example.com> 1700000000 +0000\ncommitter A <a@example.com> 1700000000 +0000\n" +
					tc.extra(secret) + "\n" + msg
				sha = gitStdin(t, work, obj, "hash-object", "-t", "commit", "-w", "--stdin")
				gitOK(t, work, "update-ref", "refs/heads/main", sha)
			}
			refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret}, "github-pat", tc.want, sha[:12])
		})
	}
}

func TestSecretInTagger(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	secret := fakeGitHubPAT(t)
	cmd := exec.Command("git", "tag", "-a", "v1", "-m", "release")
	cmd.Dir, cmd.Env = work, append(clientEnv(work), "GIT_COMMITTER_NAME="+secret)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tag: %v\n%s", err, out)
	}
	refusedPush(t, tg, up, work, []string{"origin", "v1"}, []string{secret}, "github-pat in the header of tag")
}

func TestSecretInPathNames(t *testing.T) {
	requireGit(t)
	for _, tc := range []struct{ name, path string }{
		{"file-name", "%s.txt"},
		{"directory-name", "keys/%s/readme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
			work := tg.cloneVia(t, "origin", up)
			secret := fakeGitHubPAT(t)
			sha := commitFile(t, work, fmt.Sprintf(tc.path, secret), "clean\n", "add")
			out := refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret},
				"github-pat in a file or directory name", "of commit "+sha[:12])
			if strings.Contains(out, "git-gate:   github-pat in \"") {
				t.Errorf("a finding names the path that holds the secret:\n%s", out)
			}
		})
	}
	t.Run("renamed-clean-file", func(t *testing.T) {
		// A rename makes a new tree around an old blob: the name is still scanned.
		up := newUpstream(t)
		tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
		work := tg.cloneVia(t, "origin", up)
		secret := fakeGitHubPAT(t)
		gitOK(t, work, "mv", "README.md", secret)
		gitOK(t, work, "commit", "-q", "-m", "rename")
		refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret}, "github-pat in a file or directory name")
	})
	t.Run("file-content-and-name", func(t *testing.T) {
		// A finding in a file whose path holds a secret withholds the path.
		up := newUpstream(t)
		tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
		work := tg.cloneVia(t, "origin", up)
		secret, secret2 := fakeGitHubPAT(t), fakeGitHubPAT(t)
		commitFile(t, work, secret+".env", "token = \""+secret2+"\"\n", "both")
		refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret, secret2}, "a file whose name is withheld line 1")
	})
}

func TestSecretInSubmoduleEntry(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	secret := fakeAWSKey(t) // 20 bytes: exactly a SHA-1 object name
	gitOK(t, work, "update-index", "--add", "--cacheinfo", "160000,"+hex.EncodeToString([]byte(secret))+",vendor/lib")
	gitOK(t, work, "commit", "-q", "-m", "submodule")
	refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret}, "aws-access-token in a file or directory name")
}

func TestSecretAcrossFragmentBoundary(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	secret := fakeGitHubPAT(t)
	// Lines of 100 bytes; the secret's line straddles the first 1 MiB.
	var b strings.Builder
	n := 0
	for b.Len() < fragmentSize-50 {
		fmt.Fprintf(&b, "%-99s\n", fmt.Sprintf("line %d of ordinary text", n+1))
		n++
	}
	b.WriteString(strings.Repeat("y", 30) + " token = \"" + secret + "\"\n")
	for range 20000 {
		fmt.Fprintf(&b, "%-99s\n", "more")
	}
	sha := commitFile(t, work, "big.txt", b.String(), "big")
	refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{secret},
		fmt.Sprintf(`"big.txt" line %d of commit %s`, n+1, sha[:12]))
}

func TestUpstreamSecretInEditedFileForgiven(t *testing.T) {
	requireGit(t)
	root := t.TempDir()
	up := filepath.Join(root, "upstream.git")
	gitOK(t, root, "init", "--bare", "--initial-branch=main", up)
	seed := filepath.Join(root, "seed")
	gitOK(t, root, "init", "--initial-branch=main", seed)
	old := fakeGitHubPAT(t)
	writeFile(t, seed, "conf.py", "a = 1\ntoken = \""+old+"\"\n")
	gitOK(t, seed, "add", ".")
	gitOK(t, seed, "commit", "-m", "already there")
	gitOK(t, seed, "push", up, "main")

	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	commitFile(t, work, "conf.py", "a = 2\ntoken = \""+old+"\"\n", "edit another line")
	commitFile(t, work, "conf.py", "a = 3\ntoken = \""+old+"\"\n", "and again")
	if out, err := gitRun(t, work, "push", "origin", "main"); err != nil {
		t.Fatalf("an edit of a file whose secret upstream already has was refused: %v\n%s", err, out)
	}
	// The same secret in another file is new there: refused.
	commitFile(t, work, "other.py", "token = \""+old+"\"\n", "copy")
	refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{old}, `"other.py" line 1`)
	// A new secret in the forgiven file is refused.
	gitOK(t, work, "reset", "-q", "--hard", "origin/main")
	fresh := fakeGitHubPAT(t)
	commitFile(t, work, "conf.py", "a = 4\ntoken = \""+old+"\"\nnew = \""+fresh+"\"\n", "new one")
	refusedPush(t, tg, up, work, []string{"origin", "main"}, []string{fresh}, `"conf.py" line 3`)
}

func TestUnscannableRefused(t *testing.T) {
	requireGit(t)
	for _, tc := range []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"broken-gzip", "x.gz", []byte("\x1f\x8b\x08\x00garbage that is not deflate"), `cannot scan file "x.gz"`},
		{"broken-zip", "x.zip", []byte("PK\x03\x04not really a zip"), "starts like a zip archive but cannot be read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
			work := tg.cloneVia(t, "origin", up)
			commitBytes(t, work, tc.file, tc.data, "odd")
			before := allRefs(t, up)
			out, err := gitRun(t, work, "push", "origin", "main")
			if err == nil || !strings.Contains(out, tc.want) || !strings.Contains(out, "nothing was forwarded") {
				t.Fatalf("push of an unscannable file: err %v, want refusal naming %q:\n%s", err, tc.want, out)
			}
			if allRefs(t, up) != before {
				t.Error("upstream changed")
			}
		})
	}
	t.Run("unknown-encoding", func(t *testing.T) {
		up := newUpstream(t)
		tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
		work := tg.cloneVia(t, "origin", up)
		tree := gitOK(t, work, "rev-parse", "HEAD^{tree}")
		obj := "tree " + tree + "\nparent " + gitOK(t, work, "rev-parse", "HEAD") +
			"\nauthor A <a@example.com> 1700000000 +0000\ncommitter A <a@example.com> 1700000000 +0000\nencoding x-no-such-charset\n\nmsg\n"
		sha := gitStdin(t, work, obj, "hash-object", "-t", "commit", "-w", "--stdin")
		gitOK(t, work, "update-ref", "refs/heads/main", sha)
		out, err := gitRun(t, work, "push", "origin", "main")
		if err == nil || !strings.Contains(out, `encoding "x-no-such-charset", which the gate cannot decode`) {
			t.Fatalf("push with an undecodable message: err %v\n%s", err, out)
		}
	})
}
