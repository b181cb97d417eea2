// Package agents prepares the coding agents bottle knows: what each needs
// added to its command line and which configuration files bottle renders
// into its HOME, so that it starts ready to work inside the sandbox. The
// hosts an agent must reach and the secrets it holds are declared by its
// profile library (profiles/lib/claude.star, profiles/lib/codex.star),
// where a team can read and change them; this package does what a
// profile cannot: files that depend on the launch (a placeholder key, the
// sidecars' addresses) and the agent's own configuration formats.
package agents

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// MCPServer is an MCP server (streamable HTTP) a sidecar gives the agent.
type MCPServer struct {
	// Name is how the agent knows the server ("supervise"); its tools are
	// allowed without asking.
	Name string
	// URL is where the agent reaches it in the sandbox,
	// "http://127.0.0.1:8765/mcp".
	URL string
	// ToolTimeout is how long one of its tools may take to answer.
	ToolTimeout time.Duration
}

// Setup is what a provider prepares the agent for.
type Setup struct {
	// Workdir is where the agent starts in the sandbox.
	Workdir string
	// MCP lists the MCP servers the sidecars give the agent.
	MCP []MCPServer
	// Env is the agent's environment as it will be, secrets included: a
	// secret bound to hosts holds its placeholder.
	Env map[string]string
}

// File is a file rendered into the agent's HOME.
type File struct {
	// Path is relative to HOME, slash-separated, without "." or ".."
	// elements.
	Path string
	// Mode is the file's permission bits.
	Mode fs.FileMode
	// Data is its content.
	Data []byte
}

// Provider is one agent bottle knows.
type Provider struct {
	// Name is the provider's name in profiles: agent(provider = NAME).
	Name string
	// Binary is the agent's program name; a command whose program has this
	// base name is this agent (also a one-off command, `bottle start
	// profile.star -- claude -p ...`).
	Binary string
	// Command returns cmd, the agent's command, with what it needs added
	// to use s.MCP, and extra environment; nil leaves both as they are.
	Command func(cmd []string, s Setup) ([]string, []string, error)
	// Files returns the files rendered into HOME for s; nil renders none.
	Files func(s Setup) ([]File, error)
	// Headless returns the command that runs prompt without a terminal
	// and prints the agent's answer.
	Headless func(prompt string) []string
}

var providers = map[string]*Provider{}

// register adds p; it panics on a duplicate name or binary.
func register(p *Provider) {
	for _, o := range providers {
		if o.Name == p.Name || o.Binary == p.Binary {
			panic(fmt.Sprintf("agent providers %q and %q clash", o.Name, p.Name))
		}
	}
	providers[p.Name] = p
}

// Lookup returns the provider called name.
func Lookup(name string) (*Provider, bool) {
	p, ok := providers[name]
	return p, ok
}

// Names lists the providers' names, sorted.
func Names() []string {
	var names []string
	for n := range providers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// For returns the provider of the agent: the one the profile named, else
// the one whose program cmd runs; nil when there is none.
func For(provider string, cmd []string) *Provider {
	if p, ok := providers[provider]; ok {
		return p
	}
	if provider != "" || len(cmd) == 0 {
		return nil
	}
	return ForCommand(cmd)
}

// ForCommand returns the provider whose program cmd runs, or nil.
func ForCommand(cmd []string) *Provider {
	if len(cmd) == 0 {
		return nil
	}
	base := path.Base(cmd[0])
	for _, p := range providers {
		if p.Binary == base {
			return p
		}
	}
	return nil
}

// CheckFiles checks that files are fit to write into HOME: relative
// clean paths, no two the same.
func CheckFiles(files []File) error {
	seen := map[string]bool{}
	for _, f := range files {
		if f.Path == "" || path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == ".." || strings.HasPrefix(f.Path, "../") {
			return fmt.Errorf("agent file %q is not a clean path under HOME", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("agent file %q is rendered twice", f.Path)
		}
		seen[f.Path] = true
	}
	return nil
}

// maxToolTimeout is the longest of the servers' tool timeouts.
func maxToolTimeout(servers []MCPServer) time.Duration {
	var d time.Duration
	for _, s := range servers {
		d = max(d, s.ToolTimeout)
	}
	return d
}
