package backends

import (
	"path"
	"sort"
	"strconv"
	"time"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars/gitgate"
	"github.com/bottle-dev/bottle/sidecars/supervise"
)

// ProxyEnv is the environment that routes the agent through the egress
// sidecar: HTTP(S)_PROXY in both cases, and NO_PROXY naming only the
// sibling sidecars, which the agent reaches directly. noProxy lists the
// sibling sidecars' host names.
func ProxyEnv(p *plan.Plan, noProxy []string) []string {
	proxyURL := ""
	for _, sc := range p.Sidecars {
		if sc.Name == p.Egress.Sidecar {
			proxyURL = sc.Listen.URL
		}
	}
	sort.Strings(noProxy)
	np := ""
	for i, h := range noProxy {
		if i > 0 {
			np += ","
		}
		np += h
	}
	return []string{
		"HTTPS_PROXY=" + proxyURL, "https_proxy=" + proxyURL,
		"HTTP_PROXY=" + proxyURL, "http_proxy=" + proxyURL,
		"NO_PROXY=" + np, "no_proxy=" + np,
	}
}

// GitEnv is the environment that rewrites each git-gate remote's upstream
// URL to the gate (url.<gate>/<name>.git.insteadOf <upstream>), through
// git's GIT_CONFIG_COUNT/KEY/VALUE variables, so that `git push origin`
// goes to the gate and no credential or config file enters the sandbox.
func GitEnv(p *plan.Plan) []string {
	var env []string
	n := 0
	for _, sc := range p.Sidecars {
		if sc.GitGate == nil {
			continue
		}
		for _, r := range sc.GitGate.Remotes {
			i := strconv.Itoa(n)
			env = append(env,
				"GIT_CONFIG_KEY_"+i+"=url."+sc.Listen.URL+gitgate.RemotePath(r.Name)+".insteadOf",
				"GIT_CONFIG_VALUE_"+i+"="+r.URL)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return append([]string{"GIT_CONFIG_COUNT=" + strconv.Itoa(n)}, env...)
}

// AgentCommand is the command that runs in the sandbox. For Claude Code
// with the supervise sidecar it adds --mcp-config registering the
// supervise server, and returns MCP_TOOL_TIMEOUT so that Claude Code waits
// as long as the operator may take. A one-off command runs as given.
func AgentCommand(b *Bottle) (cmd []string, env []string, err error) {
	if len(b.Command) > 0 {
		return b.Command, nil, nil
	}
	cmd = append([]string{}, b.Plan.Agent.Command...)
	if path.Base(cmd[0]) != "claude" {
		return cmd, nil, nil
	}
	for _, sc := range b.Plan.Sidecars {
		if sc.Supervise == nil {
			continue
		}
		cfg, err := supervise.ClaudeMCPConfig(sc.Listen.URL)
		if err != nil {
			return nil, nil, err
		}
		timeout, err := time.ParseDuration(sc.Supervise.Timeout)
		if err != nil {
			return nil, nil, err
		}
		ms := strconv.FormatInt((timeout + time.Minute).Milliseconds(), 10)
		return append(cmd, "--mcp-config", string(cfg)), []string{"MCP_TOOL_TIMEOUT=" + ms}, nil
	}
	return cmd, nil, nil
}
