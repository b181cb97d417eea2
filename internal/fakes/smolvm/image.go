//go:build linux

package smolvm

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// imageKind is what src/data/image_source.rs:26-45@v1.8.1 calls an
// ImageSource: where a machine's root filesystem comes from.
type imageKind int

const (
	imageRegistry imageKind = iota
	imageArchiveFile
	imageArchiveStdin
	imageDirectory
)

// Reference prefixes a resolved local source is persisted under
// (src/data/image_source.rs:302-310@v1.8.1).
const (
	localArchivePrefix = "local:"
	localDirPrefix     = "local-dir:"
)

func isLocalRef(ref string) bool {
	return strings.HasPrefix(ref, localArchivePrefix) || strings.HasPrefix(ref, localDirPrefix)
}

// classifyImage is classify (src/data/image_source.rs:56-82@v1.8.1): "-" is
// an archive on stdin; a value starting "/", "./" or "../" or ending in
// ".tar", ".tar.gz" or ".tgz" is local, a directory if one exists there and
// an archive file otherwise; anything else is a registry reference, even
// when a file of that name sits in the current directory.
func classifyImage(image string) imageKind {
	if image == "-" {
		return imageArchiveStdin
	}
	local := strings.HasPrefix(image, "/") || strings.HasPrefix(image, "./") || strings.HasPrefix(image, "../")
	for _, suffix := range []string{".tar", ".tar.gz", ".tgz"} {
		local = local || strings.HasSuffix(image, suffix)
	}
	if !local {
		return imageRegistry
	}
	if fi, err := os.Stat(image); err == nil && fi.IsDir() {
		return imageDirectory
	}
	return imageArchiveFile
}

// looksLikeDockerfile is looks_like_dockerfile
// (src/data/image_source.rs:88-121@v1.8.1): the conventional names, or a
// first meaningful line (of the first 4096 bytes, if they are UTF-8)
// starting FROM or ARG.
func looksLikeDockerfile(path string) bool {
	lower := strings.ToLower(filepath.Base(path))
	if lower == "dockerfile" || lower == "containerfile" || strings.HasSuffix(lower, ".dockerfile") || strings.HasSuffix(lower, ".containerfile") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, err := f.Read(head)
	if err != nil && n == 0 {
		return false
	}
	if !utf8.Valid(head[:n]) {
		return false
	}
	lines := strings.Split(strings.ReplaceAll(string(head[:n]), "\r\n", "\n"), "\n")
	for i, line := range lines {
		if i == 50 {
			break
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word := strings.Fields(line)[0]
		return strings.EqualFold(word, "FROM") || strings.EqualFold(word, "ARG")
	}
	return false
}

// defaultMaxArchiveBytes is max_archive_bytes's default, 8 GiB
// (src/data/image_source.rs:149-156@v1.8.1).
const defaultMaxArchiveBytes = 8 << 30

// maxArchiveBytes reads SMOLVM_MAX_IMAGE_BYTES as max_archive_bytes does
// (src/data/image_source.rs:149-156@v1.8.1): trimmed, a u64 greater than
// zero, else the default.
func maxArchiveBytes(getenv func(string) string) uint64 {
	n, err := strconv.ParseUint(strings.TrimSpace(getenv("SMOLVM_MAX_IMAGE_BYTES")), 10, 64)
	if err != nil || n == 0 {
		return defaultMaxArchiveBytes
	}
	return n
}

// parseSizeBytes is parse_size_bytes (src/util.rs:128-160@v1.8.1), the value
// parser of --max-image-size (src/cli/machine.rs:2770-2776@v1.8.1): digits
// and dots form a float, then an optional binary unit K/M/G/T (with an
// optional "i" and/or "B", any case, whitespace allowed before it). It
// returns the byte count, or the message clap prints after the value.
func parseSizeBytes(s string) (uint64, string) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, "size must not be empty"
	}
	split := strings.IndexFunc(t, func(c rune) bool { return !(c >= '0' && c <= '9' || c == '.') })
	if split < 0 {
		split = len(t)
	}
	num, unit := t[:split], t[split:]
	value, err := parseRustF64(num)
	if err != nil {
		return 0, fmt.Sprintf("'%s' is not a valid size (expected a number, optional K/M/G/T)", s)
	}
	var mult uint64
	switch strings.ToLower(strings.TrimSpace(unit)) {
	case "", "b":
		mult = 1
	case "k", "ki", "kib", "kb":
		mult = 1 << 10
	case "m", "mi", "mib", "mb":
		mult = 1 << 20
	case "g", "gi", "gib", "gb":
		mult = 1 << 30
	case "t", "ti", "tib", "tb":
		mult = 1 << 40
	default:
		return 0, fmt.Sprintf("invalid size unit '%s' in '%s' (use K, M, G, or T)", strings.ToLower(strings.TrimSpace(unit)), s)
	}
	// Rust's `as u64` saturates.
	product := value * float64(mult)
	var bytes uint64
	if product >= math.MaxUint64 {
		bytes = math.MaxUint64
	} else {
		bytes = uint64(product)
	}
	if bytes == 0 {
		return 0, fmt.Sprintf("size '%s' must be greater than zero", s)
	}
	return bytes, ""
}

