package smolmachines

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/pelletier/go-toml/v2"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/internal/netns"
	"github.com/bottle-dev/bottle/plan"
	_ "github.com/bottle-dev/bottle/sidecars/all" // git-gate and supervise
	"github.com/bottle-dev/bottle/sidecars/egress"
	bottleguest "github.com/bottle-dev/bottle/sidecars/guest"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

// isolationHelperEnv, set to 1, makes the test binary act as the helper
// named by its first argument: "guest" is `bottle guest`, "probe" runs
// netns probes and "agent" plays the agent's git and MCP traffic. The
// package's TestMain belongs to the launch tests, so the switch is made in
// init, before it runs.
const isolationHelperEnv = "BOTTLE_SMOL_ISOLATION_HELPER"

func init() {
	if os.Getenv(isolationHelperEnv) == "1" && len(os.Args) > 1 {
		os.Exit(isolationHelper(os.Args[1], os.Args[2:]))
	}
}

func isolationHelper(role string, args []string) int {
	switch role {
	case "guest":
		return guestRole(args)
	case "probe":
		return netns.ProbeMain(context.Background(), args, os.Stdout, os.Stderr)
	case "agent":
		return agentRole(args)
	}
	fmt.Fprintf(os.Stderr, "isolation helper: unknown role %q\n", role)
	return 2
}

// guestRole is `bottle guest --forward LISTEN=SOCKET ... -- CMD...`, parsed
// as the CLI does and run by bottleguest.Run.
func guestRole(args []string) int {
	var forwards []bottleguest.Forward
	var ctl *bottleguest.Control
	for len(args) > 0 && args[0] != "--" {
		if args[0] == "--control" && len(args) >= 2 {
			c, err := bottleguest.DialControl(context.Background(), args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "bottle guest:", err)
				return bottleguest.ExitSetupFailed
			}
			defer c.Close()
			ctl = c
			args = args[2:]
			continue
		}
		if args[0] == "--workdir" && len(args) >= 2 {
			// This stand-in microVM shares the host's root, where the
			// guest's /workspace must not be created: the command runs in
			// the test's directory.
			args = args[2:]
			continue
		}
		if args[0] != "--forward" || len(args) < 2 {
			fmt.Fprintf(os.Stderr, "bottle guest: unexpected argument %q\n", args[0])
			return bottleguest.ExitSetupFailed
		}
		f, err := bottleguest.ParseForward(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "bottle guest:", err)
			return bottleguest.ExitSetupFailed
		}
		forwards = append(forwards, f)
		args = args[2:]
	}
	if len(args) > 0 {
		args = args[1:]
	}
	code, err := bottleguest.Run(context.Background(), forwards, args, bottleguest.Stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, bottleguest.Lockdown{}, ctl)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bottle guest:", err)
	}
	return code
}

// tokenEnv carries the planted secret from the test to the agent.
const tokenEnv = "BOTTLE_SMOL_TEST_TOKEN"

// gitStep is one git command the agent ran.
type gitStep struct {
	OK     bool   `json:"ok"`
	Output string `json:"output"`
}

// agentReport is what the agent role found, written to stdout as JSON.
type agentReport struct {
	LsRemote   gitStep  `json:"ls_remote"`
	Clone      gitStep  `json:"clone"`
	CleanPush  gitStep  `json:"clean_push"`
	SecretPush gitStep  `json:"secret_push"`
	MCPServer  string   `json:"mcp_server"`
	MCPTools   []string `json:"mcp_tools"`
	MCPError   string   `json:"mcp_error,omitempty"`
}

