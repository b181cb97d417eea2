package smolmachines

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"github.com/bottle-dev/bottle/agents"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
	bottleguest "github.com/bottle-dev/bottle/sidecars/guest"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

// TestMain lets the test binary serve as `bottle sidecars --config FILE
// --log FILE`, which Launch starts on the host.
func TestMain(m *testing.M) {
	if len(os.Args) == 6 && os.Args[1] == "sidecars" && os.Args[2] == "--config" && os.Args[4] == "--log" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := srt.RunLogged(ctx, os.Args[3], os.Args[5], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const state = "/home/dev/.local/state/bottle/app-1a2b3c"

func sidecar(name, port, path string) plan.Sidecar {
	return plan.Sidecar{Name: name, Listen: plan.Listener{Network: "unix", Address: state + "/" + name + ".sock", URL: "http://127.0.0.1:" + port + path}}
}

func testPlan() *plan.Plan {
	egress := sidecar(plan.SidecarEgress, "3128", "")
	egress.Egress = &plan.EgressConfig{ConnectTimeout: "10s", IdleTimeout: "1h"}
	gate := sidecar(plan.SidecarGitGate, "8080", "")
	gate.GitGate = &plan.GitGateConfig{Remotes: []plan.GitRemote{{Name: "origin", URL: "git@github.com:acme/app.git"}}}
	sup := sidecar(plan.SidecarSupervise, "8765", "/mcp")
	sup.Supervise = &plan.SuperviseConfig{Timeout: "10m"}
	return &plan.Plan{
		Version:  plan.Version,
		Slug:     "app-1a2b3c",
		StateDir: state,
		Digest:   "sha256:0123",
		Backend:  plan.Backend{Kind: plan.BackendSmolmachines, Image: "images.example.com/acme/agent:1.4", Workdir: "/workspace", CPUs: 4, MemoryBytes: 8 << 30},
		Agent:    plan.Agent{Command: []string{"claude"}, Workdir: "/workspace", Env: []plan.EnvVar{{Name: "EDITOR", Value: "vi"}}},
		Egress:   plan.Egress{Sidecar: plan.SidecarEgress},
		Sidecars: []plan.Sidecar{egress, gate, sup},
		Mounts:   []plan.Mount{{HostPath: "/home/dev/src/app", Target: "/workspace"}, {HostPath: "/home/dev/notes", Target: "/notes", ReadOnly: true}},
		Secrets:  []plan.Secret{{Name: "ANTHROPIC_API_KEY", FromEnv: "ANTHROPIC_API_KEY"}, {Name: "NPM_TOKEN", FromFile: "/home/dev/.npmtoken"}},
	}
}

func testBottle() *backends.Bottle {
	return &backends.Bottle{Plan: testPlan(), Secrets: map[string]string{"ANTHROPIC_API_KEY": "sk-ant-secret", "NPM_TOKEN": "npm_secret"}}
}

// testArchive stands for the image's cached docker save archive.
const testArchive = "/home/dev/.cache/bottle/images/sha256-0123.tar"

func TestBuildSpecArgv(t *testing.T) {
	b := testBottle()
	s, err := buildSpec(b, state+"/guest", guestDir, state+"/Smolfile", testArchive, true, bottleguest.Lockdown{})
	if err != nil {
		t.Fatalf("buildSpec: %v", err)
	}
	wantCreate := []string{
		"machine", "create", "--name", "bottle-app-1a2b3c", "-s", state + "/Smolfile", "--image", testArchive,
		"--mount-socket", state + "/egress.sock:/run/bottle/egress.sock",
		"--mount-socket", state + "/git-gate.sock:/run/bottle/git-gate.sock",
		"--mount-socket", state + "/supervise.sock:/run/bottle/supervise.sock",
		"--mount-socket", state + "/control.sock:/run/bottle/control.sock",
		"--label", "dev.bottle.slug=app-1a2b3c", "--label", "dev.bottle.owner=" + backends.OwnerOf(filepath.Dir(state)), "--label", "dev.bottle.digest=sha256:0123",
	}
	if !slices.Equal(s.create, wantCreate) {
		t.Errorf("create:\n got %q\nwant %q", s.create, wantCreate)
	}
	prefix := []string{
		"machine", "exec", "--name", "bottle-app-1a2b3c", "-it",
		"--", "/opt/bottle/bottle", "guest", "--control", "/run/bottle/control.sock", "--workdir", "/workspace",
		"--forward", "127.0.0.1:3128=/run/bottle/egress.sock",
		"--forward", "127.0.0.1:8080=/run/bottle/git-gate.sock",
		"--forward", "127.0.0.1:8765=/run/bottle/supervise.sock",
		"--", "claude",
	}
	if !slices.Equal(s.exec, prefix) {
		t.Errorf("exec:\n got %q\nwant %q", s.exec, prefix)
	}
	// The agent's files, rendered at launch, are copied from the staged
	// directory into its HOME.
	b.HomeFiles = []agents.File{{Path: ".claude.json", Mode: 0o600, Data: []byte("{}")}}
	s2, err := buildSpec(b, state+"/guest", guestDir, state+"/Smolfile", testArchive, true, bottleguest.Lockdown{})
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.Index(s2.exec, "--home-seed"); i < 0 || s2.exec[i+1] != guestDir+"/agent-home" {
		t.Errorf("exec with agent files: %q, want --home-seed %s/agent-home", s2.exec, guestDir)
	}
	// The secrets go over the control channel only.
	wantSecrets := []string{"ANTHROPIC_API_KEY=sk-ant-secret", "NPM_TOKEN=npm_secret"}
	if !slices.Equal(s.secrets, wantSecrets) {
		t.Errorf("secrets for the control channel: got %q, want %q", s.secrets, wantSecrets)
	}
	for _, a := range append(slices.Clone(s.create), s.exec...) {
		if strings.Contains(a, "secret") || strings.Contains(a, "ANTHROPIC") {
			t.Errorf("argument %q names or holds a secret", a)
		}
	}
	if bytes.Contains(s.smolfile, []byte("sk-ant")) || bytes.Contains(s.smolfile, []byte("npm_secret")) {
		t.Errorf("the Smolfile holds a secret's value:\n%s", s.smolfile)
	}
}

func TestBuildSpecOneOff(t *testing.T) {
	b := testBottle()
	b.Command = []string{"sh", "-c", "exit 7"}
	b.Plan.Secrets = nil
	s, err := buildSpec(b, state+"/guest", guestDir, state+"/Smolfile", testArchive, false, bottleguest.Lockdown{})
	if err != nil {
		t.Fatalf("buildSpec: %v", err)
	}
	want := []string{
		"machine", "exec", "--name", "bottle-app-1a2b3c", "-i",
		"--", "/opt/bottle/bottle", "guest", "--control", "/run/bottle/control.sock", "--workdir", "/workspace",
		"--forward", "127.0.0.1:3128=/run/bottle/egress.sock",
		"--forward", "127.0.0.1:8080=/run/bottle/git-gate.sock",
		"--forward", "127.0.0.1:8765=/run/bottle/supervise.sock",
		"--", "sh", "-c", "exit 7",
	}
	if !slices.Equal(s.exec, want) {
		t.Errorf("exec:\n got %q\nwant %q", s.exec, want)
	}
	if len(s.secrets) != 0 {
		t.Errorf("secrets without secrets in the plan: %q", s.secrets)
	}
}

// smolfileKeys is the Smolfile as smolvm reads it, strictly.
type smolfileKeys struct {
	Image   string   `toml:"image"`
	Cmd     []string `toml:"cmd"`
	Env     []string `toml:"env"`
	Workdir string   `toml:"workdir"`
	CPUs    int      `toml:"cpus"`
	Memory  int      `toml:"memory"`
	Net     *bool    `toml:"net"`
	Volumes []string `toml:"volumes"`
}

func TestBuildSpecSmolfile(t *testing.T) {
	s, err := buildSpec(testBottle(), state+"/guest", guestDir, state+"/Smolfile", testArchive, true, bottleguest.Lockdown{})
	if err != nil {
		t.Fatalf("buildSpec: %v", err)
	}
	var sf smolfileKeys
	dec := toml.NewDecoder(bytes.NewReader(s.smolfile))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		t.Fatalf("decode the Smolfile: %v\n%s", err, s.smolfile)
	}
	if sf.Net == nil || *sf.Net {
		t.Errorf("net = %v, want false: the VM must get no network device", sf.Net)
	}
	if want := []string{"/opt/bottle/bottle", "guest", "--idle"}; !slices.Equal(sf.Cmd, want) {
		t.Errorf("cmd = %q, want %q", sf.Cmd, want)
	}
	wantVolumes := []string{"/home/dev/src/app:/workspace", "/home/dev/notes:/notes:ro", state + "/guest:/opt/bottle:ro"}
	if !slices.Equal(sf.Volumes, wantVolumes) {
		t.Errorf("volumes = %q, want %q", sf.Volumes, wantVolumes)
	}
	// A Smolfile image is a registry reference to smolvm, refused without a
	// network; the image goes on create's command line as an archive. The
	// workdir is bottle guest's to make (render.SmolWorkdir).
	if sf.Image != "" || sf.Workdir != "" || sf.CPUs != 4 || sf.Memory != 8192 {
		t.Errorf("image, workdir, cpus, memory = %q, %q, %d, %d", sf.Image, sf.Workdir, sf.CPUs, sf.Memory)
	}
	env := map[string]string{}
	for _, kv := range sf.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range map[string]string{
		"HTTPS_PROXY": "http://127.0.0.1:3128", "https_proxy": "http://127.0.0.1:3128",
		"HTTP_PROXY": "http://127.0.0.1:3128", "http_proxy": "http://127.0.0.1:3128",
		"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
		"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "url.http://127.0.0.1:8080/origin.git.insteadOf",
		"GIT_CONFIG_VALUE_0": "git@github.com:acme/app.git", "EDITOR": "vi", "MCP_TOOL_TIMEOUT": "660000",
	} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"ANTHROPIC_API_KEY", "NPM_TOKEN"} {
		if _, ok := env[k]; ok {
			t.Errorf("the secret %s is in the Smolfile's env", k)
		}
	}
}

