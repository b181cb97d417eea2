// Package docker is a stand-in for the docker command line, for tests
// only: bottle's testscript suite registers Main as "docker" so scripts can
// check the exact docker commands bottle runs without a Docker daemon.
//
// It follows the docker CLI's command grammar (docs.docker.com, "docker"
// reference: global options before the command, management commands such
// as `docker network create`, Go-template --format with a json function)
// and answers like Docker Engine 27.5: it logs each command line and prints
// canned output; it never talks to a daemon and checks no command's
// options. It is deliberately generic so that tests of the docker backend
// can script it.
//
// Environment (KEY is the command path in upper case with '-' and spaces
// as '_': RUN, VERSION, NETWORK_CREATE, CONTAINER_INSPECT, ...):
//
//	FAKE_DOCKER_LOG        file to which every invocation's argv is
//	                       appended (fakes.LogLine form, "docker network
//	                       create --internal bottle-x-int").
//	FAKE_DOCKER_OUT_<KEY>  text printed on stdout (a newline is added if
//	                       missing). A management command's own key is
//	                       tried first, then the top-level one
//	                       (FAKE_DOCKER_OUT_NETWORK_CREATE, then
//	                       FAKE_DOCKER_OUT_NETWORK).
//	FAKE_DOCKER_FAIL       comma-separated command paths that fail, such as
//	                       "run" or "network create"; a path also matches
//	                       its subcommands ("network" fails every network
//	                       command).
//	FAKE_DOCKER_EXIT_<KEY> exit status of a failing command (default 1).
//	FAKE_DOCKER_ERR_<KEY>  stderr of a failing command (default "Error
//	                       response from daemon: ..." naming the command).
//	FAKE_DOCKER_VERSION    engine and client version in the default
//	                       `docker version` answer (default 27.5.1).
//
// Without canned output, `docker version` answers a plausible Docker 27.5
// client and server: as JSON for --format '{{json .}}', through the given
// template for other --format values, as text otherwise; `docker
// --version` prints "Docker version <v>, build <commit>". Every other
// command prints nothing and exits 0.
package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/bottle-dev/bottle/internal/fakes"
)

// DefaultVersion is the Docker version the stand-in reports unless
// FAKE_DOCKER_VERSION says otherwise.
const DefaultVersion = "27.5.1"

const (
	exitOK    = 0
	exitError = 1
	exitFake  = 3
)

// Main runs the stand-in with os.Args and the process environment and
// returns its exit status.
func Main() int {
	return run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
}

// globalValueOptions are the docker CLI's global options that take a value.
var globalValueOptions = []string{"--config", "-c", "--context", "-H", "--host", "-l", "--log-level", "--tlscacert", "--tlscert", "--tlskey"}

// managementCommands take a subcommand ("docker network create").
var managementCommands = []string{
	"builder", "buildx", "checkpoint", "compose", "config", "container", "context", "image", "manifest",
	"network", "node", "plugin", "secret", "service", "stack", "swarm", "system", "trust", "volume",
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if err := fakes.AppendLog(getenv("FAKE_DOCKER_LOG"), "docker", args); err != nil {
		fmt.Fprintf(stderr, "fake docker: %v\n", err)
		return exitFake
	}
	version := getenv("FAKE_DOCKER_VERSION")
	if version == "" {
		version = DefaultVersion
	}
	path, rest := commandPath(args)
	if len(path) == 0 {
		if slices.Contains(args, "--version") || slices.Contains(args, "-v") {
			fmt.Fprintf(stdout, "Docker version %s, build 9f9e405\n", version)
			return exitOK
		}
		fmt.Fprintln(stdout, "Usage:  docker [OPTIONS] COMMAND (fake stand-in)")
		return exitOK
	}
	keys := []string{envKey(path)}
	if len(path) > 1 {
		keys = append(keys, envKey(path[:1]))
	}
	if failing(getenv("FAKE_DOCKER_FAIL"), path) {
		code := exitError
		if s := lookup(getenv, "FAKE_DOCKER_EXIT_", keys); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 255 {
				fmt.Fprintf(stderr, "fake docker: FAKE_DOCKER_EXIT_%s=%q is not a status from 1 to 255\n", keys[0], s)
				return exitFake
			}
			code = n
		}
		msg := lookup(getenv, "FAKE_DOCKER_ERR_", keys)
		if msg == "" {
			msg = fmt.Sprintf("Error response from daemon: injected failure for \"docker %s\" (FAKE_DOCKER_FAIL)", strings.Join(path, " "))
		}
		fmt.Fprintln(stderr, strings.TrimSuffix(msg, "\n"))
		return code
	}
	if out := lookup(getenv, "FAKE_DOCKER_OUT_", keys); out != "" {
		if !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		fmt.Fprint(stdout, out)
		return exitOK
	}
	if path[0] == "version" || len(path) == 2 && path[0] == "system" && path[1] == "version" {
		return printVersion(version, rest, stdout, stderr)
	}
	return exitOK
}