// agentRole does what an agent in the microVM does with its sidecars:
// `git ls-remote`, clone and push to the upstream URL (which the
// Smolfile's insteadOf environment sends to the git gate), a clean push
// and one carrying the secret in $BOTTLE_SMOL_TEST_TOKEN, and an MCP
// session with the supervise server. Arguments: upstream URL, an empty
// work directory, the supervise MCP URL.
func agentRole(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "agent: want UPSTREAM-URL WORKDIR MCP-URL")
		return 2
	}
	upstream, dir, mcpURL := args[0], args[1], args[2]
	work := filepath.Join(dir, "work")
	git := func(dir string, args ...string) gitStep {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), gitIdentity...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			out = fmt.Appendf(out, "\n(%v)", err)
		}
		return gitStep{OK: err == nil, Output: string(out)}
	}
	var r agentReport
	r.LsRemote = git(dir, "ls-remote", upstream)
	if r.Clone = git(dir, "clone", upstream, work); r.Clone.OK {
		r.CleanPush = commitAndPush(git, work, "clean.txt", "nothing to see here\n", "clean")
		leak := fmt.Sprintf("github_token = %q\n", os.Getenv(tokenEnv))
		r.SecretPush = commitAndPush(git, work, "config.py", leak, "leak")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "isolation-test", Version: "1"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpURL}, nil)
	if err == nil {
		r.MCPServer = session.InitializeResult().ServerInfo.Name
		var tools *mcp.ListToolsResult
		if tools, err = session.ListTools(ctx, nil); err == nil {
			for _, tool := range tools.Tools {
				r.MCPTools = append(r.MCPTools, tool.Name)
			}
		}
		session.Close()
	}
	if err != nil {
		r.MCPError = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}
	return 0
}

// commitAndPush commits name with content in work and pushes HEAD to
// origin's main.
func commitAndPush(git func(string, ...string) gitStep, work, name, content, msg string) gitStep {
	if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
		return gitStep{Output: err.Error()}
	}
	for _, args := range [][]string{{"add", name}, {"commit", "-q", "-m", msg}} {
		if s := git(work, args...); !s.OK {
			return s
		}
	}
	return git(work, "push", "origin", "HEAD:main")
}

// gitIdentity makes git independent of the host's configuration and gives
// commits an author.
var gitIdentity = []string{
	"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
	"GIT_AUTHOR_NAME=agent", "GIT_AUTHOR_EMAIL=agent@example.com",
	"GIT_COMMITTER_NAME=agent", "GIT_COMMITTER_EMAIL=agent@example.com",
}

// hostGit runs git on the host for the test's own setup and checks.
func hostGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitIdentity...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// fixtureHost is the allowed host. It is under .test (RFC 6761), so no
// resolver anywhere maps it, and the egress proxy, which resolves names
// itself with Go's resolver, learns it from /etc/hosts: the sidecar process
// runs in a mount namespace of its own whose /etc/hosts is a bind mount of a
// file mapping it to 127.0.0.1 (see sidecarsInHostsNS). That keeps the real
// resolver path, leaves the host's files alone, and works as root, as this
// test runs anyway. Other ways were worse: the proxy's resolver is not
// reachable from this package, and "localhost" names are refused by
// plan.NormalizeHost (single label) or not resolved by Go with the trailing
// dot the proxy adds (it reads single-label /etc/hosts entries only without
// one).
const fixtureHost = "fixtures.bottle.test"

// deniedHost has no rule.
const deniedHost = "denied.bottle.test"

// sidecarsInHostsNS is the executable handed to srt.Launch in place of
// bottle: it runs `<test binary> sidecars --config FILE --log FILE` (this
// package's TestMain) in a new mount namespace, private, whose /etc/hosts is
// $BOTTLE_SMOL_TEST_HOSTS. Every exec keeps the pid, so Launch's pid,
// process group and ready-file checks see the sidecar process itself.
const sidecarsInHostsNS = `#!/bin/sh
exec unshare --mount --propagation private -- sh -c 'mount --bind "$BOTTLE_SMOL_TEST_HOSTS" /etc/hosts && exec "$BOTTLE_SMOL_TEST_EXE" "$@"' sidecars "$@"
`

// vmScript turns a network namespace with only lo into what a smolvm guest
// with net = false sees of the host: in a new, private mount namespace, a
// fresh /run holds each sidecar socket at its guest path (GUEST=HOST
// arguments, up to "--", bind-mounted as smolvm's --mount-socket bridges
// them), and each directory up to the next "--" (the state directory, the
// upstream repository) is hidden under an empty tmpfs, since the microVM
// shares neither. Then it becomes the rest of its arguments.
const vmScript = `set -e
mount -t tmpfs -o mode=0755 bottle-run /run
while [ "$1" != "--" ]; do
	guest=${1%%=*} host=${1#*=}
	mkdir -p "${guest%/*}"
	: > "$guest"
	mount --bind "$host" "$guest"
	shift
done
shift
while [ "$1" != "--" ]; do
	mount -t tmpfs -o mode=0700 bottle-hidden "$1"
	shift
done
shift
exec "$@"`