// TestBuildSpecNoSiblings: with the proxy alone, only the sandbox's own
// loopback bypasses it.
func TestBuildSpecNoSiblings(t *testing.T) {
	b := testBottle()
	b.Plan.Sidecars = b.Plan.Sidecars[:1]
	s, err := buildSpec(b, state+"/guest", guestDir, state+"/Smolfile", testArchive, false, bottleguest.Lockdown{})
	if err != nil {
		t.Fatalf("buildSpec: %v", err)
	}
	if !bytes.Contains(s.smolfile, []byte("'NO_PROXY=127.0.0.1'")) {
		t.Errorf("NO_PROXY is not the loopback address alone:\n%s", s.smolfile)
	}
}

func TestBuildSpecRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*plan.Plan)
		want string
	}{
		"tcp listener":      {func(p *plan.Plan) { p.Sidecars[0].Listen.Network = "tcp" }, "not on a unix socket"},
		"colon socket path": {func(p *plan.Plan) { p.Sidecars[0].Listen.Address = "/tmp/a:b/egress.sock" }, "holds ':'"},
		"secret in env":     {func(p *plan.Plan) { p.Agent.Env = append(p.Agent.Env, plan.EnvVar{Name: "NPM_TOKEN", Value: "x"}) }, "secret"},
	} {
		t.Run(name, func(t *testing.T) {
			b := testBottle()
			tc.edit(b.Plan)
			_, err := buildSpec(b, state+"/guest", guestDir, state+"/Smolfile", testArchive, false, bottleguest.Lockdown{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("buildSpec: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// writeELF writes a minimal 64-bit little-endian ELF executable header for
// machine, with a PT_INTERP program header when dynamic.
func writeELF(t *testing.T, dir string, machine elf.Machine, dynamic bool, mode os.FileMode) string {
	t.Helper()
	progs := []elf.ProgType{elf.PT_LOAD}
	if dynamic {
		progs = append(progs, elf.PT_INTERP)
	}
	var buf bytes.Buffer
	hdr := elf.Header64{
		Ident:     [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(machine),
		Version:   uint32(elf.EV_CURRENT),
		Phoff:     64,
		Ehsize:    64,
		Phentsize: 56,
		Phnum:     uint16(len(progs)),
	}
	if err := binary.Write(&buf, binary.LittleEndian, hdr); err != nil {
		t.Fatal(err)
	}
	for _, pt := range progs {
		if err := binary.Write(&buf, binary.LittleEndian, elf.Prog64{Type: uint32(pt)}); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, fmt.Sprintf("elf-%s-%v", machine, dynamic))
	if err := os.WriteFile(p, buf.Bytes(), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGuestBinary(t *testing.T) {
	want, ok := elfMachines[runtime.GOARCH]
	if !ok {
		t.Skipf("smolvm does not run on %s", runtime.GOARCH)
	}
	other := elf.EM_AARCH64
	if want == other {
		other = elf.EM_X86_64
	}
	dir := t.TempDir()
	static := writeELF(t, dir, want, false, 0o755)
	dynamic := writeELF(t, dir, want, true, 0o755)
	foreign := writeELF(t, dir, other, false, 0o755)
	notExec := filepath.Join(dir, "not-exec")
	if err := os.WriteFile(notExec, mustRead(t, static), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	t.Setenv(envTestGuest, "")
	t.Setenv("BOTTLE_GUEST_BINARY", "")
	if runtime.GOOS == "linux" {
		if g, err := guestBinary(static); err != nil || g.path != static {
			t.Errorf("guestBinary(static) = %+v, %v; want it", g, err)
		}
	} else if _, err := guestBinary(static); err == nil || !strings.Contains(err.Error(), "BOTTLE_GUEST_BINARY") {
		t.Errorf("guestBinary on %s without BOTTLE_GUEST_BINARY: %v", runtime.GOOS, err)
	}
	for exe, msg := range map[string]string{
		dynamic: "dynamically linked",
		foreign: "is built for " + other.String(),
		notExec: "is not executable",
		script:  "is not one",
	} {
		t.Setenv("BOTTLE_GUEST_BINARY", exe)
		if _, err := guestBinary("/nonexistent"); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("BOTTLE_GUEST_BINARY=%s: %v, want an error containing %q", filepath.Base(exe), err, msg)
		}
	}
	t.Setenv("BOTTLE_GUEST_BINARY", static)
	if g, err := guestBinary("/nonexistent"); err != nil || g.path != static {
		t.Errorf("BOTTLE_GUEST_BINARY=static: %+v, %v", g, err)
	}
	t.Setenv(envTestGuest, script)
	if g, err := guestBinary("/nonexistent"); err != nil || g.path != script {
		t.Errorf("%s=script: %+v, %v; want it, unchecked", envTestGuest, g, err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckKVM(t *testing.T) {
	if err := checkKVM("/dev/null"); err != nil {
		t.Errorf("checkKVM(/dev/null), a read-write character device: %v", err)
	}
	file := filepath.Join(t.TempDir(), "kvm")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for dev, msg := range map[string]string{
		file:             "is not a character device",
		"/nonexistent":   "does not exist",
		"/dev/nonexist0": "enable virtualisation",
	} {
		if err := checkKVM(dev); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("checkKVM(%s): %v, want an error containing %q", dev, err, msg)
		}
	}
	if os.Geteuid() != 0 {
		if _, err := os.Stat("/dev/mem"); err == nil {
			if err := checkKVM("/dev/mem"); err == nil || !strings.Contains(err.Error(), "kvm group") {
				t.Errorf("checkKVM(/dev/mem) as a user: %v, want the kvm group hint", err)
			}
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a    string
		less bool
	}{
		{"1.8.0", false}, {"v1.8.0", false}, {"1.8.1", false}, {"1.10.0", false}, {"2.0.0", false},
		{"1.7.9", true}, {"1.5.0", true}, {"0.9.9", true}, {"1.8.0-rc1", false}, {"1.9.2+dirty", false},
	} {
		got, err := versionLess(tc.a, "1.8.0")
		if err != nil || got != tc.less {
			t.Errorf("versionLess(%q, 1.8.0) = %v, %v; want %v", tc.a, got, err, tc.less)
		}
	}
	for _, bad := range []string{"", "1.8", "one.two.three", "1.8.x", "1.-8.0"} {
		if _, err := versionLess(bad, "1.8.0"); err == nil {
			t.Errorf("versionLess(%q) accepted a version it cannot read", bad)
		}
	}
}

func TestParseList(t *testing.T) {
	raw := []byte(`[
	  {"name": "bottle-app-1a2b3c", "state": "running", "labels": {"dev.bottle.slug": "app-1a2b3c", "dev.bottle.owner": "1000-0123456789ab", "dev.bottle.digest": "sha256:0"}},
	  {"name": "bottle-nolabel", "state": "stopped", "labels": {}},
	  {"name": "mine", "state": "running", "labels": {"dev.bottle.slug": "mine"}},
	  {"name": "bottle-old-000000", "state": "created", "labels": {"dev.bottle.slug": "old-000000"}}
	]`)
	got, err := parseList(raw)
	if err != nil {
		t.Fatalf("parseList: %v", err)
	}
	want := []backends.Resource{
		{Backend: plan.BackendSmolmachines, Kind: "machine", Name: "bottle-app-1a2b3c", Slug: "app-1a2b3c", Owner: "1000-0123456789ab", Running: true},
		{Backend: plan.BackendSmolmachines, Kind: "machine", Name: "bottle-old-000000", Slug: "old-000000"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseList = %+v, want %+v", got, want)
	}
	if got, err := parseList([]byte("[]")); err != nil || len(got) != 0 {
		t.Errorf("parseList([]) = %v, %v", got, err)
	}
	if _, err := parseList([]byte("NAME STATE\n")); err == nil {
		t.Error("parseList accepted table text")
	}
}

func TestStageGuest(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bottle")
	if err := os.WriteFile(src, []byte("\x7fELF not really"), 0o700); err != nil {
		t.Fatal(err)
	}
	stage := filepath.Join(dir, "guest")
	old := syscall.Umask(0o077)
	err := stageGuest(src, stage)
	syscall.Umask(old)
	if err != nil {
		t.Fatalf("stageGuest: %v", err)
	}
	for p, mode := range map[string]os.FileMode{stage: os.ModeDir | 0o755, filepath.Join(stage, "bottle"): 0o755} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s has mode %v, want %v", p, st.Mode(), mode)
		}
	}
	if got := mustRead(t, filepath.Join(stage, "bottle")); string(got) != "\x7fELF not really" {
		t.Errorf("staged copy holds %q", got)
	}
	a, _ := os.Stat(src)
	b, _ := os.Stat(filepath.Join(stage, "bottle"))
	if os.SameFile(a, b) {
		t.Error("the staged guest binary is the host's file itself, not a copy")
	}
	entries, _ := os.ReadDir(stage)
	if len(entries) != 1 {
		t.Errorf("the shared directory holds %d entries, want the binary alone", len(entries))
	}
	if err := stageGuest(src, stage); err == nil {
		t.Error("stageGuest over an existing stage succeeded")
	}
}
