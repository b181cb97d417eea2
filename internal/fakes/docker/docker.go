// Package docker is a stand-in for the docker command line, for tests
// only: bottle's testscript suite registers Main as "docker" so scripts can
// check the exact docker commands bottle runs without a Docker daemon.
//
// It follows the docker CLI's command grammar (docs.docker.com, "docker"
// reference: global options before the command, management commands such
// as `docker volume create`, Go-template --format with a json function)
// and answers like Docker Engine 27.5 on the host's architecture. It logs
// each command line; it never talks to a daemon and runs no container.
//
// Environment (KEY is the command path in upper case with '-' and spaces
// as '_': RUN, VERSION, VOLUME_CREATE, CONTAINER_INSPECT, ...):
//
//	FAKE_DOCKER_LOG        file to which every invocation's argv is
//	                       appended (fakes.LogLine form, "docker volume
//	                       rm --force bottle-x-sockets").
//	FAKE_DOCKER_STATE      directory in which the stand-in keeps the
//	                       emulated daemon's containers, volumes, networks
//	                       and images (see below); created if missing.
//	                       Unset, every command but version prints nothing.
//	FAKE_DOCKER_OUT_<KEY>  text printed on stdout (a newline is added if
//	                       missing) instead of the command's own answer,
//	                       with no change to the state. A management
//	                       command's own key is tried first, then the
//	                       top-level one (FAKE_DOCKER_OUT_VOLUME_LS, then
//	                       FAKE_DOCKER_OUT_VOLUME).
//	FAKE_DOCKER_FAIL       comma-separated command paths that fail, with
//	                       no change to the state, such as "run" or
//	                       "volume create"; a path also matches its
//	                       subcommands ("volume" fails every volume
//	                       command). Words after a full command path are
//	                       globs (path.Match) that must each match one of
//	                       the command's arguments: "run *-sidecars",
//	                       "rm *-agent" (which fails `rm --force
//	                       bottle-x-agent bottle-x-sidecars` as a whole).
//	FAKE_DOCKER_EXIT_<KEY> exit status of a failing command (default 1).
//	FAKE_DOCKER_ERR_<KEY>  stderr of a failing command (default "Error
//	                       response from daemon: ..." naming the command).
//	FAKE_DOCKER_VERSION    engine and client version in the default
//	                       `docker version` answer (default 27.5.1).
//	FAKE_DOCKER_CONTAINER_EXIT
//	                       exit status (0 to 255, default 0) of the command
//	                       of a container run attached (docker run without
//	                       --detach, docker start --attach), which is that
//	                       docker command's own.
//	FAKE_DOCKER_NO_REGISTRY
//	                       no image registry is reachable: a build whose
//	                       Dockerfile starts FROM an image the emulated
//	                       daemon lacks fails as BuildKit's does when the
//	                       registry's name does not resolve; the value is
//	                       the registry host named in the error.
//	FAKE_DOCKER_NO_READY   the sidecar bundle does not become ready: "1" or
//	                       "hang" keeps it running without a ready file or
//	                       sockets, "exit" makes it exit with status 1 at
//	                       start, leaving an error in its logs.
//
// Without canned output, `docker version` answers a plausible Docker 27.5
// client and server on linux/GOARCH: as JSON for --format '{{json .}}',
// through the given template for other --format values, as text
// otherwise; `docker --version` prints "Docker version <v>, build
// <commit>".
//
// With FAKE_DOCKER_STATE, the stand-in emulates a daemon's objects in a
// JSON file there, changed under a lock so concurrent commands see each
// other: create, run (attached or --detach), start, rm, ps, inspect, logs,
// build, image ls (images), save (image save), volume create, rm, ls and inspect, network
// create, rm, ls and inspect, with their container aliases ("container
// rm"). Answers have the real CLI's shapes: IDs on create and run
// --detach, names on rm, volume create and start, list JSON with the keys
// of `docker ps`, `docker volume ls` and `docker network ls` --format
// '{{json .}}' (Names or Name, Labels as "k=v,k=v" sorted), inspect JSON
// with the API's field names, and the daemon's error wording and exit
// statuses (run: "docker: ..." and 125). The daemon's rules that catch a
// caller's mistakes hold: unique container names; bind mount sources that
// exist; networks that exist, subnets that do not overlap ("Pool
// overlaps"), no network beside none ("private (none) mode"), addresses
// and aliases only on networks of one's own; the local volume driver's
// names and options (type, device, o; size needs quotas, which this
// daemon lacks); no removal of a network with a running container
// attached ("has active endpoints") or of a volume that any container
// mounts, even with --force ("volume is in use"); images of the
// unresolvable bottle.local registry only when built (others are
// "pulled"); a build context with a Dockerfile. As with Docker since
// 20.10, rm --force of a missing container says so on stderr and is no
// error, whatever else the command removes; volume rm --force of a missing
// volume prints its name; volume create of an existing volume returns it
// unchanged; a volume mount creates its named volume, or an anonymous one,
// which rm --volumes removes. The daemon starts with the networks bridge
// (172.17.0.0/16), host and none. Other commands print nothing and exit 0.
//
// No container runs: one run or started attached "exits" at once with
// FAKE_DOCKER_CONTAINER_EXIT; one started detached stays running until
// removed. Two of bottle's own programs are emulated:
//
//   - A container whose command is `sidecars --config /state/<file>`, with
//     a bind mount at /state, is bottle's sidecar bundle. When started,
//     and the configuration exists under the mount's source, it "listens"
//     on the unix socket of each sidecar section's listen address: one in a
//     volume mount is recorded in the volume; one in a read-only mount, or
//     outside every mount of a --read-only container, makes the bundle exit
//     1 ("read-only file system"). It then writes the ready file
//     sidecars.ready containing Ready into the source directory, as the
//     bundle's `bottle sidecars` does once its sidecars listen
//     (FAKE_DOCKER_NO_READY changes that).
//   - A container whose entrypoint is a file named bottle and whose
//     command starts with guest is bottle guest (the agent container).
//     Attached, before its command "runs", it waits up to its --wait for
//     each --forward's socket to be listened on, in a volume it mounts, by
//     a container that still runs; otherwise, or on SIGINT or SIGTERM
//     (which docker start --attach passes on), it prints bottle guest's
//     error and exits 125.
package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
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
	if failing(getenv("FAKE_DOCKER_FAIL"), path, rest) {
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
	if dir := getenv("FAKE_DOCKER_STATE"); dir != "" {
		d := &daemon{dir: dir, getenv: getenv, stdout: stdout, stderr: stderr}
		if code, ok := d.stateful(path, rest); ok {
			return code
		}
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

// failing reports whether a FAKE_DOCKER_FAIL entry is path or a prefix of
// it, or path followed by globs that each match one of args.
func failing(spec string, path, args []string) bool {
	for _, entry := range strings.Split(spec, ",") {
		words := strings.Fields(entry)
		n := min(len(words), len(path))
		if n == 0 || !slices.Equal(words[:n], path[:n]) {
			continue
		}
		if len(words) <= len(path) {
			return true
		}
		if slices.IndexFunc(words[n:], func(glob string) bool { return !slices.ContainsFunc(args, globMatch(glob)) }) < 0 {
			return true
		}
	}
	return false
}

func globMatch(glob string) func(string) bool {
	return func(s string) bool {
		ok, _ := path.Match(glob, s)
		return ok
	}
}

// hostArch is the architecture the emulated daemon runs on: the host's,
// so that bottle's check of the sidecar binary against it holds.
func hostArch() string { return runtime.GOARCH }

// versionInfo is the shape of `docker version --format '{{json .}}'`.
func versionInfo(v string) map[string]any {
	return map[string]any{
		"Client": map[string]any{
			"Platform": map[string]any{"Name": "Docker Engine - Community"},
			"Version":  v, "ApiVersion": "1.47", "DefaultAPIVersion": "1.47", "GitCommit": "9f9e405",
			"GoVersion": "go1.22.11", "Os": "linux", "Arch": hostArch(), "BuildTime": "Wed Jan 22 13:41:48 2025", "Context": "default",
		},
		"Server": map[string]any{
			"Platform": map[string]any{"Name": "Docker Engine - Community"},
			"Components": []any{
				map[string]any{"Name": "Engine", "Version": v, "Details": map[string]any{
					"ApiVersion": "1.47", "MinAPIVersion": "1.24", "GitCommit": "4c9b3b0", "GoVersion": "go1.22.11",
					"Os": "linux", "Arch": hostArch(), "KernelVersion": "6.1.0-fake", "Experimental": "false",
				}},
			},
			"Version": v, "ApiVersion": "1.47", "MinAPIVersion": "1.24", "GitCommit": "4c9b3b0", "GoVersion": "go1.22.11",
			"Os": "linux", "Arch": hostArch(), "KernelVersion": "6.1.0-fake", "BuildTime": "2025-01-22T13:41:48.000000000+00:00",
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