// randomAlnum returns n random letters and digits.
func randomAlnum(t *testing.T, n int) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// serveHTTP serves body over HTTP on ln until the test ends.
func serveHTTP(t *testing.T, ln net.Listener, body string) {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// hostListeners opens listeners for host services other than the fixture
// that the guest must not reach: [::1], an abstract unix socket (abstract
// names belong to a network namespace) and the host's LAN addresses. A
// service the host cannot offer is logged and left out.
func hostListeners(t *testing.T) []net.Listener {
	t.Helper()
	type spec struct{ network, address string }
	specs := []spec{{"tcp6", "[::1]:0"}, {"unix", "@bottle-smol-isolation-" + randomAlnum(t, 12)}}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.IsGlobalUnicast() {
				specs = append(specs, spec{"tcp", net.JoinHostPort(ipnet.IP.String(), "0")})
			}
		}
	}
	var lns []net.Listener
	for _, s := range specs {
		ln, err := net.Listen(s.network, s.address)
		if err != nil {
			t.Logf("no host service on %s %s: %v", s.network, s.address, err)
			continue
		}
		lns = append(lns, ln)
	}
	return lns
}

// isolationPlan is a smolmachines plan with the three sidecars on unix
// sockets in state, an egress rule for the fixture's name and port, and
// the git gate fronting upstream as remote origin.
func isolationPlan(state string, fixturePort int, upstream string) *plan.Plan {
	sc := func(name, port, path string) plan.Sidecar {
		return plan.Sidecar{Name: name, Listen: plan.Listener{Network: "unix", Address: filepath.Join(state, name+".sock"), URL: "http://127.0.0.1:" + port + path}}
	}
	eg := sc(plan.SidecarEgress, "3128", "")
	eg.Egress = &plan.EgressConfig{ConnectTimeout: "5s", IdleTimeout: "1m"}
	gate := sc(plan.SidecarGitGate, "8080", "")
	gate.GitGate = &plan.GitGateConfig{Remotes: []plan.GitRemote{{Name: "origin", URL: upstream}}}
	sup := sc(plan.SidecarSupervise, "8765", "/mcp")
	sup.Supervise = &plan.SuperviseConfig{Timeout: "1m"}
	return &plan.Plan{
		Version:  plan.Version,
		Slug:     "isolation-0a1b2c",
		StateDir: state,
		Digest:   "sha256:0123",
		Backend:  plan.Backend{Kind: plan.BackendSmolmachines, Image: "images.example.com/acme/agent:1.4", Workdir: "/workspace", CPUs: 1, MemoryBytes: 1 << 30},
		Agent:    plan.Agent{Command: []string{"sh"}, Workdir: "/workspace"},
		Egress: plan.Egress{Sidecar: plan.SidecarEgress, Rules: []plan.Rule{
			{Host: fixtureHost, Ports: []int{fixturePort}, AllowPrivate: true, From: "//isolation.star:3:1"},
		}},
		Sidecars: []plan.Sidecar{eg, gate, sup},
		// The agent's token reaches it over the control channel.
		Secrets: []plan.Secret{{Name: tokenEnv, FromEnv: tokenEnv}},
	}
}

// vm runs commands as the backend would in the microVM, in a network
// namespace standing in for it.
type vm struct {
	b *backends.Bottle
	// guestMount holds the guest binary, "bottle", a link to this test
	// binary.
	guestMount string
	// mountArgs are vmScript's arguments before the command.
	mountArgs []string
	// ctl serves the control channel of the last command.
	ctl *bottleguest.ControlServer
}

// command returns the argv that runs cmd in the stand-in microVM, as
// `bottle guest` started by the backend's own `machine exec` line, and the
// environment the backend's Smolfile gives it. The control channel is
// served as Launch serves it, with secrets as the agent's secrets.
func (v *vm) command(t *testing.T, secrets map[string]string, cmd ...string) (argv, env []string) {
	t.Helper()
	b := *v.b
	b.Command = cmd
	b.Secrets = secrets
	spec, err := buildSpec(&b, v.guestMount, v.guestMount, filepath.Join(v.guestMount, smolfileName), "/images/agent.tar", false, bottleguest.Lockdown{})
	if err != nil {
		t.Fatalf("buildSpec: %v", err)
	}
	if v.ctl != nil {
		v.ctl.Close()
	}
	if v.ctl, err = bottleguest.ListenControl(spec.control, spec.secrets); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.ctl.Close() })
	// smolvm runs what follows the first "--" of `machine exec`.
	i := slices.Index(spec.exec, "--")
	if i < 0 || len(spec.exec) < i+3 || spec.exec[i+1] != filepath.Join(v.guestMount, guestBinaryName) || spec.exec[i+2] != "guest" {
		t.Fatalf("machine exec does not run bottle guest: %q", spec.exec)
	}
	var sf struct {
		Env []string `toml:"env"`
	}
	if err := toml.Unmarshal(spec.smolfile, &sf); err != nil {
		t.Fatalf("read the Smolfile's env: %v", err)
	}
	argv = append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", vmScript, "vm"}, v.mountArgs...)
	argv = append(argv, spec.exec[i+1:]...)
	env = append(sf.Env, isolationHelperEnv+"=1")
	return argv, env
}

