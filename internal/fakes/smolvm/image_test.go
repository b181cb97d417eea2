//go:build linux

package smolvm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const noNetwork = "Error: config operation failed: create machine: image 'alpine:3.20' must be pulled from a registry, but this machine has no network, so the pull can never succeed. Add --net (or publish a port with -p, or set an egress policy with --allow-cidr/--allow-host). To keep the machine network-isolated, supply the image locally instead: `docker save alpine:3.20 | smolvm machine create --image - ...`\n"

func (h *harness) image(name string) any {
	h.t.Helper()
	out, _ := h.must(0, "machine", "status", "--name", name, "--json")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		h.t.Fatal(err)
	}
	return m["image"]
}

func TestCreateRegistryImageNeedsNetwork(t *testing.T) {
	h := newHarness(t)
	netless := h.write("netless.smolfile", "image = \"alpine:3.20\"\nnet = false\n")
	netful := h.write("netful.smolfile", "image = \"alpine:3.20\"\nnet = true\n")
	hosts := h.write("hosts.smolfile", "image = \"alpine:3.20\"\n[network]\nallow_cidrs = [\"10.0.0.0/8\"]\n")
	ports := h.write("ports.smolfile", "image = \"alpine:3.20\"\nports = [\"8080:80\"]\n")
	for _, args := range [][]string{
		{"--image", "alpine:3.20"},
		{"-s", netless},
		{"-I", "alpine:3.20", "-s", netless},
	} {
		_, errs := h.must(1, append([]string{"machine", "create", "--name", "a"}, args...)...)
		if errs != noNetwork {
			t.Errorf("create %v:\n%q\nwant\n%q", args, errs, noNetwork)
		}
	}
	for i, args := range [][]string{
		{"--image", "alpine:3.20", "--net"},
		{"--image", "alpine:3.20", "-p", "8080:80"},
		{"--image", "alpine:3.20", "--allow-cidr", "10.0.0.0/8"},
		{"--image", "alpine:3.20", "--outbound-localhost-only"},
		{"--image", "alpine:3.20", "--dns", "10.0.0.53"},
		{"-s", netful},
		{"-s", hosts},
		{"-s", ports},
		{"-s", netless, "--net"},
		{}, // no image at all
	} {
		name := "ok" + string(rune('a'+i))
		h.must(0, append([]string{"machine", "create", "--name", name}, args...)...)
	}
	// A local --image needs no network and wins over the Smolfile's image.
	img := h.imageTar("img.tar", nil)
	h.must(0, "machine", "create", "--name", "local", "-s", netless, "--image", img)
	if got, want := h.image("local"), "local:"+sha256File(t, img); got != want {
		t.Errorf("image = %v, want %s", got, want)
	}
	// A Smolfile image that names a local path is not a registry reference.
	h.must(0, "machine", "create", "--name", "sfpath", "-s", h.write("path.smolfile", "image = \"./img.tar\"\nnet = false\n"))
	if got := h.image("sfpath"); got != "./img.tar" {
		t.Errorf("Smolfile path image = %v", got)
	}
}

