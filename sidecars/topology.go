package sidecars

import (
	"errors"
	"fmt"
	"github.com/bottle-dev/bottle/agents"
	"net/netip"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/bottle-dev/bottle/plan"
)

// SandboxSocketDir is where every backend shows the sidecars' sockets to the
// sandbox: the docker backend mounts its per-bottle socket volume there
// read-only, the smolmachines backend puts smolvm's --mount-socket targets
// there.
const SandboxSocketDir = "/run/bottle"

// SocketName is the file name of a sidecar's unix socket.
func SocketName(sidecar string) string { return sidecar + ".sock" }

// Configure sets every sidecar's listener in the plan: a unix socket named
// SocketName in socketDir, the directory as the process that runs the
// sidecars sees it (the state directory on the host, or the socket
// volume's mount point in the docker bundle), and the unit's loopback URL,
// which is the same in every backend. It is the plan phase in which the
// backend decides where sidecars listen; it changes no file.
func Configure(p *plan.Plan, socketDir string) error {
	for i := range p.Sidecars {
		sc := &p.Sidecars[i]
		u, err := Get(sc.Name)
		if err != nil {
			return err
		}
		sc.Listen = plan.Listener{Network: "unix", Address: path.Join(socketDir, SocketName(sc.Name)), URL: u.URL()}
	}
	return nil
}

// Validate runs every unit's whole-plan check.
func Validate(p *plan.Plan) error {
	for _, sc := range p.Sidecars {
		u, err := Get(sc.Name)
		if err != nil {
			return err
		}
		if u.Validate != nil {
			if err := u.Validate(p, sc); err != nil {
				return err
			}
		}
	}
	return nil
}

// Forward is one sidecar as the sandbox sees it: bottle guest listens on
// Listen and relays each connection to Socket.
type Forward struct {
	Sidecar string
	Listen  netip.AddrPort
	Socket  string
}

// String is the forward as `bottle guest --forward` takes it.
func (f Forward) String() string { return f.Listen.String() + "=" + f.Socket }

// Forwards lists the plan's sidecars as bottle guest's forwards, in the
// plan's (name) order, with their sockets in the sandbox's socketDir.
func Forwards(p *plan.Plan, socketDir string) ([]Forward, error) {
	out := make([]Forward, 0, len(p.Sidecars))
	for _, sc := range p.Sidecars {
		u, err := Get(sc.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, Forward{
			Sidecar: sc.Name,
			Listen:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(u.Port)),
			Socket:  path.Join(socketDir, SocketName(sc.Name)),
		})
	}
	return out, nil
}

// GuestArgs is bottle guest's command line after the binary: the forwards,
// then the command.
func GuestArgs(fws []Forward, cmd []string) []string {
	args := []string{"guest"}
	for _, f := range fws {
		args = append(args, "--forward", f.String())
	}
	return append(append(args, "--"), cmd...)
}

// Agent returns the command the sandbox runs and its environment, built
// from the plan alone and the same for every backend: command, when set,
// is a one-off command run as given; otherwise it is the agent's command.
// The agent's provider (agents.For: the one the profile names, else the
// one whose program the command runs) adds what the agent needs to use
// the sidecars' MCP servers, to a one-off command too when it runs the
// same agent. env holds what each sidecar gives the agent (Unit.Env) and
// the provider's additions, followed by the profile's env(), which wins
// over either's variable of the same name; secrets are not in it.
func Agent(p *plan.Plan, command []string) (cmd, env []string, err error) {
	cmd, env, _, err = prepareAgent(p, command)
	return cmd, env, err
}

// prepareAgent is Agent, with the setup the provider was given.
func prepareAgent(p *plan.Plan, command []string) (cmd, env []string, setup agents.Setup, err error) {
	if len(command) > 0 {
		cmd = slices.Clone(command)
	} else {
		cmd = slices.Clone(p.Agent.Command)
	}
	setup, env, err = agentSetup(p)
	if err != nil {
		return nil, nil, setup, err
	}
	if prov := AgentProvider(p, command); prov != nil && prov.Command != nil {
		var extra []string
		cmd, extra, err = prov.Command(cmd, setup)
		if err != nil {
			return nil, nil, setup, fmt.Errorf("prepare %s: %w", prov.Name, err)
		}
		env = append(env, extra...)
	}
	for _, e := range p.Agent.Env {
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, e.Name+"=") })
		env = append(env, e.Name+"="+e.Value)
	}
	return cmd, env, setup, nil
}

// agentSetup collects what the sidecars give the agent: the MCP servers
// (in the setup) and the environment (Unit.Env).
func agentSetup(p *plan.Plan) (agents.Setup, []string, error) {
	setup := agents.Setup{Workdir: AgentWorkdir(p)}
	var env []string
	for _, sc := range p.Sidecars {
		u, err := Get(sc.Name)
		if err != nil {
			return setup, nil, err
		}
		// The unit's URL, not the plan's: it is where Forwards has bottle
		// guest listen, so the two cannot disagree.
		if u.Env != nil {
			env = append(env, u.Env(p, sc, u.URL())...)
		}
		if u.MCP != nil {
			timeout, err := u.MCP(sc)
			if err != nil {
				return setup, nil, fmt.Errorf("the %s sidecar: %w", sc.Name, err)
			}
			setup.MCP = append(setup.MCP, agents.MCPServer{Name: sc.Name, URL: u.URL(), ToolTimeout: timeout})
		}
	}
	return setup, env, nil
}

