package gitgate

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

// Attacks on the gate by a hostile client. Each test asserts the secure
// outcome: the push refused, upstream unchanged, and no secret in the
// gate's log or in the gate's own "remote: git-gate:" lines. The comments
// describe the gate as the attack found it; the tests of breaks failed
// when written and pass since the fixes, which they keep.

// attackGate starts a gate in front of a fresh upstream and clones it.
func attackGate(t *testing.T) (up string, tg *testGate, work string) {
	t.Helper()
	requireGit(t)
	up = newUpstream(t)
	tg = startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work = tg.cloneVia(t, "origin", up)
	return up, tg, work
}

// expectRefused pushes and asserts that the push failed, upstream did not
// change, and neither the gate's log nor the gate's own lines hold a secret.
// It returns the client's output.
func expectRefused(t *testing.T, tg *testGate, up, work string, pushArgs []string, secrets ...string) string {
	t.Helper()
	before := allRefs(t, up)
	out, err := gitRun(t, work, append([]string{"push"}, pushArgs...)...)
	if err == nil {
		t.Errorf("push %v succeeded, want it refused:\n%s", pushArgs, out)
	}
	if after := allRefs(t, up); after != before {
		t.Errorf("upstream refs changed:\nbefore %s\nafter  %s", before, after)
	}
	assertGateQuiet(t, tg, out, secrets...)
	if os.Getenv("ATTACK_VERBOSE") != "" {
		t.Log(out)
	}
	return out
}

// assertGateQuiet checks the gate's log and the gate's own client lines.
func assertGateQuiet(t *testing.T, tg *testGate, out string, secrets ...string) {
	t.Helper()
	var own []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "git-gate:") {
			own = append(own, l)
		}
	}
	assertNoSecrets(t, secrets, tg.log.String(), strings.Join(own, "\n"))
}

