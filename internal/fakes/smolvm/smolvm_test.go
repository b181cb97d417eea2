//go:build linux

package smolvm

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/render"
)

// harness runs the stand-in in-process with its own state directory, log
// and environment.
type harness struct {
	t     *testing.T
	dir   string
	env   map[string]string
	stdin string
}

// TestMain lets the test binary serve as the stand-in's re-executed
// helpers (anchor and guest), which run /proc/self/exe.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "sockcat":
		os.Exit(sockcat(os.Args[1:]))
	case "smolvm":
		os.Exit(Main())
	}
	if os.Getenv(roleEnv) != "" {
		os.Exit(Main())
	}
	os.Exit(m.Run())
}

func newHarness(t *testing.T) *harness {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	t.Cleanup(func() { Cleanup(state) })
	return &harness{t: t, dir: dir, env: map[string]string{
		"FAKE_SMOLVM_STATE": state,
		"FAKE_SMOLVM_LOG":   filepath.Join(dir, "argv.log"),
	}}
}

func (h *harness) run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, func(k string) (string, bool) { v, ok := h.env[k]; return v, ok }, strings.NewReader(h.stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// must runs args and fails the test unless the exit status is want.
func (h *harness) must(want int, args ...string) (stdout, stderr string) {
	h.t.Helper()
	code, out, errs := h.run(args...)
	if code != want {
		h.t.Fatalf("smolvm %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
	}
	return out, errs
}

func (h *harness) write(name, content string) string {
	h.t.Helper()
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) mkdir(name string) string {
	h.t.Helper()
	p := filepath.Join(h.dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	h := newHarness(t)
	if out, _ := h.must(0, "--version"); out != "smolvm 1.8.1\n" {
		t.Errorf("--version = %q", out)
	}
	h.env["FAKE_SMOLVM_VERSION"] = "v1.6.3"
	if out, _ := h.must(0, "--version"); out != "smolvm 1.6.3\n" {
		t.Errorf("--version with FAKE_SMOLVM_VERSION=v1.6.3 = %q", out)
	}
	h.env["FAKE_SMOLVM_VERSION"] = "latest"
	h.must(3, "--version")
}

// TestLifecycle drives the command sequence the smolmachines backend uses,
// with a Smolfile from the real renderer.
func TestLifecycle(t *testing.T) {
	h := newHarness(t)
	work := h.mkdir("workspace")
	bin := h.mkdir("bin")
	p := &plan.Plan{Backend: plan.Backend{Kind: plan.BackendSmolmachines, Image: "alpine:3.20", CPUs: 2, MemoryBytes: 1 << 30, Workdir: "/workspace"}}
	sf, err := render.Smolfile(p, []string{"sh", "-c", "echo up > /workspace/up; exec sleep 1000"}, map[string]string{"FROM_SMOLFILE": "yes"},
		[]render.Volume{{Host: work, Guest: "/workspace"}, {Host: bin, Guest: "/opt/bottle", ReadOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	smolfile := h.write("Smolfile", string(sf))
	sock := filepath.Join(h.dir, "egress.sock")
	create := []string{"machine", "create", "--name", "bottle-app-1a2b", "-s", smolfile,
		"--mount-socket", sock + ":/run/bottle/egress.sock", "--label", "dev.bottle.slug=app-1a2b", "--label", "note=a=b"}

	// A registry image on a machine with net = false (the rendered
	// Smolfile's): smolvm refuses it, since the guest could never pull.
	// bottle's Smolfile names no image for that reason.
	_, errs := h.must(1, append(create, "--image", "alpine:3.20")...)
	if !strings.HasPrefix(errs, "Error: config operation failed: create machine: image 'alpine:3.20' must be pulled from a registry, but this machine has no network") {
		t.Errorf("create of a registry image without network: %q", errs)
	}
	// --image wins over the Smolfile's image; a local archive needs no network.
	img := h.imageTar("agent.tar", map[string]any{"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}})
	out, _ := h.must(0, append(create, "--image", img)...)
	if !strings.HasPrefix(out, "Created machine: bottle-app-1a2b\n  CPUs: 2, Memory: 1024 MiB\n  Mounts: 2\n") {
		t.Errorf("create output:\n%s", out)
	}
	h.must(1, "machine", "create", "--name", "bottle-app-1a2b", "-s", smolfile, "--image", img)

	out, _ = h.must(0, "machine", "ls", "--json")
	var ms []map[string]any
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	if len(ms) != 1 {
		t.Fatalf("ls --json listed %d machines:\n%s", len(ms), out)
	}
	m := ms[0]
	labels, _ := m["labels"].(map[string]any)
	if m["name"] != "bottle-app-1a2b" || m["state"] != "created" || m["network"] != false || m["image"] != "local:"+sha256File(t, img) ||
		m["mounts"] != float64(2) || m["memory_mib"] != float64(1024) || labels["dev.bottle.slug"] != "app-1a2b" || labels["note"] != "a=b" {
		t.Errorf("ls --json machine = %v", m)
	}

	h.must(1, "machine", "exec", "--name", "bottle-app-1a2b", "--", "true")
	if os.Geteuid() != 0 {
		_, errs := h.must(3, "machine", "start", "--name", "bottle-app-1a2b")
		if !strings.Contains(errs, "needs root") {
			t.Errorf("start without root: %q", errs)
		}
		t.Skip("the rest emulates the guest, which needs root")
	}
	_, errs = h.must(0, "machine", "start", "--name", "bottle-app-1a2b")
	if errs != "Starting machine 'bottle-app-1a2b' with 2 mount(s)...\n" {
		t.Errorf("start stderr = %q", errs)
	}
	waitFile(t, filepath.Join(work, "up"))
	h.must(7, "machine", "exec", "--name", "bottle-app-1a2b", "-it", "--", "sh", "-c", "exit 7")
	// bottle's Smolfile sets no workdir (render.SmolWorkdir): -w does.
	out, _ = h.must(0, "machine", "exec", "--name", "bottle-app-1a2b", "-e", "FROM_EXEC=1", "-w", "/workspace", "sh", "-c", `echo "$FROM_SMOLFILE $FROM_EXEC $(pwd)"`)
	if out != "yes 1 /workspace\n" {
		t.Errorf("exec environment = %q, want %q", out, "yes 1 /workspace\n")
	}
	h.must(0, "machine", "stop", "--name", "bottle-app-1a2b")
	h.stdin = "n\n"
	if out, _ := h.must(0, "machine", "delete", "--name", "bottle-app-1a2b"); out != "Cancelled\n" {
		t.Errorf("declined delete printed %q", out)
	}
	h.must(0, "machine", "delete", "-f", "--name", "bottle-app-1a2b")
	if out, _ := h.must(0, "machine", "ls", "--json"); out != "[]\n" {
		t.Errorf("ls --json after delete = %q", out)
	}
	h.must(1, "machine", "delete", "-f", "--name", "bottle-app-1a2b")

	log, err := os.ReadFile(h.env["FAKE_SMOLVM_LOG"])
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(log), "\n"), "\n")
	want := "smolvm " + strings.Join(create, " ") + " --image alpine:3.20"
	if lines[0] != want {
		t.Errorf("first log line = %s\nwant %s", lines[0], want)
	}
	if len(lines) != 13 {
		t.Errorf("log has %d lines, want 13:\n%s", len(lines), log)
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// waitFile waits up to ten seconds for path to exist.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s did not appear", path)
}

func TestArgvErrors(t *testing.T) {
	tests := []struct {
		name    string
		version string
		args    []string
		want    string
	}{
		{"no subcommand", "", nil, "error: 'smolvm' requires a subcommand"},
		{"unknown top", "", []string{"machines"}, "error: unrecognized subcommand 'machines'"},
		{"unknown machine sub", "", []string{"machine", "boot"}, "error: unrecognized subcommand 'boot'"},
		{"unknown flag", "", []string{"machine", "create", "--name", "a", "--privileged"}, "error: unexpected argument '--privileged' found"},
		{"bare positional", "", []string{"machine", "create", "myvm"}, "error: unexpected argument 'myvm' found"},
		{"missing value", "", []string{"machine", "create", "--name"}, "error: a value is required for '--name <NAME>' but none was supplied"},
		{"twice", "", []string{"machine", "create", "--name", "a", "-n", "b"}, "error: the argument '--name <NAME>' cannot be used multiple times"},
		{"bad cpus", "", []string{"machine", "create", "--cpus", "300"}, "error: invalid value '300' for '--cpus <N>': number too large to fit in target type"},
		{"cpus word", "", []string{"machine", "create", "--cpus", "two"}, "invalid digit found in string"},
		{"net backend", "", []string{"machine", "create", "--net-backend", "gvproxy"}, "[possible values: tsi, virtio-net]"},
		{"bool with value", "", []string{"machine", "create", "--net=true"}, "error: unexpected value 'true' for '--net' found"},
		{"label before 1.8.0", "1.7.7", []string{"machine", "create", "--name", "a", "--label", "k=v"}, "error: unexpected argument '--label' found"},
		{"mount-socket before 1.6.4", "1.6.3", []string{"machine", "create", "--mount-socket", "/a:/b"}, "error: unexpected argument '--mount-socket' found"},
		{"exec no command", "", []string{"machine", "exec", "--name", "a"}, "error: the following required arguments were not provided:\n  <COMMAND>..."},
		{"exec short name", "", []string{"machine", "exec", "-n", "a", "--", "true"}, "error: unexpected argument '-n' found"},
		{"exec detach it", "", []string{"machine", "exec", "-d", "-i", "--", "true"}, "error: the argument '--detach' cannot be used with '--interactive'"},
		{"delete no name", "", []string{"machine", "delete", "-f"}, "error: the following required arguments were not provided:\n  --name <NAME>"},
		{"ls positional", "", []string{"machine", "ls", "all"}, "error: unexpected argument 'all' found"},
		{"stop extra after dashdash", "", []string{"machine", "stop", "--", "x"}, "error: unexpected argument 'x' found"},
		{"from and smolfile", "", []string{"machine", "create", "--from", "a.smolmachine", "-s", "Smolfile"}, "error: the argument '--from <PATH>' cannot be used with '--smolfile <PATH>'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.env["FAKE_SMOLVM_VERSION"] = tc.version
			code, _, errs := h.run(tc.args...)
			if code != 2 || !strings.Contains(errs, tc.want) || !strings.Contains(errs, "\n\nUsage: smolvm") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, errs, tc.want)
			}
		})
	}
}

func TestArgvAccepted(t *testing.T) {
	h := newHarness(t)
	vol := h.mkdir("src")
	h.must(0, "machine", "create", "--name=a1", "-I", "alpine", "--cpus", "1", "--mem=512", "-v", vol+":/src:ro",
		"-e", "A=1", "-w", "/src", "--net", "--", "sleep", "infinity")
	h.must(0, "machine", "list", "-v")
	h.must(0, "machine", "status", "--name", "a1", "--json")
	needRoot(t)
	h.must(0, "vm", "start", "-na1")
	h.must(0, "machine", "exec", "--name", "a1", "-i", "-t", "true")
	h.must(0, "machine", "exec", "--name=a1", "--timeout", "30s", "--stream", "--", "true")
	h.must(0, "machine", "list", "-v")
	h.must(0, "machine", "status", "--name", "a1", "--json")
	h.must(0, "machine", "rm", "-n", "a1", "--force")
}

func TestCreateValidation(t *testing.T) {
	h := newHarness(t)
	dir := h.mkdir("d")
	file := h.write("f", "x")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"name start", []string{"--name", "-a"}, ""}, // clap does not take "-a" as a value
		{"name underscore start", []string{"--name", "_a"}, `Error: config operation failed: create machine: machine name must start with a letter or digit (got: "_a")`},
		{"name hyphen end", []string{"--name", "a-"}, "machine name cannot end with a hyphen"},
		{"name double hyphen", []string{"--name", "a--b"}, "machine name cannot contain consecutive hyphens"},
		{"name dot", []string{"--name", "a.b"}, "machine name contains invalid character: '.'"},
		{"name slash", []string{"--name", "a/b"}, "machine name cannot contain path separators"},
		{"name long", []string{"--name", strings.Repeat("a", 129)}, "machine name too long: 129 characters (max 128)"},
		{"label no equals", []string{"--name", "a", "--label", "owner"}, "Error: config operation failed: --label: expected KEY=VALUE, got 'owner'"},
		{"label empty key", []string{"--name", "a", "--label", "=x"}, "label key cannot be empty (in '=x')"},
		{"socket no colon", []string{"--name", "a", "--mount-socket", "/only-host"}, "mount-socket: expected HOST_PATH:GUEST_PATH, got '/only-host'"},
		{"socket empty", []string{"--name", "a", "--mount-socket", ":/g"}, "both HOST_PATH and GUEST_PATH are required in ':/g'"},
		{"socket relative", []string{"--name", "a", "--mount-socket", "/h:g.sock"}, "guest path 'g.sock' must be absolute"},
		{"socket separator", []string{"--name", "a", "--mount-socket", "/h:/g;x"}, "contains an unsupported character"},
		{"socket duplicate", []string{"--name", "a", "--mount-socket", "/h1:/g", "--mount-socket", "/h2:/g"}, "guest path '/g'"},
		{"zero cpus", []string{"--name", "a", "--cpus", "0"}, "CPU count must be at least 1"},
		{"tiny memory", []string{"--name", "a", "--mem", "32"}, "memory must be at least 64 MiB (got 32 MiB)"},
		{"volume missing", []string{"--name", "a", "-v", "/nonexistent-dir:/x"}, "Error: mount source not found: /nonexistent-dir"},
		{"volume file", []string{"--name", "a", "-v", file + ":/x"}, "source path on host must be a directory (virtiofs limitation)"},
		{"volume protected", []string{"--name", "a", "-v", "/etc:/x"}, "protected system path and cannot be mounted: /etc"},
		{"volume relative guest", []string{"--name", "a", "-v", dir + ":x"}, "target path on guest should be an absolute directory: x"},
		{"volume bad format", []string{"--name", "a", "-v", dir}, "invalid format '" + dir + "' (expected host:guest[:ro|:rw])"},
		{"volume duplicate", []string{"--name", "a", "-v", dir + ":/x", "-v", dir + ":/x:ro"}, "duplicate mount target: /x is specified more than once"},
		{"smolfile missing", []string{"--name", "a", "-s", filepath.Join(dir, "nope")}, "load smolfile: failed to read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := h.run(append([]string{"machine", "create"}, tc.args...)...)
			if tc.want == "" {
				if code != 2 {
					t.Errorf("exit %d, want 2; stderr %s", code, errs)
				}
				return
			}
			if code != 1 || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, errs, tc.want)
			}
		})
	}
	if out, _ := h.must(0, "machine", "ls", "--json"); out != "[]\n" {
		t.Errorf("a failed create left state behind: %s", out)
	}
}