// TestIsolationWithRealSidecars is the smolmachines backend's escape matrix
// with the real sidecars. They run on the host as the backend runs them
// (backends.SidecarConfig, srt.Launch), on unix sockets in the state
// directory; a fresh network namespace with only lo stands in for the
// microVM, which has no network device. Inside it the backend's own
// `machine exec` command line runs `bottle guest`, relaying 127.0.0.1 ports
// to the sockets mounted at their guest paths, with the Smolfile's
// environment. From there every direct probe fails while the proxy serves
// the allowed host and refuses others with its 403 text, the git gate
// serves fetches and refuses a push carrying a secret while a clean push
// arrives upstream, and the supervise MCP server answers.
func TestIsolationWithRealSidecars(t *testing.T) {
	netns.Require(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("the git gate needs git on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	state := filepath.Join(root, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}

	// The allowed host's server, on the host's loopback.
	fixtureBody := "fixture " + randomAlnum(t, 16)
	fixtureLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveHTTP(t, fixtureLn, fixtureBody)
	fixturePort := fixtureLn.Addr().(*net.TCPAddr).Port

	// The upstream repository, with one commit on main.
	upstreamDir := filepath.Join(root, "upstream")
	upstream := filepath.Join(upstreamDir, "app.git")
	hostGit(t, root, "init", "-q", "--bare", "--initial-branch=main", upstream)
	seed := filepath.Join(root, "seed")
	hostGit(t, root, "clone", "-q", upstream, seed)
	if err := os.WriteFile(filepath.Join(seed, "README"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostGit(t, seed, "add", "README")
	hostGit(t, seed, "commit", "-q", "-m", "seed")
	hostGit(t, seed, "push", "-q", "origin", "HEAD:main")
	seedHead := hostGit(t, upstream, "rev-parse", "main")
	upstreamURL := "file://" + upstream

	p := isolationPlan(state, fixturePort, upstreamURL)

	// The sidecars, as Launch renders and starts them.
	cfg, err := srt.Render(p, state, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(state, sidecarConfigFile)
	if err := srt.WriteConfig(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	// The engine hands the egress sidecar the secrets' values at launch;
	// the agent's own token is made later, so the sidecar gets another.
	if _, err := egress.PrepareSecrets(p, map[string]string{tokenEnv: "unused-" + randomAlnum(t, 24)}, func(name string, data []byte) error {
		return os.WriteFile(filepath.Join(state, name), data, 0o600)
	}); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(root, "hosts")
	wrapper := filepath.Join(root, "sidecars-in-hosts-ns")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n127.0.0.1 "+fixtureHost+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrapper, []byte(sidecarsInHostsNS), 0o755); err != nil {
		t.Fatal(err)
	}
	h, err := srt.Launch(ctx, srt.LaunchOptions{
		Executable: wrapper, ConfigPath: cfgPath, StateDir: state, ReadyTimeout: 30 * time.Second,
		Env: append(os.Environ(), "BOTTLE_SMOL_TEST_HOSTS="+hosts, "BOTTLE_SMOL_TEST_EXE="+exe),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Stop(5 * time.Second); err != nil {
			t.Errorf("stop the sidecars: %v", err)
		}
	})

	// The stand-in microVM.
	guestMount := filepath.Join(root, "guest")
	if err := os.Mkdir(guestMount, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(guestMount, guestBinaryName)); err != nil {
		t.Fatal(err)
	}
	fws, sockets, err := forwards(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(fws) != 3 {
		t.Fatalf("forwards: %d sidecars, want 3", len(fws))
	}
	v := &vm{b: &backends.Bottle{Plan: p}, guestMount: guestMount}
	for i, f := range fws {
		v.mountArgs = append(v.mountArgs, f.Socket+"="+sockets[i])
	}
	// The control socket, which each command's ListenControl creates
	// again, is bound by vmScript like a sidecar's.
	v.mountArgs = append(v.mountArgs, guestControlSocket+"="+filepath.Join(state, controlSocketName))
	v.mountArgs = append(v.mountArgs, "--", state, upstreamDir, "--")

	t.Run("network", func(t *testing.T) {
		testGuestNetwork(t, ctx, v, exe, fixturePort, fixtureBody, fixtureLn)
	})
	t.Run("git and supervise", func(t *testing.T) {
		testGuestAgent(t, ctx, v, exe, root, upstream, upstreamURL, seedHead, p)
	})
}

// testGuestNetwork runs the probes in the stand-in microVM.
func testGuestNetwork(t *testing.T, ctx context.Context, v *vm, exe string, fixturePort int, fixtureBody string, fixtureLn net.Listener) {
	// Direct probes: the outside world (never run from the host: that
	// would send packets off this machine) and services of this host, each
	// first shown reachable from outside so that a failure inside is the
	// namespace's doing.
	direct := netns.OutsideProbes()
	fixtureAddr := fixtureLn.Addr().String()
	hostProbes := []netns.Probe{
		{Kind: netns.ProbeTCP, Target: fixtureAddr},
		{Kind: netns.ProbeHTTP, Target: "http://" + fixtureAddr + "/"},
	}
	for _, ln := range hostListeners(t) {
		serveHTTP(t, ln, "host service")
		kind := netns.ProbeTCP
		if ln.Addr().Network() == "unix" {
			kind = netns.ProbeUnix
		}
		hostProbes = append(hostProbes, netns.Probe{Kind: kind, Target: ln.Addr().String()})
	}
	for _, p := range hostProbes {
		if o := p.Run(ctx); !o.Reached {
			t.Fatalf("control: %s is not reachable from outside the namespace either: %s", p, o.Detail)
		}
	}
	direct = append(direct, hostProbes...)

	// Through the relays.
	const proxy = "http://127.0.0.1:3128"
	viaProxy := func(target string) netns.Probe {
		return netns.Probe{Kind: netns.ProbeHTTPProxy, Proxy: proxy, Target: target}
	}
	port := strconv.Itoa(fixturePort)
	otherPort := strconv.Itoa(fixturePort%65535 + 1)
	// denial is the start of the proxy's 403 body: the whole first line
	// when the reason is complete, as for a host without a rule.
	denial := func(hostPort, reason string, complete bool) string {
		s := "bottle: egress to " + hostPort + " denied: " + reason
		if complete {
			s += "\n"
		}
		return s
	}
	type check struct {
		probe netns.Probe
		want  func(netns.Outcome) error
	}
	status := func(code int, prefix string) func(netns.Outcome) error {
		return func(o netns.Outcome) error {
			if !o.Reached || o.Status != code || !strings.HasPrefix(o.Body, prefix) {
				return fmt.Errorf("want status %d with a body starting %q", code, prefix)
			}
			return nil
		}
	}
	through := []check{
		// The allowed host, by name, through the proxy.
		{viaProxy("http://" + fixtureHost + ":" + port + "/"), func(o netns.Outcome) error {
			if !o.Reached || o.Status != http.StatusOK || o.Body != fixtureBody {
				return fmt.Errorf("want status 200 with body %q", fixtureBody)
			}
			return nil
		}},
		// Refusals, with the proxy's text.
		{viaProxy("http://" + deniedHost + ":" + port + "/"), status(http.StatusForbidden, denial(deniedHost+":"+port, egress.ReasonNoRule, true))},
		{viaProxy("http://" + fixtureHost + ":" + otherPort + "/"), status(http.StatusForbidden, denial(fixtureHost+":"+otherPort, egress.ReasonPort, false))},
		{viaProxy("http://" + fixtureAddr + "/"), status(http.StatusForbidden, denial(fixtureAddr, egress.ReasonIPLiteral, true))},
		{viaProxy("https://" + deniedHost + "/"), func(o netns.Outcome) error {
			if o.Reached {
				return errors.New("a CONNECT to a host without a rule was let through")
			}
			return nil
		}},
		// The git gate and the supervise server answer on their relays.
		{netns.Probe{Kind: netns.ProbeHTTP, Target: "http://127.0.0.1:8080/origin.git/info/refs?service=git-upload-pack"},
			func(o netns.Outcome) error {
				if !o.Reached || o.Status != http.StatusOK || !strings.Contains(o.Body, "# service=git-upload-pack") {
					return errors.New("want the git gate's ref advertisement (200)")
				}
				return nil
			}},
		{netns.Probe{Kind: netns.ProbeTCP, Target: "127.0.0.1:8765"}, func(o netns.Outcome) error {
			if !o.Reached {
				return errors.New("the supervise relay does not accept connections")
			}
			return nil
		}},
	}
	probes := slices.Clone(direct)
	for _, c := range through {
		probes = append(probes, c.probe)
	}
	argv, env := v.command(t, nil, exe, "probe")
	outcomes, err := netns.RunProbes(ctx, env, argv, probes)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outcomes {
		t.Logf("inside: %-70s reached=%-5t status=%d %s", o.Probe, o.Reached, o.Status, o.Detail)
		if i < len(direct) {
			if o.Reached {
				t.Errorf("ESCAPE: %s is reachable from inside the microVM (%s)", o.Probe, o.Detail)
			}
			continue
		}
		if err := through[i-len(direct)].want(o); err != nil {
			t.Errorf("%s: %v; got reached=%t status=%d body %q (%s)", o.Probe, err, o.Reached, o.Status, o.Body, o.Detail)
		}
	}
}

// testGuestAgent runs the agent role in the stand-in microVM and checks
// what arrived upstream.
func testGuestAgent(t *testing.T, ctx context.Context, v *vm, exe, root, upstream, upstreamURL, seedHead string, p *plan.Plan) {
	// A GitHub personal access token, made now so that no such string
	// is in the source.
	token := "ghp_" + randomAlnum(t, 36)
	workDir := filepath.Join(root, "agent")
	if err := os.Mkdir(workDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var mcpURL string
	for _, sc := range p.Sidecars {
		if sc.Supervise != nil {
			mcpURL = sc.Listen.URL
		}
	}
	argv, env := v.command(t, map[string]string{tokenEnv: token}, exe, "agent", upstreamURL, workDir, mcpURL)
	res, err := netns.Run(ctx, env, argv...)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("the agent exited %d:\n%s%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	var r agentReport
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		t.Fatalf("agent report: %v\n%s\n%s", err, res.Stdout, res.Stderr)
	}
	t.Logf("inside: git ls-remote: %s", r.LsRemote.Output)
	t.Logf("inside: clean push:\n%s", r.CleanPush.Output)
	t.Logf("inside: secret push:\n%s", r.SecretPush.Output)

	if !r.LsRemote.OK || !strings.Contains(r.LsRemote.Output, seedHead+"\trefs/heads/main") {
		t.Errorf("git ls-remote %s through the gate does not list upstream's main (%s):\n%s", upstreamURL, seedHead, r.LsRemote.Output)
	}
	if !r.Clone.OK {
		t.Fatalf("git clone through the gate failed:\n%s", r.Clone.Output)
	}
	if !r.CleanPush.OK {
		t.Errorf("the clean push failed:\n%s", r.CleanPush.Output)
	}
	if r.SecretPush.OK {
		t.Errorf("the push carrying a secret was accepted:\n%s", r.SecretPush.Output)
	}
	if out := r.SecretPush.Output; !strings.Contains(out, "remote:") || !strings.Contains(out, "github-pat") || !strings.Contains(out, "config.py") {
		t.Errorf("the refusal does not name the rule and file in remote: lines:\n%s", out)
	}
	if strings.Contains(r.SecretPush.Output, token) {
		t.Errorf("the refusal shows the secret:\n%s", r.SecretPush.Output)
	}
	if msg := hostGit(t, upstream, "log", "-1", "--format=%s", "main"); msg != "clean" {
		t.Errorf("upstream's main is at %q, want the clean commit", msg)
	}
	if all := hostGit(t, upstream, "cat-file", "--batch-all-objects", "--batch"); strings.Contains(all, token) {
		t.Errorf("the secret reached upstream")
	}

	if r.MCPError != "" {
		t.Errorf("MCP session with the supervise server through its relay: %s", r.MCPError)
	}
	if r.MCPServer != "bottle-supervise" || !slices.Contains(r.MCPTools, "request_egress") {
		t.Errorf("the supervise server through the relay: server %q, tools %q; want bottle-supervise with request_egress", r.MCPServer, r.MCPTools)
	}
}
