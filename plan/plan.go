// Package plan defines bottle's typed, validated plan: everything a profile
// declares, fully resolved, in the form every later phase (prepare,
// preflight, launch, cleanup) consumes and `bottle start --dry-run` prints.
//
// The package imports nothing else of bottle. Its JSON form is versioned
// (Version) and documented in docs/plan.md; Digest is a SHA-256 over the
// policy-relevant part of the plan (see digest.go).
package plan

// Version is the version of the plan's JSON form.
const Version = 1

// Backend kinds.
const (
	BackendDocker       = "docker"
	BackendSmolmachines = "smolmachines"
)

// Sidecar names.
const (
	SidecarEgress    = "egress"
	SidecarPipelock  = "pipelock"
	SidecarGitGate   = "git-gate"
	SidecarSupervise = "supervise"
)

// SidecarNames lists the sidecars a profile may declare, sorted.
var SidecarNames = []string{SidecarEgress, SidecarGitGate, SidecarPipelock, SidecarSupervise}

// Plan is a fully resolved bottle: what runs, where, and what it may reach.
type Plan struct {
	Version  int       `json:"version"`
	Profile  Profile   `json:"profile"`
	Slug     string    `json:"slug"`
	StateDir string    `json:"state_dir"`
	Backend  Backend   `json:"backend"`
	Agent    Agent     `json:"agent"`
	Egress   Egress    `json:"egress"`
	Sidecars []Sidecar `json:"sidecars"`
	Mounts   []Mount   `json:"mounts"`
	Secrets  []Secret  `json:"secrets"`
	// Repos are the shared profile repositories bottle.root declares,
	// sorted by name; omitted when it declares none.
	Repos  []Repo `json:"repos,omitempty"`
	Digest string `json:"digest"`
}

// Profile says which profile file the plan came from.
type Profile struct {
	// Name is the profile's base name without ".star"; it starts the slug.
	Name string `json:"name"`
	// Label is the root-relative label of the profile ("//bottle.star").
	Label string `json:"label"`
	// Path is the profile's absolute path on the host, or "embedded:profiles/claude.star"
	// for a profile shipped inside the binary.
	Path string `json:"path"`
	// Root is the absolute directory `//` labels resolve from.
	Root string `json:"root"`
	// Workspace is the directory bottle was started from.
	Workspace string `json:"workspace"`
	// Files are the host paths of the files evaluation read (the profile,
	// bottle.root, loaded files outside the repository cache), sorted.
	// Those under a writable mount are protected like its Protect list, so
	// that the agent cannot widen its next run. They are provenance, not
	// policy: the digest leaves them out.
	Files []string `json:"files,omitempty"`
}

// Repo is a shared profile repository that load("@name//...") reads from:
// a git repository pinned to a commit and fetched into the cache, or a
// local directory. It is provenance, not policy: the digest leaves it out.
type Repo struct {
	// Name is the name labels use, "acme" in "@acme//lib/base.star".
	Name string `json:"name"`
	// URL is the git repository's URL; empty for a path repository.
	URL string `json:"url,omitempty"`
	// Commit is the full commit id the repository is pinned to.
	Commit string `json:"commit,omitempty"`
	// Path is the absolute host directory the files are read from, for a
	// path repository or an overridden one; empty for a fetched repository.
	Path string `json:"path,omitempty"`
	// Override is true when --override-repo replaced the declaration with
	// Path; URL and Commit then still show what bottle.root declares.
	Override bool `json:"override,omitempty"`
	// From is the position of the repo() declaration in bottle.root.
	From string `json:"from"`
}

// Docker defaults for what a profile leaves out: enough for an agent and
// its builds, and a bound on what a fork bomb or a leak takes from the host.
const (
	DefaultDockerMemory = 4 << 30
	DefaultPidsLimit    = 4096
)

// Backend is the sandbox: which backend runs it and with what resources.
type Backend struct {
	Kind    string `json:"kind"`
	Image   string `json:"image"`
	Workdir string `json:"workdir"`
	// User is the user the agent runs as (docker only; empty: the image's).
	User string `json:"user,omitempty"`
	// CPUs is the CPU limit; 0 means the backend's default (docker: unlimited).
	CPUs float64 `json:"cpus,omitempty"`
	// MemoryBytes is the memory limit; 0 means the backend's default.
	// docker() sets DefaultDockerMemory when the profile gives none.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// PidsLimit bounds the agent's processes and threads (docker only;
	// docker() sets DefaultPidsLimit when the profile gives none).
	PidsLimit int64 `json:"pids_limit,omitempty"`
	// CapAdd are the Linux capabilities the agent keeps (docker only),
	// without the CAP_ prefix; every other one is dropped.
	CapAdd []string `json:"cap_add,omitempty"`
	// Runtime is docker's OCI runtime (for example "runsc"); empty: the daemon's default.
	Runtime string `json:"runtime,omitempty"`
	// StorageBytes is the smolmachines disk size; 0 means smolvm's default.
	StorageBytes int64 `json:"storage_bytes,omitempty"`
	// From is the position of the backend declaration.
	From string `json:"from"`
}