func TestSmolfileSchema(t *testing.T) {
	bad := map[string]string{
		"unknown top key":     "image = \"alpine\"\nnet_backend = \"virtio-net\"\n",
		"unknown table key":   "[network]\nallow_hosts = [\"a\"]\ndeny_hosts = [\"b\"]\n",
		"unknown table":       "[mounts]\nx = 1\n",
		"unknown secret key":  "[secrets]\nX = { from_stor = \"typo\" }\n",
		"cpus string":         "cpus = \"4\"\n",
		"cpus out of range":   "cpus = 256\n",
		"cpus negative":       "cpus = -1\n",
		"cpus float":          "cpus = 2.5\n",
		"memory too large":    "memory = 4294967296\n",
		"net string":          "net = \"false\"\n",
		"env not array":       "env = \"A=B\"\n",
		"cmd of ints":         "cmd = [1, 2]\n",
		"volumes table":       "[volumes]\na = \"b\"\n",
		"service port range":  "[service]\nport = 70000\n",
		"duplicate key":       "cpus = 1\ncpus = 2\n",
		"not toml":            "image = \n",
		"secret two sources":  "[secrets]\nX = { from_env = \"A\", from_file = \"/b\" }\n",
		"secret no source":    "[secrets]\nX = {}\n",
		"secret relative":     "[secrets]\nX = { from_file = \"b\" }\n",
		"fork pool zero":      "cuda = true\n[fork]\npool_size = 0\n",
		"fork pool no cuda":   "[fork]\npool_size = 2\n",
		"fork vram only":      "[fork]\ncuda_vram_limit_mib = 100\n",
		"dev unknown":         "[dev]\nvolume = [\"./a:/a\"]\n",
		"health retries type": "[health]\nretries = \"3\"\n",
	}
	for name, content := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := parseSmolfile("Smolfile", []byte(content)); err == nil {
				t.Errorf("accepted:\n%s", content)
			}
		})
	}
	good := map[string]string{
		"empty": "",
		"readme": `image = "python:3.12-alpine"
net = true
cpus = 4
memory = 4096

ports = ["8000:8000"]
volumes = ["./src:/app"]
init = ["pip install -r /app/requirements.txt"]

[network]
allow_hosts = ["api.stripe.com", "pkgs.example.org"]
`,
		"every table": `image = "alpine"
entrypoint = ["/bin/sh"]
cmd = ["-c", "echo hello"]
env = ["FOO=bar"]
workdir = "/app"
cpus = 255
memory = 1024
net = false
gpu = false
gpu_vram = 4096
rosetta = false
cuda = true
auto_graph = false
docker_socket = false
storage = 20
overlay = 10

[secrets]
DB_PASSWORD = { from_env = "PGPASSWORD" }
TLS_KEY = { from_file = "/run/secrets/tls.key" }

[dev]
volumes = ["./src:/app"]
env = ["DEV=1"]
init = ["echo hello"]
workdir = "/app"
ports = ["8080:8080"]

[artifact]
cpus = 4
memory = 2048
entrypoint = ["/app"]
cmd = ["serve"]
oci_platform = "linux/amd64"

[pack]
cpus = 2

[network]
allow_hosts = ["pkgs.example.org"]
allow_cidrs = ["10.0.0.0/8"]

[health]
exec = ["curl", "-f", "http://localhost/health"]
interval = "10s"
timeout = "2s"
retries = 3
startup_grace = "20s"

[restart]
policy = "on-failure"
max_retries = 5
max_backoff = "60s"

[auth]
ssh_agent = true

[service]
port = 8080
protocol = "http"
listen = 8080

[fork]
enabled = true
pool_size = 2
cuda_vram_limit_mib = 1024
`,
	}
	for name, content := range good {
		t.Run(name, func(t *testing.T) {
			if _, err := parseSmolfile("Smolfile", []byte(content)); err != nil {
				t.Errorf("rejected: %v", err)
			}
		})
	}
}