func TestCreateLocalImage(t *testing.T) {
	h := newHarness(t)
	img := h.imageTar("img.tar", nil)
	dir := h.mkdir("rootfs")
	h.write("Dockerfile", "FROM alpine\n")
	h.write("recipe", "# build\n\nARG V=1\nFROM alpine\n")
	big := h.write("big.tar", strings.Repeat("x", 2048))
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(cwd, img)
	if err != nil {
		t.Fatal(err)
	}

	h.must(0, "machine", "create", "--name", "a", "--image", img)
	if got := h.image("a"); got != "local:"+sha256File(t, img) {
		t.Errorf("archive image = %v", got)
	}
	staged := filepath.Join(h.env["FAKE_SMOLVM_STATE"], "image-archives", sha256File(t, img), "archive.tar")
	if _, err := os.Stat(staged); err != nil {
		t.Errorf("archive not staged: %v", err)
	}
	h.must(0, "machine", "create", "--name", "b", "--image", dir+"/.")
	if got := h.image("b"); got != "local-dir:"+dir {
		t.Errorf("directory image = %v, want local-dir:%s", got, dir)
	}
	h.must(0, "machine", "create", "--name", "c", "--image", "./"+rel)
	h.stdin = mustRead(t, img)
	h.must(0, "machine", "create", "--name", "d", "--image", "-")
	if got := h.image("d"); got != "local:"+sha256File(t, img) {
		t.Errorf("stdin image = %v", got)
	}
	h.stdin = ""

	tests := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"missing", []string{"--image", "/nonexistent/img.tar"}, "", "Error: config operation failed: --image: cannot read archive /nonexistent/img.tar: No such file or directory (os error 2)\n"},
		{"missing relative", []string{"--image", "./nope"}, "", "Error: config operation failed: --image: cannot read archive ./nope: No such file or directory (os error 2)\n"},
		{"not a file", []string{"--image", "/dev/null"}, "", "Error: config operation failed: --image: /dev/null is not a file\n"},
		{"dockerfile by name", []string{"--image", filepath.Join(h.dir, "Dockerfile")}, "", "Error: config operation failed: --image: " + filepath.Join(h.dir, "Dockerfile") + " looks like a Dockerfile, not an image.\nsmolvm boots images, it does not build them — build first, then pass the result:\n  docker build -t myapp . && docker save myapp | smolvm machine run --image - -- ...\n"},
		{"dockerfile by content", []string{"--image", filepath.Join(h.dir, "recipe")}, "", "looks like a Dockerfile, not an image."},
		{"over the env limit", []string{"--image", big}, "1024", "Error: config operation failed: --image: image archive is 2048 bytes, over the 1024-byte limit. Raise it with --max-image-size (e.g. --max-image-size 16GiB) or the SMOLVM_MAX_IMAGE_BYTES env var if this is a legitimate large image.\n"},
		{"over the flag limit", []string{"--image", big, "--max-image-size", "1K"}, "", "image archive is 2048 bytes, over the 1024-byte limit."},
		{"flag beats env", []string{"--image", big, "--max-image-size", "1.5k"}, "4096", "image archive is 2048 bytes, over the 1536-byte limit."},
		{"stdin over the limit", []string{"--image", "-"}, "10", "image archive is 4608 bytes, over the 10-byte limit."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.env["SMOLVM_MAX_IMAGE_BYTES"] = tc.env
			defer delete(h.env, "SMOLVM_MAX_IMAGE_BYTES")
			if tc.name == "stdin over the limit" {
				h.stdin = mustRead(t, img)
				defer func() { h.stdin = "" }()
			}
			_, errs := h.must(1, append([]string{"machine", "create", "--name", "x"}, tc.args...)...)
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr:\n%q\nwant %q", errs, tc.want)
			}
		})
	}
	// The limit passes at equality; an invalid env value means the default.
	h.env["SMOLVM_MAX_IMAGE_BYTES"] = "2048"
	h.must(0, "machine", "create", "--name", "e", "--image", big)
	h.env["SMOLVM_MAX_IMAGE_BYTES"] = "0"
	h.must(0, "machine", "create", "--name", "f", "--image", big)

	for _, v := range []string{"", "abc", "10X", "0", "1.2.3"} {
		_, errs := h.must(2, "machine", "create", "--name", "g", "--image", big, "--max-image-size", v)
		if !strings.Contains(errs, "for '--max-image-size <SIZE>'") {
			t.Errorf("--max-image-size %q: %q", v, errs)
		}
	}
	_, errs := h.must(2, "machine", "create", "--name", "g", "--image", " ")
	if !strings.Contains(errs, "error: invalid value ' ' for '--image <IMAGE>': image reference must not be empty") {
		t.Errorf("empty --image: %q", errs)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseSizeBytes(t *testing.T) {
	good := map[string]uint64{
		"1024": 1024, "16GiB": 16 << 30, "16G": 16 << 30, "512M": 512 << 20, "2k": 2048, "1.5G": 3 << 29,
		"8 GiB": 8 << 30, " 3kb ": 3072, "1t": 1 << 40, "7B": 7, "0.5K": 512,
	}
	for in, want := range good {
		if got, msg := parseSizeBytes(in); got != want || msg != "" {
			t.Errorf("parseSizeBytes(%q) = %d, %q; want %d", in, got, msg, want)
		}
	}
	bad := map[string]string{
		"":    "size must not be empty",
		"0":   "size '0' must be greater than zero",
		"abc": "'abc' is not a valid size (expected a number, optional K/M/G/T)",
		"10X": "invalid size unit 'x' in '10X' (use K, M, G, or T)",
		".":   "'.' is not a valid size (expected a number, optional K/M/G/T)",
		"0.1": "size '0.1' must be greater than zero",
	}
	for in, want := range bad {
		if _, msg := parseSizeBytes(in); msg != want {
			t.Errorf("parseSizeBytes(%q) error = %q, want %q", in, msg, want)
		}
	}
}

func TestClassifyImage(t *testing.T) {
	h := newHarness(t)
	dir := h.mkdir("d")
	for in, want := range map[string]imageKind{
		"alpine": imageRegistry, "alpine:3.20": imageRegistry, "ghcr.io/o/r:v1": imageRegistry,
		"localhost:5000/x:dev": imageRegistry, "-": imageArchiveStdin, "image.tar": imageArchiveFile,
		"image.tar.gz": imageArchiveFile, "image.tgz": imageArchiveFile, "./img": imageArchiveFile,
		"../up/img": imageArchiveFile, "/abs/img": imageArchiveFile, dir: imageDirectory,
	} {
		if got := classifyImage(in); got != want {
			t.Errorf("classifyImage(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestStartArchiveCheck checks the flatten a local archive gets at the
// first start: one crane cannot read fails the start with the agent's
// message.
func TestStartArchiveCheck(t *testing.T) {
	needRoot(t)
	h := newHarness(t)
	h.must(0, "machine", "create", "--name", "m", "--image", h.write("junk.tar", strings.Repeat("junk", 300)))
	_, errs := h.must(1, "machine", "start", "--name", "m")
	if !strings.HasSuffix(errs, "Error: agent operation failed: start background CMD: agent operation failed: run container detached: crane export failed: archive/tar: invalid tar header (is the image a valid `docker save` / OCI archive?)\n") {
		t.Errorf("start of a non-tar: %q", errs)
	}
	h.must(0, "machine", "create", "--name", "n", "--image", h.write("empty.tar", string(make([]byte, 1024))), "--init", "true")
	_, errs = h.must(1, "machine", "start", "--name", "n")
	if !strings.HasSuffix(errs, "Error: agent operation failed: run interactive: crane export failed: file manifest.json not found in tar (is the image a valid `docker save` / OCI archive?)\n") {
		t.Errorf("start of a tar without manifest.json: %q", errs)
	}
	if out, _ := h.must(0, "machine", "status", "--name", "n"); out != "Machine 'n': created\n" {
		t.Errorf("after a failed start: %q", out)
	}
}

// TestStartInit checks the init commands of a first boot.
func TestStartInit(t *testing.T) {
	needRoot(t)
	h := newHarness(t)
	ws := h.mkdir("ws")
	img := h.imageTar("img.tar", sleeper)
	h.must(0, "machine", "create", "--name", "m", "--image", img, "-v", ws+":/ws", "-e", "V=1",
		"--init", "echo $V$TERM >> /ws/init", "--init", "echo second >> /ws/init")
	out, _ := h.must(0, "machine", "start", "--name", "m")
	if out != "Running 2 init command(s)...\nMachine 'm' running (PID: 4242)\n" {
		t.Errorf("start output %q", out)
	}
	if got := mustRead(t, filepath.Join(ws, "init")); got != "1xterm-256color\nsecond\n" {
		t.Errorf("init ran %q", got)
	}
	h.must(0, "machine", "stop", "--name", "m")
	h.must(0, "machine", "start", "--name", "m")
	if got := mustRead(t, filepath.Join(ws, "init")); got != "1xterm-256color\nsecond\n" {
		t.Errorf("init ran again on the second start: %q", got)
	}
	h.must(0, "machine", "create", "--name", "f", "--image", img, "--init", "exit 3")
	_, errs := h.must(1, "machine", "start", "--name", "f")
	if !strings.HasSuffix(errs, "Error: agent operation failed: init: init[0] failed (exit 3)\n") {
		t.Errorf("failing init: %q", errs)
	}
}