// AgentFiles returns the files the agent's provider renders into its HOME
// for this launch (none without a provider, or for a one-off command of
// another program): secrets maps each secret's name to what the agent
// gets (a placeholder for one bound to hosts).
func AgentFiles(p *plan.Plan, command []string, secrets map[string]string) ([]agents.File, error) {
	prov := AgentProvider(p, command)
	if prov == nil || prov.Files == nil {
		return nil, nil
	}
	_, env, setup, err := prepareAgent(p, command)
	if err != nil {
		return nil, err
	}
	setup.Env = map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		setup.Env[k] = v
	}
	for k, v := range secrets {
		setup.Env[k] = v
	}
	files, err := prov.Files(setup)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", prov.Name, err)
	}
	if err := agents.CheckFiles(files); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", prov.Name, err)
	}
	return files, nil
}

// AgentProvider returns the provider that prepares the command the
// sandbox runs: the agent's (the profile's provider, else the one its
// command runs), for a one-off command only when it runs that same
// agent's program; nil when there is none.
func AgentProvider(p *plan.Plan, command []string) *agents.Provider {
	prov := agents.For(p.Agent.Provider, p.Agent.Command)
	if prov == nil || len(command) == 0 {
		return prov
	}
	if agents.ForCommand(command) != prov {
		return nil
	}
	return prov
}

// AgentWorkdir is where the agent starts in the sandbox.
func AgentWorkdir(p *plan.Plan) string {
	if p.Agent.Workdir != "" {
		return p.Agent.Workdir
	}
	return p.Backend.Workdir
}

// ProxyEnv is the environment that routes the agent through an egress
// sidecar at url: HTTP(S)_PROXY in both cases, and NO_PROXY naming the
// loopback address, where the sibling sidecars are reached directly.
func ProxyEnv(url string) []string {
	const np = "127.0.0.1"
	return []string{
		"HTTPS_PROXY=" + url, "https_proxy=" + url,
		"HTTP_PROXY=" + url, "http_proxy=" + url,
		"NO_PROXY=" + np, "no_proxy=" + np,
	}
}

// CheckReserved refuses a plan that mounts anything at or under one of the
// sandbox paths a backend keeps for itself (the socket directory, where
// bottle's binary is), which a mount would shadow or join. It returns one
// error naming the mount and the line that declared it.
func CheckReserved(p *plan.Plan, reserved ...string) error {
	for _, m := range p.Mounts {
		t := path.Clean(m.Target)
		for _, r := range reserved {
			if t == r || strings.HasPrefix(t, r+"/") || strings.HasPrefix(r, t+"/") || t == "/" {
				return fmt.Errorf("mount() at %s targets %s, which overlaps %s, where bottle puts its own files in the sandbox; mount it elsewhere", m.From, m.Target, r)
			}
		}
	}
	return nil
}

// The CA bundle bottle guest writes in the sandbox when the egress sidecar
// terminates TLS for some hosts (see the egress package): SandboxCADir
// holds CABundleName, the sandbox image's own trusted roots followed by
// the bottle's CA, for clients that read one file of roots, and
// CACertName, the bottle's CA alone, for those that add extra roots to
// their own (Node.js).
const (
	SandboxCADir = "/tmp/bottle-ca"
	CABundleName = "ca-bundle.pem"
	CACertName   = "bottle-ca.pem"
)

// CAEnv is the environment that makes common clients trust the bottle's
// CA: NODE_EXTRA_CA_CERTS (Node.js, and so Claude Code and the Codex
// CLI's Node parts), SSL_CERT_FILE (OpenSSL and Go programs, Python's
// ssl module, Rust's rustls-native-certs and openssl crates),
// REQUESTS_CA_BUNDLE (Python requests), CURL_CA_BUNDLE (curl) and
// GIT_SSL_CAINFO (git).
func CAEnv() []string {
	bundle := path.Join(SandboxCADir, CABundleName)
	return []string{
		"NODE_EXTRA_CA_CERTS=" + path.Join(SandboxCADir, CACertName),
		"SSL_CERT_FILE=" + bundle,
		"REQUESTS_CA_BUNDLE=" + bundle,
		"CURL_CA_BUNDLE=" + bundle,
		"GIT_SSL_CAINFO=" + bundle,
	}
}

// SystemRootFiles are the trust stores of common systems, in the order Go's
// crypto/x509 looks for them on Linux (root_linux.go), then macOS's: the
// first that exists holds a system's trusted roots.
var SystemRootFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine, macOS
}

// HostRoots returns the host's file of trusted roots: $SSL_CERT_FILE when
// set (as Go and OpenSSL read it), else the first of SystemRootFiles that
// exists. The egress sidecar verifies intercepted hosts against it; the
// docker backend mounts it into the sidecar bundle, whose image has none.
func HostRoots(getenv func(string) string) (string, error) {
	if f := getenv("SSL_CERT_FILE"); f != "" {
		if _, err := os.Stat(f); err != nil {
			return "", fmt.Errorf("SSL_CERT_FILE: %w", err)
		}
		return f, nil
	}
	for _, f := range SystemRootFiles {
		if _, err := os.Stat(f); err == nil {
			return f, nil
		}
	}
	return "", errors.New("no file of trusted CA roots on this host (install ca-certificates, or set SSL_CERT_FILE): the egress sidecar verifies the hosts it intercepts against it")
}