// commandPath skips the global options and returns the command words
// ("run", or "network", "create") and the arguments after them.
func commandPath(args []string) (path, rest []string) {
	i := 0
	for i < len(args) {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		if slices.Contains(globalValueOptions, a) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return nil, nil
	}
	path = []string{args[i]}
	i++
	if slices.Contains(managementCommands, path[0]) {
		for j := i; j < len(args); j++ {
			if !strings.HasPrefix(args[j], "-") {
				path = append(path, args[j])
				return path, append(slices.Clone(args[i:j]), args[j+1:]...)
			}
		}
	}
	return path, args[i:]
}

func envKey(path []string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", " ", "_").Replace(strings.Join(path, "_")))
}

func lookup(getenv func(string) string, prefix string, keys []string) string {
	for _, k := range keys {
		if v := getenv(prefix + k); v != "" {
			return v
		}
	}
	return ""
}

// failing reports whether a FAKE_DOCKER_FAIL entry is path or a prefix of it.
func failing(spec string, path []string) bool {
	for _, entry := range strings.Split(spec, ",") {
		words := strings.Fields(entry)
		if len(words) > 0 && len(words) <= len(path) && slices.Equal(words, path[:len(words)]) {
			return true
		}
	}
	return false
}

// versionInfo is the shape of `docker version --format '{{json .}}'`.
func versionInfo(v string) map[string]any {
	return map[string]any{
		"Client": map[string]any{
			"Platform": map[string]any{"Name": "Docker Engine - Community"},
			"Version":  v, "ApiVersion": "1.47", "DefaultAPIVersion": "1.47", "GitCommit": "9f9e405",
			"GoVersion": "go1.22.11", "Os": "linux", "Arch": "amd64", "BuildTime": "Wed Jan 22 13:41:48 2025", "Context": "default",
		},
		"Server": map[string]any{
			"Platform": map[string]any{"Name": "Docker Engine - Community"},
			"Components": []any{
				map[string]any{"Name": "Engine", "Version": v, "Details": map[string]any{
					"ApiVersion": "1.47", "MinAPIVersion": "1.24", "GitCommit": "4c9b3b0", "GoVersion": "go1.22.11",
					"Os": "linux", "Arch": "amd64", "KernelVersion": "6.1.0-fake", "Experimental": "false",
				}},
			},
			"Version": v, "ApiVersion": "1.47", "MinAPIVersion": "1.24", "GitCommit": "4c9b3b0", "GoVersion": "go1.22.11",
			"Os": "linux", "Arch": "amd64", "KernelVersion": "6.1.0-fake", "BuildTime": "2025-01-22T13:41:48.000000000+00:00",
		},
	}
}

func printVersion(v string, args []string, stdout, stderr io.Writer) int {
	format := ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--format" || a == "-f":
			if i+1 < len(args) {
				format = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--format="):
			format = strings.TrimPrefix(a, "--format=")
		}
	}
	info := versionInfo(v)
	if format == "" {
		fmt.Fprintf(stdout, "Client: Docker Engine - Community\n Version:           %s\n API version:       1.47\n Context:           default\n\n"+
			"Server: Docker Engine - Community\n Engine:\n  Version:          %s\n  API version:      1.47 (minimum version 1.24)\n", v, v)
		return exitOK
	}
	tmpl, err := template.New("format").Funcs(template.FuncMap{"json": func(x any) (string, error) {
		b, err := json.Marshal(x)
		return string(b), err
	}}).Parse(format)
	if err != nil {
		fmt.Fprintf(stderr, "template parsing error: %v\n", err)
		return exitError
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, info); err != nil {
		fmt.Fprintf(stderr, "template: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, buf.String())
	return exitOK
}
