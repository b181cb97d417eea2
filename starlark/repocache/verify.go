package repocache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// The objects file beside each cached commit, <commit>.objects, holds the
// commit object and every tree object of it, as `git cat-file --batch`
// prints them ("<id> <type> <size>\n<raw>\n"). Verify checks them against
// the pinned commit id by hashing, the way git names objects, so the
// files of a cache entry are tied to the commit the profile pins: a
// changed, added or planted file, or a forged objects file, fails to
// verify without a hash collision.

// writeObjects stores the commit and tree objects of commit, read from
// the clone in work, at file.
func writeObjects(ctx context.Context, work, commit, file string) error {
	// "<mode> <type> <id>\t<path>" entries (ls-tree's default format,
	// which older git has too).
	trees, err := git(ctx, work, "ls-tree", "-r", "-t", "-z", commit)
	if err != nil {
		return err
	}
	var in strings.Builder
	in.WriteString(commit + "\n" + commit + "^{tree}\n")
	for _, e := range strings.Split(trees, "\x00") {
		meta, _, _ := strings.Cut(e, "\t")
		if f := strings.Fields(meta); len(f) == 3 && f[1] == "tree" {
			in.WriteString(f[2] + "\n")
		}
	}
	out, err := gitStdin(ctx, work, in.String(), "cat-file", "--batch")
	if err != nil {
		return err
	}
	return os.WriteFile(file, out, 0o444)
}

// Blob is one file of a verified commit.
type Blob struct {
	ID   string // the git object id of its content
	Mode string // "100644", "100755" or "120000" (a symbolic link)
}

// Verify reads the objects file of url at commit under root, checks every
// object in it against its id and the commit against the pinned id, and
// returns the files of the commit by slash-separated path.
func Verify(root, url, commit string) (map[string]Blob, error) {
	data, err := os.ReadFile(Dir(root, url, commit) + ".objects")
	if err != nil {
		return nil, err
	}
	newHash := sha1.New
	if len(commit) == 64 {
		newHash = sha256.New
	}
	objs := map[string][]byte{}
	br := bufio.NewReader(bytes.NewReader(data))
	for {
		hdr, err := br.ReadString('\n')
		if err == io.EOF && hdr == "" {
			break
		}
		f := strings.Fields(hdr)
		if err != nil || len(f) != 3 {
			return nil, errors.New("malformed objects file")
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 || n > len(data) {
			return nil, errors.New("malformed objects file")
		}
		raw := make([]byte, n+1)
		if _, err := io.ReadFull(br, raw); err != nil {
			return nil, errors.New("malformed objects file")
		}
		if id := objectID(newHash(), f[1], raw[:n]); id != f[0] {
			return nil, fmt.Errorf("object %s does not hash to its id", f[0])
		}
		objs[f[0]] = raw[:n]
	}
	c, ok := objs[commit]
	if !ok {
		return nil, fmt.Errorf("commit %s is not in the objects file", commit)
	}
	tree, ok := strings.CutPrefix(strings.SplitN(string(c), "\n", 2)[0], "tree ")
	if !ok {
		return nil, errors.New("malformed commit object")
	}
	blobs := map[string]Blob{}
	if err := walkTree(objs, tree, "", newHash().Size(), blobs); err != nil {
		return nil, err
	}
	return blobs, nil
}

// walkTree adds the files of tree id, at dir, to blobs.
func walkTree(objs map[string][]byte, id, dir string, hashLen int, blobs map[string]Blob) error {
	raw, ok := objs[id]
	if !ok {
		return fmt.Errorf("tree %s is not in the objects file", id)
	}
	for len(raw) > 0 {
		sp, nul := bytes.IndexByte(raw, ' '), bytes.IndexByte(raw, 0)
		if sp < 0 || nul < sp || len(raw) < nul+1+hashLen {
			return fmt.Errorf("malformed tree %s", id)
		}
		mode, name := string(raw[:sp]), string(raw[sp+1:nul])
		oid := hex.EncodeToString(raw[nul+1 : nul+1+hashLen])
		raw = raw[nul+1+hashLen:]
		p := path.Join(dir, name)
		switch mode {
		case "40000":
			if err := walkTree(objs, oid, p, hashLen, blobs); err != nil {
				return err
			}
		case "100644", "100755", "120000":
			blobs[p] = Blob{ID: oid, Mode: mode}
		}
	}
	return nil
}

// objectID is git's name for an object: the hash of "<type> <size>\0" and
// its content.
func objectID(h hash.Hash, kind string, raw []byte) string {
	fmt.Fprintf(h, "%s %d\x00", kind, len(raw))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil))
}

// VerifiedFS reads files of a cached commit and returns only those whose
// content is what the commit holds at their path.
type VerifiedFS struct {
	FS    fs.FS
	Blobs map[string]Blob
	// SHA256 is set for a repository with SHA-256 object ids.
	SHA256 bool
}

// Open opens name in the underlying file system, for stat and directory
// reads; ReadFile is what checks content.
func (v VerifiedFS) Open(name string) (fs.File, error) { return v.FS.Open(name) }

// ReadFile reads name and checks it against the commit.
func (v VerifiedFS) ReadFile(name string) ([]byte, error) {
	b, ok := v.Blobs[name]
	if !ok {
		if _, err := fs.Stat(v.FS, name); err != nil {
			return nil, err
		}
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("the file is not part of the pinned commit; the cache was changed: run bottle fetch again after removing it")}
	}
	data, err := fs.ReadFile(v.FS, name) // refuses links out of the root
	if err != nil {
		return nil, err
	}
	if b.Mode == "120000" {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("loading through a symbolic link of a fetched repository is not supported")}
	}
	if objectID(v.hash(), "blob", data) != b.ID {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("the file differs from the pinned commit; the cache was changed: remove it and run bottle fetch again")}
	}
	return data, nil
}

// verifyDir checks every file of the cache entry of url at commit, and
// that it has no file the commit lacks: what Fetch does before it calls
// an entry good.
func verifyDir(root, url, commit string) error {
	blobs, err := Verify(root, url, commit)
	if err != nil {
		return err
	}
	dir := Dir(root, url, commit)
	v := VerifiedFS{FS: os.DirFS(dir), Blobs: blobs, SHA256: len(commit) == 64}
	seen := 0
	err = fs.WalkDir(v.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		seen++
		b, ok := blobs[p]
		switch {
		case !ok:
			return fmt.Errorf("%s is not part of the commit", p)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(filepath.Join(dir, filepath.FromSlash(p)))
			if err != nil || b.Mode != "120000" || objectID(v.hash(), "blob", []byte(target)) != b.ID {
				return fmt.Errorf("%s differs from the commit", p)
			}
			return nil
		}
		_, err = v.ReadFile(p)
		return err
	})
	if err == nil && seen != len(blobs) {
		err = fmt.Errorf("%d file(s) of the commit are missing", len(blobs)-seen)
	}
	return err
}

func (v VerifiedFS) hash() hash.Hash {
	if v.SHA256 {
		return sha256.New()
	}
	return sha1.New()
}