// Agent is the program that runs in the sandbox.
type Agent struct {
	Command []string `json:"command"`
	// Env is the agent's environment, sorted by name. Values are literal;
	// secrets are listed in Plan.Secrets, never here.
	Env []EnvVar `json:"env"`
	// Workdir is where the agent starts; it defaults to Backend.Workdir.
	Workdir string `json:"workdir"`
	// From is the position of the agent() call, or empty for the default agent.
	From string `json:"from,omitempty"`
	// Provider names the agent bottle prepares (agents.Provider: "claude",
	// "codex"); empty: the one whose program Command runs, if any.
	Provider string `json:"provider,omitempty"`
	// Home is HomePersistent for a HOME kept between starts in HomeDir;
	// empty: a fresh HOME at every start.
	Home string `json:"home,omitempty"`
	// HomeDir is the host directory of a persistent HOME, one per profile
	// and workspace (as the slug, without its -2, -3...).
	HomeDir string `json:"home_dir,omitempty"`
}

// HomePersistent keeps the agent's HOME between starts (agent(home = ...)).
const HomePersistent = "persistent"

// EnvVar is one literal environment variable of the agent.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	From  string `json:"from"`
}

// Egress is the sandbox's only way out: the egress sidecar and its allow-list.
type Egress struct {
	// Sidecar is the sidecar that enforces the rules: "egress" or "pipelock".
	Sidecar string `json:"sidecar"`
	// Rules is the allow-list, sorted by host then position.
	Rules []Rule `json:"rules"`
}

// Rule allows the sandbox to reach Host on Ports through the egress sidecar.
type Rule struct {
	// Host is a lower-case DNS name without a trailing dot, or "*.example.com"
	// for every subdomain of example.com (not example.com itself).
	Host  string `json:"host"`
	Ports []int  `json:"ports"`
	// AllowPrivate lets Host resolve to loopback, private, link-local or
	// other non-public addresses, which the egress sidecar refuses otherwise.
	AllowPrivate bool `json:"allow_private,omitempty"`
	// Methods, when set, are the only HTTP methods allowed on Host, upper
	// case and sorted ("GET", "HEAD"). Paths, when set, are the only
	// request paths allowed, as globs on the URL path ("/repos/acme/**";
	// see the egress package for the syntax). Either makes the egress
	// sidecar terminate TLS for Host (see Intercepted) to see the request.
	Methods []string `json:"methods,omitempty"`
	Paths   []string `json:"paths,omitempty"`
	// Inspect makes the egress sidecar terminate TLS for Host so that it
	// scans what leaves (outbound DLP) even without methods or paths.
	Inspect bool `json:"inspect,omitempty"`
	// From is the position of the allow() call that made the rule.
	From string `json:"from"`
}

// Intercepted reports whether the egress sidecar must see the rule's
// requests decrypted: it has method or path rules, or asks for inspection.
func (r Rule) Intercepted() bool {
	return r.Inspect || len(r.Methods) > 0 || len(r.Paths) > 0
}

// Mount is a host directory or file made visible in the sandbox.
type Mount struct {
	// Source is the path as the profile wrote it.
	Source string `json:"source"`
	// HostPath is Source resolved to an absolute, cleaned host path.
	HostPath string `json:"host_path"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readonly"`
	// Protect lists the paths, relative to the mount and slash-separated,
	// that host tools execute or trust and that the agent must not change
	// or create: they are read-only in the sandbox whether or not they
	// exist, and the directories above them cannot be renamed or replaced.
	// A trailing "/" marks a directory. A writable mount gets
	// DefaultProtect and what mount(protect = [...]) adds; a read-only
	// mount needs none. The profile's own files (Profile.Files) under a
	// writable mount are protected too.
	Protect []string `json:"protect"`
	From    string   `json:"from"`
}

// DefaultProtect is what every writable mount protects:
//   - git's config and hooks: a planted core.fsmonitor or hook runs on the
//     host's next git status or commit;
//   - .git/commondir and .git/config.worktree, which make git read its
//     config from elsewhere;
//   - .git/modules/ and .git/worktrees/, the git directories of submodules
//     and of linked worktrees (their config, hooks and commondir are read
//     by git run there);
//   - .gitmodules, direnv's .envrc, and agent and editor settings that
//     name commands (.mcp.json, .claude/, .vscode/, .idea/).
//
// The agent can still commit: git writes objects, refs and the index.
var DefaultProtect = []string{
	".claude/", ".envrc",
	".git/commondir", ".git/config", ".git/config.worktree", ".git/hooks/", ".git/modules/", ".git/worktrees/",
	".gitmodules", ".idea/", ".mcp.json", ".vscode/",
}