// TestSmolfileErrorMessage checks the error a create with a bad Smolfile
// prints: smolvm's wrapping around serde's "unknown field".
func TestSmolfileErrorMessage(t *testing.T) {
	h := newHarness(t)
	sf := h.write("Smolfile", "image = \"alpine\"\n\nnet_backend = \"tsi\"\n")
	_, errs := h.must(1, "machine", "create", "--name", "a", "-s", sf)
	want := "Error: config operation failed: load smolfile: failed to parse " + sf + ": TOML parse error at line 3, column 1: unknown field `net_backend`\n"
	if errs != want {
		t.Errorf("stderr = %q\nwant     %q", errs, want)
	}
}

func TestRenderedSmolfilesParse(t *testing.T) {
	for _, name := range []string{"smolfile_full.toml", "smolfile_minimal.toml", "smolfile_hostile.toml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "render", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		sf, err := parseSmolfile(name, b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if sf.Net == nil || *sf.Net || sf.Network != nil {
			t.Errorf("%s: rendered Smolfile does not say net = false alone", name)
		}
	}
}

func TestFailInjection(t *testing.T) {
	h := newHarness(t)
	h.env["FAKE_SMOLVM_FAIL"] = "start, exec"
	h.must(0, "machine", "create", "--name", "a")
	_, errs := h.must(1, "machine", "start", "--name", "a")
	if !strings.HasPrefix(errs, "Error: kvm permission denied: ") || !strings.Contains(errs, "FAKE_SMOLVM_FAIL=start") {
		t.Errorf("injected start error = %q", errs)
	}
	// Argument errors still win over an injected failure.
	h.must(2, "machine", "start", "--bogus")
	h.env["FAKE_SMOLVM_FAIL"] = "boot"
	_, errs = h.must(3, "machine", "ls")
	if !strings.Contains(errs, `unknown step "boot"`) {
		t.Errorf("unknown step error = %q", errs)
	}
	delete(h.env, "FAKE_SMOLVM_STATE")
	h.env["FAKE_SMOLVM_FAIL"] = ""
	if _, errs := h.must(3, "machine", "ls"); !strings.Contains(errs, "FAKE_SMOLVM_STATE is not set") {
		t.Errorf("missing state error = %q", errs)
	}
}

// imageTar writes a small archive shaped like `docker save` output: a
// manifest.json naming a config blob and one layer, with cfg as the
// image config.
func (h *harness) imageTar(name string, cfg map[string]any) string {
	h.t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			h.t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			h.t.Fatal(err)
		}
	}
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	if err := lw.Close(); err != nil {
		h.t.Fatal(err)
	}
	config, err := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": cfg})
	if err != nil {
		h.t.Fatal(err)
	}
	manifest, _ := json.Marshal([]map[string]any{{"Config": "blobs/sha256/c0nf1g", "RepoTags": []string{"test:latest"}, "Layers": []string{"blobs/sha256/l4y3r"}}})
	add("blobs/sha256/c0nf1g", config)
	add("blobs/sha256/l4y3r", layer.Bytes())
	add("manifest.json", manifest)
	if err := tw.Close(); err != nil {
		h.t.Fatal(err)
	}
	return h.write(name, buf.String())
}