// rawPost sends a POST to the gate and returns the status and body.
func rawPost(t *testing.T, url string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// receiveBody builds a receive-pack request body: commands, flush, pack.
func receiveBody(cmds []string, pack []byte) []byte {
	var b bytes.Buffer
	for i, c := range cmds {
		if i == 0 {
			c += "\x00report-status side-band-64k"
		}
		b.Write(pktLine([]byte(c + "\n")))
	}
	b.Write(pktFlush)
	b.Write(pack)
	return b.Bytes()
}

// packOf packs exactly the listed objects of repository dir.
func packOf(t *testing.T, dir string, oids ...string) []byte {
	t.Helper()
	in := ""
	if len(oids) > 0 {
		in = strings.Join(oids, "\n") + "\n"
	}
	return []byte(gitStdinRaw(t, dir, in, "pack-objects", "--stdout", "-q"))
}

func execGit(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = clientEnv(dir)
	return cmd
}

func gitStdinRaw(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	cmd := execGit(dir, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// ---------------------------------------------------------------------
// The log: git's own error messages that echo client bytes.

// upload-pack dies with "expected to get object ID, not '<line>'"; the gate
// logs upload-pack's stderr whole.
func TestAttackUploadPackErrorEchoedIntoLog(t *testing.T) {
	_, tg, _ := attackGate(t)
	secret := fakeGitHubPAT(t)
	body := append(pktLine([]byte("want "+secret+"\n")), pktFlush...)
	rawPost(t, tg.url+"/origin.git/git-upload-pack", body, map[string]string{"Content-Type": "application/x-git-upload-pack-request"})
	v2 := append(pktLine([]byte("command="+secret+"\n")), pktFlush...)
	rawPost(t, tg.url+"/origin.git/git-upload-pack", v2, map[string]string{"Content-Type": "application/x-git-upload-pack-request", "Git-Protocol": "version=2"})
	assertNoSecrets(t, []string{secret}, tg.log.String())
}

// index-pack --strict's fsck names the disallowed .gitmodules url; the
// gate logs the unpack error whole.
func TestAttackGitmodulesURLEchoedIntoLog(t *testing.T) {
	up, tg, work := attackGate(t)
	secret := fakeGitHubPAT(t)
	commitFile(t, work, ".gitmodules", "[submodule \"lib\"]\n\tpath = lib\n\turl = -"+secret+"\n", "modules")
	expectRefused(t, tg, up, work, []string{"origin", "main"}, secret)
}

// Scan errors quote file names, zip member names and encoding names; the
// gate's refusal of a ref it does not accept repeats the ref name.
func TestAttackScanErrorsEchoSecret(t *testing.T) {
	t.Run("broken-gzip-named-secret", func(t *testing.T) {
		up, tg, work := attackGate(t)
		secret := fakeGitHubPAT(t)
		commitBytes(t, work, secret+".gz", []byte("\x1f\x8b\x08\x00garbage that is not deflate"), "odd")
		expectRefused(t, tg, up, work, []string{"origin", "main"}, secret)
	})
	t.Run("zip-member-named-secret", func(t *testing.T) {
		up, tg, work := attackGate(t)
		secret := fakeGitHubPAT(t)
		z := zipped(t, map[string][]byte{"k/" + secret + ".gz": []byte("\x1f\x8b\x08\x00not deflate")})
		commitBytes(t, work, "a.zip", z, "odd")
		expectRefused(t, tg, up, work, []string{"origin", "main"}, secret)
	})
	t.Run("encoding-name", func(t *testing.T) {
		up, tg, work := attackGate(t)
		secret := fakeGitHubPAT(t)
		obj := "tree " + gitOK(t, work, "rev-parse", "HEAD^{tree}") + "\nparent " + gitOK(t, work, "rev-parse", "HEAD") +
			"\nauthor A <a@example.com> 1700000000 +0000\ncommitter A <a@example.com> 1700000000 +0000\nencoding x-" + secret + "\n\nmsg\n"
		sha := gitStdin(t, work, obj, "hash-object", "-t", "commit", "-w", "--stdin")
		gitOK(t, work, "update-ref", "refs/heads/main", sha)
		expectRefused(t, tg, up, work, []string{"origin", "main"}, secret)
	})
	t.Run("refused-ref-name", func(t *testing.T) {
		up, tg, work := attackGate(t)
		secret := fakeGitHubPAT(t)
		expectRefused(t, tg, up, work, []string{"origin", "main:refs/notes/" + secret}, secret)
	})
}

// ---------------------------------------------------------------------
// Archive and encoding views that the scan misses.

// zipWithHiddenEntry returns a zip whose first local entry (name, data)
// is left out of the central directory: readers that follow the central
// directory (Go, Info-ZIP) see only "readme.txt", streaming readers (Java's
// ZipInputStream, libarchive on a pipe) see both.
func zipWithHiddenEntry(t *testing.T, name string, data []byte) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range []struct {
		n string
		d []byte
	}{{name, data}, {"readme.txt", []byte("nothing here\n")}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.n, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f.d)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	z := b.Bytes()
	eocd := bytes.LastIndex(z, []byte("PK\x05\x06"))
	cdOff := int(binary.LittleEndian.Uint32(z[eocd+16:]))
	cdSize := int(binary.LittleEndian.Uint32(z[eocd+12:]))
	n := 46 + int(binary.LittleEndian.Uint16(z[cdOff+28:])) + int(binary.LittleEndian.Uint16(z[cdOff+30:])) + int(binary.LittleEndian.Uint16(z[cdOff+32:]))
	out := append(append([]byte{}, z[:cdOff]...), z[cdOff+n:]...)
	e := eocd - n
	binary.LittleEndian.PutUint16(out[e+8:], 1)
	binary.LittleEndian.PutUint16(out[e+10:], 1)
	binary.LittleEndian.PutUint32(out[e+12:], uint32(cdSize-n))
	return out
}

func TestAttackArchiveViewsMissed(t *testing.T) {
	line := func(s string) []byte {
		return []byte(strings.Repeat("# settings for the app\n", 40) + "token = \"" + s + "\"\n")
	}
	cases := []struct {
		name, file string
		data       func(t *testing.T, s string) []byte
	}{
		// A self-extracting archive: a script with a zip appended. unzip,
		// Python's zipfile and Go's archive/zip all read it.
		{"zip-after-prefix", "install.sh", func(t *testing.T, s string) []byte {
			z := zipped(t, map[string][]byte{"app.env": line(s)})
			data := append([]byte("#!/bin/sh\nexec unzip -o \"$0\"\n"), z...)
			if r, err := zip.NewReader(bytes.NewReader(data), int64(len(data))); err != nil || len(r.File) != 1 {
				t.Fatalf("prefixed zip does not read as a zip: %v", err)
			}
			return data
		}},
		{"zip-local-entry-not-in-central-directory", "bundle.zip", func(t *testing.T, s string) []byte {
			return zipWithHiddenEntry(t, "app.env", line(s))
		}},
		// UTF-16BE text behind a little-endian byte-order mark: the BOM
		// case decodes it to CJK, and the NUL-stripped view is skipped.
		{"utf16be-behind-le-bom", "notes.txt", func(t *testing.T, s string) []byte {
			le := utf16LE(string(line(s)), false)
			be := []byte{0xff, 0xfe}
			for i := 0; i+1 < len(le); i += 2 {
				be = append(be, le[i+1], le[i])
			}
			return be
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up, tg, work := attackGate(t)
			secret := fakeGitHubPAT(t)
			data := tc.data(t, secret)
			if bytes.Contains(data, []byte(secret)) {
				t.Fatal("the secret is in the blob as stored: the case tests nothing")
			}
			commitBytes(t, work, tc.file, data, "add "+tc.file)
			expectRefused(t, tg, up, work, []string{"origin", "main"}, secret)
		})
	}
}

// Archive forms the gate does read: they must stay refused.
func TestAttackArchiveViewsHeld(t *testing.T) {
	line := func(s string) []byte { return []byte("token = \"" + s + "\"\n") }
	cases := []struct {
		name, file string
		data       func(t *testing.T, s string) []byte
	}{
		{"gzip-second-member", "log.gz", func(t *testing.T, s string) []byte {
			return append(gzipped(t, []byte("clean\n")), gzipped(t, line(s))...)
		}},
		{"zip-in-gzip-in-zip", "outer.zip", func(t *testing.T, s string) []byte {
			inner := zipped(t, map[string][]byte{"deep/app.env": line(s)})
			return zipped(t, map[string][]byte{"mid.gz": gzipped(t, inner)})
		}},
		{"zip-stored-utf16-member", "u.zip", func(t *testing.T, s string) []byte {
			var b bytes.Buffer
			zw := zip.NewWriter(&b)
			w, _ := zw.CreateHeader(&zip.FileHeader{Name: "n.txt", Method: zip.Store})
			w.Write(utf16LE(string(line(s)), true))
			zw.Close()
			return b.Bytes()
		}},
		{"zip-encrypted-flag", "e.zip", func(t *testing.T, s string) []byte {
			var b bytes.Buffer
			zw := zip.NewWriter(&b)
			w, _ := zw.CreateHeader(&zip.FileHeader{Name: "x", Method: zip.Deflate, Flags: 0x1})
			w.Write(randomBytes(t, 64))
			zw.Close()
			return b.Bytes()
		}},
		{"zip-nested-too-deep", "d.zip", func(t *testing.T, s string) []byte {
			data := line(s)
			for range 6 {
				data = zipped(t, map[string][]byte{"x.zip": data})
			}
			return data
		}},
		{"gzip-trailing-garbage", "g.gz", func(t *testing.T, s string) []byte {
			return append(gzipped(t, []byte("clean\n")), []byte("\x1f\x8bjunk")...)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up, tg, work := attackGate(t)
			secret := fakeGitHubPAT(t)
			commitBytes(t, work, tc.file, tc.data(t, secret), "add "+tc.file)
			expectRefused(t, tg, up, work, []string{"origin", "main"}, secret)
		})
	}
}

// ---------------------------------------------------------------------
// The forgiveness rule.

// seededUpstream makes an upstream whose main holds files, pushed around
// the gate (as history that predates it).
func seededUpstream(t *testing.T, files map[string][]byte) string {
	t.Helper()
	requireGit(t)
	root := t.TempDir()
	up := filepath.Join(root, "upstream.git")
	gitOK(t, root, "init", "--bare", "--initial-branch=main", up)
	seed := filepath.Join(root, "seed")
	gitOK(t, root, "init", "--initial-branch=main", seed)
	for n, d := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(seed, n)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(seed, n), d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitOK(t, seed, "add", ".")
	gitOK(t, seed, "commit", "-q", "-m", "already there")
	gitOK(t, seed, "push", "-q", up, "main")
	return up
}

// A secret upstream has in conf.py may not be copied into another file.
func TestAttackForgivenessCopiesSecretToNewFile(t *testing.T) {
	old := fakeGitHubPAT(t)
	t.Run("same-new-blob-at-two-paths", func(t *testing.T) {
		// rev-list --objects names the blob once, by its first path:
		// conf.py, where upstream has the secret; other.py rides along.
		up := seededUpstream(t, map[string][]byte{"conf.py": []byte("a = 1\ntoken = \"" + old + "\"\n")})
		tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
		work := tg.cloneVia(t, "origin", up)
		content := "a = 2\ntoken = \"" + old + "\"\n"
		writeFile(t, work, "conf.py", content)
		writeFile(t, work, "other.py", content)
		gitOK(t, work, "add", ".")
		gitOK(t, work, "commit", "-q", "-m", "edit and copy")
		expectRefused(t, tg, up, work, []string{"origin", "main"}, old)
	})
	t.Run("unchanged-blob-at-new-path", func(t *testing.T) {
		// The copy is no new object: upstream already stores these bytes,
		// so the push carries nothing new but a tree entry (whose name is
		// scanned). It goes through; this records that on purpose.
		up := seededUpstream(t, map[string][]byte{"conf.py": []byte("a = 1\ntoken = \"" + old + "\"\n")})
		tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
		work := tg.cloneVia(t, "origin", up)
		data, err := os.ReadFile(filepath.Join(work, "conf.py"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, work, "other.py", string(data))
		gitOK(t, work, "add", ".")
		gitOK(t, work, "commit", "-q", "-m", "copy")
		if out, err := gitRun(t, work, "push", "origin", "main"); err != nil {
			t.Fatalf("a copy of a file upstream already has was refused: %v\n%s", err, out)
		}
	})
}

// pkcs12-file is a path-only rule: its "secret" is empty, so any new
// content of an existing .p12 file (a new private key) matches the
// upstream finding and is forgiven.
func TestAttackForgivenessPathRuleNewKey(t *testing.T) {
	up := seededUpstream(t, map[string][]byte{"certs/dev.p12": randomBytes(t, 600)})
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	// The rule fires for a new .p12 file.
	commitBytes(t, work, "certs/prod.p12", randomBytes(t, 600), "new key")
	out := expectRefused(t, tg, up, work, []string{"origin", "main"})
	if !strings.Contains(out, "pkcs12-file") {
		t.Fatalf("a new .p12 file was not flagged:\n%s", out)
	}
	gitOK(t, work, "reset", "-q", "--hard", "origin/main")
	// A new key in the existing file.
	commitBytes(t, work, "certs/dev.p12", randomBytes(t, 600), "rotate key")
	expectRefused(t, tg, up, work, []string{"origin", "main"})
}

// Forgiveness needs the push to build on the upstream file: an orphan
// branch or another path gets nothing.
func TestAttackForgivenessHeld(t *testing.T) {
	old := fakeGitHubPAT(t)
	up := seededUpstream(t, map[string][]byte{"conf.py": []byte("a = 1\ntoken = \"" + old + "\"\n")})
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	fresh := fakeGitHubPAT(t)
	gitOK(t, work, "checkout", "-q", "--orphan", "o")
	gitOK(t, work, "rm", "-q", "-rf", ".")
	commitFile(t, work, "conf.py", "a = 9\ntoken = \""+old+"\"\n", "orphan")
	expectRefused(t, tg, up, work, []string{"origin", "o"}, old)
	// Case difference in the path.
	gitOK(t, work, "checkout", "-q", "-f", "main")
	commitFile(t, work, "Conf.py", "a = 9\ntoken = \""+old+"\"\n", "case")
	expectRefused(t, tg, up, work, []string{"origin", "main"}, old)
	// A fresh secret next to the forgiven one, in a decoded view.
	gitOK(t, work, "reset", "-q", "--hard", "origin/main")
	commitBytes(t, work, "conf.py", append([]byte("a = 2\ntoken = \""+old+"\"\n\x00"), utf16LE("k = \""+fresh+"\"\n", false)...), "nul")
	expectRefused(t, tg, up, work, []string{"origin", "main"}, old, fresh)
}

// ---------------------------------------------------------------------
// gitleaks allowlists that the pushed content controls.

// The generic-api-key rule has an allowlist on the whole line: a line that
// holds "--mount=type=secret," is never reported, an inline allow marker
// the gate does not mean to honour.
func TestAttackGenericRuleLineAllowlist(t *testing.T) {
	up, tg, work := attackGate(t)
	// No vowels: gitleaks drops a generic match that holds one of its
	// stopwords (common words, case-insensitive), which a random mix of
	// letters sometimes does, and the control case would then pass.
	pw := randString(t, "BCDFGHJKLMNPQRSTVWXZbcdfghjkmnpqrstvwxz23456789", 28)
	commitFile(t, work, "deploy.cfg", "db_password = \""+pw+"\"\n", "plain")
	if out := expectRefused(t, tg, up, work, []string{"origin", "main"}, pw); !strings.Contains(out, "generic-api-key") {
		t.Fatalf("the control case was not flagged as generic-api-key:\n%s", out)
	}
	gitOK(t, work, "reset", "-q", "--hard", "origin/main")
	commitFile(t, work, "deploy.cfg", "db_password = \""+pw+"\" # --mount=type=secret,\n", "marked")
	expectRefused(t, tg, up, work, []string{"origin", "main"}, pw)
}

// ---------------------------------------------------------------------
// Object graph tricks.

func TestAttackObjectGraphHeld(t *testing.T) {
	t.Run("lightweight-tag-to-blob", func(t *testing.T) {
		up, tg, work := attackGate(t)
		secret := fakeGitHubPAT(t)
		blob := gitStdin(t, work, "token = \""+secret+"\"\n", "hash-object", "-w", "--stdin")
		gitOK(t, work, "tag", "leak", blob)
		expectRefused(t, tg, up, work, []string{"origin", "refs/tags/leak"}, secret)
	})
	t.Run("annotated-tag-to-tree", func(t *testing.T) {
		up, tg, work := attackGate(t)
		secret := fakeGitHubPAT(t)
		blob := gitStdin(t, work, "token = \""+secret+"\"\n", "hash-object", "-w", "--stdin")
		tree := gitStdin(t, work, "100644 blob "+blob+"\tf\n", "mktree")
		gitOK(t, work, "tag", "-a", "-m", "t", "treetag", tree)
		expectRefused(t, tg, up, work, []string{"origin", "refs/tags/treetag"}, secret)
	})
	t.Run("branch-to-annotated-tag", func(t *testing.T) {
		up, tg, work := attackGate(t)
		gitOK(t, work, "tag", "-a", "-m", "t", "v9")
		expectRefused(t, tg, up, work, []string{"origin", "refs/tags/v9:refs/heads/tagged"})
	})
	t.Run("mergetag-header", func(t *testing.T) {
		up, tg, work := attackGate(t)
		secret := fakeGitHubPAT(t)
		head := gitOK(t, work, "rev-parse", "HEAD")
		obj := "tree " + gitOK(t, work, "rev-parse", "HEAD^{tree}") + "\nparent " + head +
			"\nauthor A <a@example.com> 1700000000 +0000\ncommitter A <a@example.com> 1700000000 +0000\n" +
			"mergetag object " + head + "\n type commit\n tag x\n tagger A <a@example.com> 1700000000 +0000\n \n key " + secret + "\n" +
			"\nmerge\n"
		sha := gitStdin(t, work, obj, "hash-object", "-t", "commit", "-w", "--stdin")
		gitOK(t, work, "update-ref", "refs/heads/main", sha)
		expectRefused(t, tg, up, work, []string{"origin", "main"}, secret)
	})
	t.Run("nul-split-tag-message", func(t *testing.T) {
		up, tg, work := attackGate(t)
		secret := fakeGitHubPAT(t)
		var spread strings.Builder
		for _, c := range "token = " + secret {
			spread.WriteRune(c)
			spread.WriteByte(0)
		}
		obj := "object " + gitOK(t, work, "rev-parse", "HEAD") + "\ntype commit\ntag v2\ntagger A <a@example.com> 1700000000 +0000\n\nrelease\n" + spread.String() + "\n"
		sha := gitStdin(t, work, obj, "hash-object", "-t", "tag", "-w", "--stdin", "--literally")
		gitOK(t, work, "update-ref", "refs/tags/v2", sha)
		expectRefused(t, tg, up, work, []string{"origin", "refs/tags/v2"}, secret)
	})
	t.Run("encoding-utf8-with-spaces", func(t *testing.T) {
		up, tg, work := attackGate(t)
		secret := fakeGitHubPAT(t)
		obj := "tree " + gitOK(t, work, "rev-parse", "HEAD^{tree}") + "\nparent " + gitOK(t, work, "rev-parse", "HEAD") +
			"\nauthor A <a@example.com> 1700000000 +0000\ncommitter A <a@example.com> 1700000000 +0000\nencoding  UTF-8 \n\nkey " + secret + "\n"
		sha := gitStdin(t, work, obj, "hash-object", "-t", "commit", "-w", "--stdin")
		gitOK(t, work, "update-ref", "refs/heads/main", sha)
		expectRefused(t, tg, up, work, []string{"origin", "main"}, secret)
	})
	t.Run("symlink-target", func(t *testing.T) {
		up, tg, work := attackGate(t)
		secret := fakeAWSKey(t)
		if err := os.Symlink("/keys/"+secret, filepath.Join(work, "link")); err != nil {
			t.Fatal(err)
		}
		gitOK(t, work, "add", "link")
		gitOK(t, work, "commit", "-q", "-m", "link")
		expectRefused(t, tg, up, work, []string{"origin", "main"}, secret)
	})
}

// An object that reached the mirror unscanned (an unreferenced blob in an
// accepted pack) must be scanned when a later push first references it.
func TestAttackUnreachableMirrorObjectRescanned(t *testing.T) {
	up, tg, work := attackGate(t)
	secret := fakeGitHubPAT(t)
	base := gitOK(t, work, "rev-parse", "HEAD")
	leak := gitStdin(t, work, "token = \""+secret+"\"\n", "hash-object", "-w", "--stdin")
	c1 := commitFile(t, work, "clean.txt", "clean\n", "clean")
	tree1 := gitOK(t, work, "rev-parse", "HEAD^{tree}")
	blob1 := gitOK(t, work, "rev-parse", "HEAD:clean.txt")
	pack := packOf(t, work, c1, tree1, blob1, leak)
	url := tg.url + "/origin.git/git-receive-pack"
	ct := map[string]string{"Content-Type": "application/x-git-receive-pack-request"}
	_, resp := rawPost(t, url, receiveBody([]string{base + " " + c1 + " refs/heads/main"}, pack), ct)
	if refOf(t, up, "refs/heads/main") != c1 {
		t.Fatalf("clean push with an extra blob was not forwarded: %q", resp)
	}
	gitOK(t, work, "update-index", "--add", "--cacheinfo", "100644,"+leak+",leak.txt")
	gitOK(t, work, "commit", "-q", "-m", "reference it")
	c2 := gitOK(t, work, "rev-parse", "HEAD")
	thin := packOf(t, work, c2, gitOK(t, work, "rev-parse", "HEAD^{tree}"))
	_, resp = rawPost(t, url, receiveBody([]string{c1 + " " + c2 + " refs/heads/main"}, thin), ct)
	if refOf(t, up, "refs/heads/main") != c1 {
		t.Errorf("a push referencing an unscanned mirror object was forwarded: %q", resp)
	}
	assertNoSecrets(t, []string{secret}, tg.log.String(), resp)
}

// ---------------------------------------------------------------------
// The protocol layer, by hand.

func TestAttackRawProtocolHeld(t *testing.T) {
	up, tg, work := attackGate(t)
	url := tg.url + "/origin.git/git-receive-pack"
	ct := map[string]string{"Content-Type": "application/x-git-receive-pack-request"}
	main := gitOK(t, work, "rev-parse", "HEAD")
	zero := strings.Repeat("0", 40)
	secret := fakeGitHubPAT(t)
	c := commitFile(t, work, "leak.txt", "token = \""+secret+"\"\n", "leak")
	leakPack := packOf(t, work, c, gitOK(t, work, "rev-parse", "HEAD^{tree}"), gitOK(t, work, "rev-parse", "HEAD:leak.txt"))
	before := allRefs(t, up)

	if code, body := rawPost(t, url, []byte("0000"), ct); code != 200 || body != "" {
		t.Errorf("probe: %d %q", code, body)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(receiveBody([]string{main + " " + c + " refs/heads/main"}, leakPack))
	zw.Close()
	hdr := map[string]string{"Content-Type": ct["Content-Type"], "Content-Encoding": "gzip"}
	if _, body := rawPost(t, url, gz.Bytes(), hdr); !strings.Contains(body, "ng refs/heads/main") {
		t.Errorf("gzipped push with a secret: %q", body)
	}
	for name, body := range map[string][]byte{
		"no-pack":           receiveBody([]string{zero + " " + main + " refs/heads/copy"}, nil),
		"flush-garbage":     receiveBody([]string{zero + " " + c + " refs/heads/x"}, []byte("garbage, not a pack")),
		"twice":             receiveBody([]string{main + " " + c + " refs/heads/main", main + " " + c + " refs/heads/main"}, leakPack),
		"delete-and-create": receiveBody([]string{main + " " + zero + " refs/heads/main", zero + " " + c + " refs/heads/main"}, leakPack),
		"secret-ref-nosb":   append(pktLine([]byte(zero+" "+main+" refs/heads/"+secret+"\x00report-status\n")), append(pktFlush, packOf(t, work)...)...),
		"bad-pkt-length":    []byte("zzzz"),
		"sha256-mixed":      receiveBody([]string{main + " " + c + " refs/heads/main", strings.Repeat("0", 64) + " " + strings.Repeat("a", 64) + " refs/heads/y"}, leakPack),
		"tree-as-branch":    receiveBody([]string{zero + " " + gitOK(t, work, "rev-parse", "HEAD^{tree}") + " refs/heads/t"}, leakPack),
	} {
		_, resp := rawPost(t, url, body, ct)
		if after := allRefs(t, up); after != before {
			t.Errorf("%s: upstream changed: %s", name, after)
			before = after
		}
		assertNoSecrets(t, []string{secret}, tg.log.String())
		_ = resp
	}
}

// ---------------------------------------------------------------------
// Resource exhaustion: a pack of a few hundred bytes whose delta inflates
// to k*64 KiB. index-pack materialises it before any limit of the gate
// applies (190 bytes -> 2 GiB of RAM and 10 s of CPU for k=32768), and
// since the object is reachable from no command, the scan's size check
// never counts it: the push is forwarded and the pack adopted.

// deltaBombPack returns a pack of a 64 KiB blob and an ofs-delta on it
// made of k copy instructions of 64 KiB each.
func packObjHeader(typ byte, size int) []byte {
	b := []byte{typ<<4 | byte(size&0x0f)}
	size >>= 4
	for size > 0 {
		b[len(b)-1] |= 0x80
		b = append(b, byte(size&0x7f))
		size >>= 7
	}
	return b
}

func deflateBytes(d []byte) []byte {
	var b bytes.Buffer
	w, _ := zlib.NewWriterLevel(&b, zlib.BestCompression)
	w.Write(d)
	w.Close()
	return b.Bytes()
}

func varint(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			b = append(b, c|0x80)
		} else {
			return append(b, c)
		}
	}
}

func deltaBombPack(k int) []byte {
	var p bytes.Buffer
	p.WriteString("PACK")
	binary.Write(&p, binary.BigEndian, uint32(2))
	binary.Write(&p, binary.BigEndian, uint32(2))
	base := bytes.Repeat([]byte("a"), 65536)
	off1 := p.Len()
	p.Write(packObjHeader(3, len(base)))
	p.Write(deflateBytes(base))
	off2 := p.Len()
	delta := append(varint(len(base)), varint(k*65536)...)
	delta = append(delta, bytes.Repeat([]byte{0x80}, k)...)
	p.Write(packObjHeader(6, len(delta)))
	// ofs-delta negative offset encoding
	ofs := off2 - off1
	enc := []byte{byte(ofs & 0x7f)}
	for ofs >>= 7; ofs > 0; ofs >>= 7 {
		ofs--
		enc = append([]byte{byte(0x80 | ofs&0x7f)}, enc...)
	}
	p.Write(enc)
	p.Write(deflateBytes(delta))
	sum := sha1.Sum(p.Bytes())
	p.Write(sum[:])
	return p.Bytes()
}

func TestAttackDeltaBombPastLimit(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGateConfig(t, Config{Remotes: []plan.GitRemote{{Name: "origin", URL: up}}, MaxPushBytes: 1 << 20})
	work := tg.cloneVia(t, "origin", up)
	main := gitOK(t, work, "rev-parse", "HEAD")
	pack := deltaBombPack(64) // 4 MiB inflated, from about 150 bytes
	before := allRefs(t, up)
	_, resp := rawPost(t, tg.url+"/origin.git/git-receive-pack",
		receiveBody([]string{strings.Repeat("0", 40) + " " + main + " refs/heads/bomb"}, pack),
		map[string]string{"Content-Type": "application/x-git-receive-pack-request"})
	if allRefs(t, up) != before || !strings.Contains(resp, "ng refs/heads/bomb") {
		t.Errorf("a %d-byte pack that inflates to 4 MiB, over the 1 MiB limit, was accepted: %q", len(pack), resp)
	}
}