// Secret is an environment variable whose value is read at launch from the
// host. The plan holds its name and source, never its value.
//
// A secret with Hosts is bound to those hosts: the agent's variable holds
// a placeholder, unique to the bottle, and the egress sidecar puts the real
// value in place of the placeholder in request headers on connections to
// those hosts only, which it decrypts for that. The real value never
// enters the sandbox. A secret without Hosts is visible to the agent: the
// variable holds the real value.
type Secret struct {
	Name     string `json:"name"`
	FromEnv  string `json:"from_env,omitempty"`
	FromFile string `json:"from_file,omitempty"`
	// Hosts are canonical host names or "*." wildcards, as in Rule.Host,
	// sorted; each is allowed by some rule.
	Hosts []string `json:"hosts,omitempty"`
	From  string   `json:"from"`
}

// Visible reports whether the agent sees the secret's real value.
func (s Secret) Visible() bool { return len(s.Hosts) == 0 }

// Sidecar is one host-controlled helper of the bottle.
type Sidecar struct {
	Name string `json:"name"`
	// Implicit is true for the built-in egress sidecar that bottle adds when
	// a profile declares no egress sidecar.
	Implicit bool `json:"implicit,omitempty"`
	// Listen is where the sidecar listens and how the sandbox reaches it.
	Listen Listener `json:"listen"`
	// Exactly one of the following is set, matching Name.
	Egress    *EgressConfig    `json:"egress,omitempty"`
	Pipelock  *PipelockConfig  `json:"pipelock,omitempty"`
	GitGate   *GitGateConfig   `json:"git_gate,omitempty"`
	Supervise *SuperviseConfig `json:"supervise,omitempty"`
	From      string           `json:"from,omitempty"`
}

// Listener is a sidecar's endpoint.
type Listener struct {
	// Network is "tcp" or "unix".
	Network string `json:"network"`
	// Address is where the sidecar process listens: "0.0.0.0:3128" in the
	// docker bundle, a socket path in the state directory for smolmachines.
	Address string `json:"address"`
	// URL is how the sandbox reaches the sidecar.
	URL string `json:"url"`
}

// EgressConfig configures the built-in egress proxy.
type EgressConfig struct {
	// ConnectTimeout bounds dialing an allowed destination, as a Go duration.
	ConnectTimeout string `json:"connect_timeout"`
	// IdleTimeout closes a tunnel with no traffic in either direction for this long.
	IdleTimeout string `json:"idle_timeout"`
	// InspectAll terminates TLS for every allowed host, as if each rule
	// set Inspect.
	InspectAll bool `json:"inspect_all,omitempty"`
	// OutboundScan is what a gitleaks finding in a decrypted request
	// does: "" (the default) refuses the request, "log" only logs it
	// (sidecar("egress", scan = "log")). The bottle's own secret values
	// and placeholders are refused either way.
	OutboundScan string `json:"outbound_scan,omitempty"`
}

// PipelockConfig holds the pipelock options a profile may set.
type PipelockConfig struct {
	// ExplainBlocks adds pipelock's hint header to refusals.
	ExplainBlocks bool `json:"explain_blocks"`
	// RequestBodyScanning turns on DLP of request bodies (absolute-URI HTTP only
	// without TLS interception).
	RequestBodyScanning bool `json:"request_body_scanning"`
	// BodyScanAction is "block" or "warn".
	BodyScanAction string `json:"body_scan_action"`
	// IdleTimeoutSeconds and MaxTunnelSeconds are pipelock's forward-proxy limits.
	IdleTimeoutSeconds int `json:"idle_timeout_seconds"`
	MaxTunnelSeconds   int `json:"max_tunnel_seconds"`
}

// GitGateConfig configures the git gate.
type GitGateConfig struct {
	// Remotes are sorted by name.
	Remotes []GitRemote `json:"remotes"`
	// MaxPushBytes is the most one push may carry, in bytes: of pack data
	// as sent, of new objects as stored (uncompressed), and of archive
	// members decompressed for the scan. A larger push is refused.
	MaxPushBytes int64 `json:"max_push_bytes"`
}

// GitRemote is one upstream repository the gate fronts.
type GitRemote struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// SSHKey is the host path of the private key the gate pushes with (ssh URLs).
	SSHKey string `json:"ssh_key,omitempty"`
	// KnownHosts is the host path of a known_hosts file holding the upstream's key.
	KnownHosts string `json:"known_hosts,omitempty"`
	// TokenEnv names the host environment variable holding an HTTPS token.
	TokenEnv string `json:"token_env,omitempty"`
	// Protected branches refuse force pushes and deletion.
	Protected []string `json:"protected"`
	// ProtectedTags are tag names or path.Match patterns whose tags may be
	// created but never moved or deleted; ["*"] by default.
	ProtectedTags []string `json:"protected_tags"`
}

// SuperviseConfig configures the supervision channel.
type SuperviseConfig struct {
	// Timeout is how long a request waits for the operator, as a Go duration.
	Timeout string `json:"timeout"`
}