// parseRustF64 parses what Rust's f64::from_str accepts from a string of
// digits and dots: at most one dot, at least one digit.
func parseRustF64(s string) (float64, error) {
	if strings.Count(s, ".") > 1 || strings.Trim(s, ".") == "" {
		return 0, errors.New("invalid float literal")
	}
	return strconv.ParseFloat(s, 64)
}

// sizeCheck is the flag check for --max-image-size.
func sizeCheck(s string) string {
	_, msg := parseSizeBytes(s)
	return msg
}

// imageCheck is parse_image (src/cli/parsers.rs:35-43@v1.8.1), the value
// parser of --image.
func imageCheck(s string) string {
	if strings.TrimSpace(s) == "" {
		return "image reference must not be empty"
	}
	return ""
}

// archiveFileName is the name a staged archive has in its cache directory
// (src/data/image_source.rs:160@v1.8.1).
const archiveFileName = "archive.tar"

// resolveImage is resolve (src/data/image_source.rs:169-300@v1.8.1), which
// create applies to --image only (src/cli/machine.rs:2952-2962@v1.8.1): a
// registry reference is kept; a directory becomes "local-dir:<canonical
// path>"; an archive file or stdin is size-checked, hashed and staged in
// the cache as <sha256>/archive.tar, and becomes "local:<sha256>". Errors
// are returned as smolvm's message without "Error: ".
func (e *env) resolveImage(image, cacheBase string) (string, error) {
	limit := maxArchiveBytes(e.getenv)
	tooLarge := func(n uint64) error {
		// too_large, src/data/image_source.rs:330-340@v1.8.1.
		return fmt.Errorf("config operation failed: --image: image archive is %d bytes, over the %d-byte limit. Raise it with --max-image-size (e.g. --max-image-size 16GiB) or the SMOLVM_MAX_IMAGE_BYTES env var if this is a legitimate large image.", n, limit)
	}
	switch classifyImage(image) {
	case imageRegistry:
		return image, nil
	case imageDirectory:
		// resolve_directory, src/data/image_source.rs:177-194@v1.8.1.
		canon, err := filepath.EvalSymlinks(image)
		if err == nil {
			canon, err = filepath.Abs(canon)
		}
		if err != nil {
			return "", fmt.Errorf("config operation failed: --image: cannot use rootfs directory %s: %s", image, syscallText(err))
		}
		return localDirPrefix + canon, nil
	case imageArchiveStdin:
		// stage_from_stdin, src/data/image_source.rs:249-277@v1.8.1: read
		// in 1 MiB chunks, failing once the running total passes the limit.
		if err := os.MkdirAll(cacheBase, 0o755); err != nil {
			return "", err
		}
		tmp, err := os.CreateTemp(cacheBase, ".stdin-*")
		if err != nil {
			return "", err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		h := sha256.New()
		buf := make([]byte, 1<<20)
		var total uint64
		for {
			n, rerr := e.stdin.Read(buf)
			if n > 0 {
				total += uint64(n)
				if total > limit {
					return "", tooLarge(total)
				}
				h.Write(buf[:n])
				if _, err := tmp.Write(buf[:n]); err != nil {
					return "", err
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return "", rerr
			}
		}
		hash := hex.EncodeToString(h.Sum(nil))
		dst := filepath.Join(cacheBase, hash, archiveFileName)
		if _, err := os.Stat(dst); err == nil {
			return localArchivePrefix + hash, nil
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		if err := tmp.Close(); err != nil {
			return "", err
		}
		if err := os.Rename(tmp.Name(), dst); err != nil {
			return "", err
		}
		return localArchivePrefix + hash, nil
	}
	// stage_from_file, src/data/image_source.rs:210-245@v1.8.1.
	fi, err := os.Stat(image)
	if err != nil {
		return "", fmt.Errorf("config operation failed: --image: cannot read archive %s: %s", image, syscallText(err))
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("config operation failed: --image: %s is not a file", image)
	}
	if looksLikeDockerfile(image) {
		return "", fmt.Errorf("config operation failed: --image: %s looks like a Dockerfile, not an image.\n"+
			"smolvm boots images, it does not build them — build first, then pass the result:\n"+
			"  docker build -t myapp . && docker save myapp | smolvm machine run --image - -- ...", image)
	}
	if uint64(fi.Size()) > limit {
		return "", tooLarge(uint64(fi.Size()))
	}
	hash, err := hashFile(image)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(cacheBase, hash, archiveFileName)
	if _, err := os.Stat(dst); err != nil {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		// link_or_copy, src/data/image_source.rs:293-300@v1.8.1.
		if os.Link(image, dst) != nil {
			if err := copyFile(image, dst); err != nil {
				return "", err
			}
		}
	}
	return localArchivePrefix + hash, nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// imageConfig is the part of an image's OCI config smolvm's agent reads
// (crates/smolvm-agent/src/storage.rs:1283-1300@v1.8.1): Entrypoint, Cmd,
// Env, WorkingDir and User.
type imageConfig struct {
	Entrypoint []string `json:"Entrypoint"`
	Cmd        []string `json:"Cmd"`
	Env        []string `json:"Env"`
	WorkingDir string   `json:"WorkingDir"`
	User       string   `json:"User"`
}

// flattenError is an archive the guest could not flatten, in the words
// of the agent (crates/smolvm-agent/src/storage.rs:1213-1269@v1.8.1).
type flattenError struct{ msg string }

func (f *flattenError) Error() string { return f.msg }

// inspectArchive stands in for the guest's one-time flatten of a staged
// `docker save` archive at the first start
// (crates/smolvm-agent/src/storage.rs:865-901@v1.8.1): `crane export`
// must read the archive (crane is a Go program: an unreadable tar fails
// with archive/tar's error; a member it needs but cannot find fails with
// "file NAME not found in tar", the reason storage.rs:1142-1144 quotes),
// then the image config is recovered from the Config member manifest.json
// names (storage.rs:1241-1251). A gzip-compressed archive is expanded
// first, as storage.rs:938-960 does. It returns the image config.
func inspectArchive(path string) (*imageConfig, error) {
	crane := func(reason string) error {
		return &flattenError{fmt.Sprintf("crane export failed: %s (is the image a valid `docker save` / OCI archive?)", reason)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	switch {
	case len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, &flattenError{"decompressing image archive: " + err.Error()}
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, &flattenError{"decompressing image archive: " + err.Error()}
		}
	case len(data) >= 4 && bytes.Equal(data[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, errZstdArchive
	}
	members := map[string][]byte{}
	tr := tar.NewReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, crane(err.Error())
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, crane(err.Error())
		}
		members[hdr.Name] = b
	}
	manifestBytes, ok := members["manifest.json"]
	if !ok {
		return nil, crane("file manifest.json not found in tar")
	}
	var manifest []struct {
		Config string   `json:"Config"`
		Layers []string `json:"Layers"`
	}
	if err := json.Unmarshal(manifestBytes, &manifest); err != nil {
		return nil, crane(err.Error())
	}
	if len(manifest) == 0 {
		return nil, errUnemulatedArchive
	}
	for _, layer := range manifest[0].Layers {
		if _, ok := members[layer]; !ok {
			return nil, crane(fmt.Sprintf("file %s not found in tar", layer))
		}
	}
	if manifest[0].Config == "" {
		return nil, &flattenError{"archive manifest.json has no Config entry"}
	}
	configBytes, ok := members[manifest[0].Config]
	if !ok || len(configBytes) == 0 {
		return nil, &flattenError{fmt.Sprintf("could not read '%s' from archive", manifest[0].Config)}
	}
	// read_packed_image_config (storage.rs:1287-1300) reads the recovered
	// config leniently: unparsable JSON is an empty config.
	var cfg struct {
		Config imageConfig `json:"config"`
	}
	_ = json.Unmarshal(configBytes, &cfg)
	return &cfg.Config, nil
}

var (
	errZstdArchive       = errors.New("the image archive is zstd-compressed, which this stand-in cannot expand")
	errUnemulatedArchive = errors.New("the image archive's manifest.json lists no image; what crane says then was not traced")
)
