package docker

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func runFake(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommandPath(t *testing.T) {
	tests := []struct {
		args []string
		path string
	}{
		{[]string{"run", "--rm", "alpine"}, "run"},
		{[]string{"--context", "remote", "-H", "unix:///x", "--debug", "volume", "create", "--driver", "local", "v"}, "volume create"},
		{[]string{"volume", "rm", "--force", "v"}, "volume rm"},
		{[]string{"network", "--help"}, "network"},
		{[]string{"container", "inspect", "--format", "{{json .}}", "c"}, "container inspect"},
		{[]string{"-l", "debug", "version"}, "version"},
		{[]string{"--debug"}, ""},
	}
	for _, tc := range tests {
		path, _ := commandPath(tc.args)
		if got := strings.Join(path, " "); got != tc.path {
			t.Errorf("commandPath(%q) = %q, want %q", tc.args, got, tc.path)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, errs := runFake(nil, "version", "--format", "{{json .}}")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var v struct {
		Client, Server struct{ Version, ApiVersion string }
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version JSON %q: %v", out, err)
	}
	if v.Client.Version != DefaultVersion || v.Server.Version != DefaultVersion || v.Server.ApiVersion != "1.47" {
		t.Errorf("version JSON = %+v", v)
	}
	if _, out, _ := runFake(map[string]string{"FAKE_DOCKER_VERSION": "20.10.0"}, "version", "--format={{.Server.Version}}"); out != "20.10.0\n" {
		t.Errorf("templated server version = %q", out)
	}
	if _, out, _ := runFake(nil, "--version"); out != "Docker version 27.5.1, build 9f9e405\n" {
		t.Errorf("--version = %q", out)
	}
	if code, _, _ := runFake(nil, "version", "--format", "{{.Server"); code != 1 {
		t.Errorf("bad template: exit %d, want 1", code)
	}
}

func TestCannedOutputAndFailures(t *testing.T) {
	env := map[string]string{
		"FAKE_DOCKER_OUT_VOLUME_LS":        `{"Name":"bottle-x-sockets"}`,
		"FAKE_DOCKER_OUT_VOLUME":           "fallback",
		"FAKE_DOCKER_OUT_VERSION":          `{"Server":null}`,
		"FAKE_DOCKER_FAIL":                 "run, volume create",
		"FAKE_DOCKER_EXIT_RUN":             "125",
		"FAKE_DOCKER_ERR_VOLUME_CREATE":    "Error response from daemon: create bottle-x-sockets: invalid option: \"x\"",
		"FAKE_DOCKER_OUT_CONTAINER_CREATE": "",
	}
	if _, out, _ := runFake(env, "volume", "ls", "--format", "{{json .}}"); out != "{\"Name\":\"bottle-x-sockets\"}\n" {
		t.Errorf("volume ls = %q", out)
	}
	if _, out, _ := runFake(env, "volume", "inspect", "x"); out != "fallback\n" {
		t.Errorf("volume inspect fallback = %q", out)
	}
	if _, out, _ := runFake(env, "version", "--format", "{{json .}}"); out != "{\"Server\":null}\n" {
		t.Errorf("canned version = %q", out)
	}
	code, _, errs := runFake(env, "run", "--rm", "alpine")
	if code != 125 || !strings.Contains(errs, `injected failure for "docker run"`) {
		t.Errorf("run: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runFake(env, "volume", "create", "bottle-x-sockets")
	if code != 1 || errs != "Error response from daemon: create bottle-x-sockets: invalid option: \"x\"\n" {
		t.Errorf("volume create: exit %d, stderr %q", code, errs)
	}
	if code, out, _ := runFake(env, "container", "create", "alpine"); code != 0 || out != "" {
		t.Errorf("container create: exit %d, out %q", code, out)
	}
	env["FAKE_DOCKER_FAIL"] = "volume"
	if code, _, _ := runFake(env, "volume", "rm", "x"); code != 1 {
		t.Errorf("prefix failure: exit %d", code)
	}
	if code, _, _ := runFake(env, "volumes"); code != 0 {
		t.Errorf("a failure entry matched a different command: exit %d", code)
	}
	env["FAKE_DOCKER_FAIL"], env["FAKE_DOCKER_EXIT_RUN"] = "run", "0"
	if code, _, _ := runFake(env, "run"); code != 3 {
		t.Errorf("bad FAKE_DOCKER_EXIT: exit %d, want 3", code)
	}
}

func TestArgvLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "argv.log")
	env := map[string]string{"FAKE_DOCKER_LOG": log}
	runFake(env, "volume", "create", "--label", "dev.bottle.slug=x", "bottle-x-sockets")
	runFake(env, "run", "-e", "A=b c", "alpine")
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "docker volume create --label dev.bottle.slug=x bottle-x-sockets\ndocker run -e 'A=b c' alpine\n"
	if string(b) != want {
		t.Errorf("log = %q, want %q", b, want)
	}
}

// daemonEnv is an environment with a fresh state directory.
func daemonEnv(t *testing.T) map[string]string {
	return map[string]string{"FAKE_DOCKER_STATE": filepath.Join(t.TempDir(), "state")}
}

// must runs the stand-in and fails the test unless it exits 0.
func must(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, out, errs := runFake(env, args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d, stderr %q", strings.Join(args, " "), code, errs)
	}
	return out
}

// bundleDir is a bottle state directory holding a sidecar configuration
// whose egress sidecar listens on /run/bottle/egress.sock.
func bundleDir(t *testing.T) string {
	dir := t.TempDir()
	cfg := `{"version":1,"slug":"x","state_dir":"/state","sidecars":{"egress":{"listen":{"network":"unix","address":"/run/bottle/egress.sock","mode":438}}}}`
	if err := os.WriteFile(filepath.Join(dir, "sidecars.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// bundleArgs are the docker create or docker run --detach arguments of
// the sidecar bundle of slug s, with the state directory dir, the way the
// docker backend gives them.
func bundleArgs(t *testing.T, env map[string]string, s, dir string) []string {
	t.Helper()
	must(t, env, "build", "--tag", "bottle.local/sidecars:1", writeContext(t))
	return []string{"--name", "bottle-" + s + "-sidecars", "--label", "dev.bottle.slug=" + s, "--user", "1000:1000", "--read-only",
		"--cap-drop", "ALL", "--mount", "type=bind,src=" + dir + ",dst=/state", "--mount", "type=volume,src=bottle-" + s + "-sockets,dst=/run/bottle",
		"bottle.local/sidecars:1", "sidecars", "--config", "/state/sidecars.json"}
}

// createVolume creates the socket volume of slug s as the backend does.
func createVolume(t *testing.T, env map[string]string, s string) {
	t.Helper()
	out := must(t, env, "volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=uid=1000,gid=1000,mode=0755,size=1m",
		"--label", "dev.bottle.slug="+s, "--label", "dev.bottle.role=sockets", "bottle-"+s+"-sockets")
	if out != "bottle-"+s+"-sockets\n" {
		t.Errorf("volume create printed %q", out)
	}
}

// agentArgs are the docker create arguments of the agent container of slug
// s, which runs bottle guest with wait and then `sh -c 'exit 7'`.
func agentArgs(t *testing.T, s, wait string) []string {
	bin := filepath.Join(t.TempDir(), "bottle")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"--name", "bottle-" + s + "-agent", "--label", "dev.bottle.slug=" + s, "--network", "none", "--interactive",
		"--mount", "type=volume,src=bottle-" + s + "-sockets,dst=/run/bottle,readonly", "--mount", "type=bind,src=" + bin + ",dst=/.bottle/bottle,readonly",
		"--entrypoint", "/.bottle/bottle", "alpine:3.20", "guest", "--wait", wait, "--forward", "127.0.0.1:3128=/run/bottle/egress.sock", "--", "sh", "-c", "exit 7"}
}

func writeContext(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestVersionArchIsHost(t *testing.T) {
	out := must(t, nil, "version", "--format", "{{json .Server.Arch}}")
	if want := `"` + runtime.GOARCH + `"` + "\n"; out != want {
		t.Errorf("server arch = %q, want %q", out, want)
	}
}

func TestBundleBecomesReady(t *testing.T) {
	env := daemonEnv(t)
	dir := bundleDir(t)
	createVolume(t, env, "x")
	must(t, env, append([]string{"create"}, bundleArgs(t, env, "x", dir)...)...)
	if _, err := os.Stat(filepath.Join(dir, "sidecars.ready")); err == nil {
		t.Fatal("the ready file exists before start")
	}
	if out := must(t, env, "start", "bottle-x-sidecars"); out != "bottle-x-sidecars\n" {
		t.Errorf("start printed %q", out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "sidecars.ready"))
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		PID       int                 `json:"pid"`
		Listeners map[string][]string `json:"listeners"`
	}
	if err := json.Unmarshal(b, &ready); err != nil || ready.PID != 1 || ready.Listeners == nil {
		t.Errorf("ready file %q: %+v, %v", b, ready, err)
	}
	if out := must(t, env, "inspect", "--format", "{{json .State.Running}}", "bottle-x-sidecars"); out != "true\n" {
		t.Errorf("running = %q", out)
	}
	// Another container with the same command but no /state mount is no
	// bundle.
	other := t.TempDir()
	must(t, env, "create", "--name", "plain", "--mount", "type=bind,src="+other+",dst=/data", "alpine", "sidecars", "--config", "/state/sidecars.json")
	must(t, env, "start", "plain")
	if _, err := os.Stat(filepath.Join(other, "sidecars.ready")); err == nil {
		t.Error("a container without the /state mount wrote a ready file")
	}
}

// TestRunDetached: docker run --detach of the bundle creates and starts
// it, printing its ID, as create and start do.
func TestRunDetached(t *testing.T) {
	env := daemonEnv(t)
	dir := bundleDir(t)
	createVolume(t, env, "x")
	out := must(t, env, append([]string{"run", "--detach"}, bundleArgs(t, env, "x", dir)...)...)
	if len(out) != 65 {
		t.Errorf("run --detach printed %q, want an ID", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "sidecars.ready")); err != nil {
		t.Errorf("no ready file: %v", err)
	}
	if out := must(t, env, "inspect", "--format", "{{.State.Status}} {{.HostConfig.NetworkMode}} {{.HostConfig.ReadonlyRootfs}}", "bottle-x-sidecars"); out != "running bridge true\n" {
		t.Errorf("bundle state = %q", out)
	}
	code, _, errs := runFake(env, append([]string{"run", "--detach"}, bundleArgs(t, env, "x", dir)...)...)
	if code != 125 || !strings.HasPrefix(errs, "docker: Error response from daemon: Conflict.") {
		t.Errorf("second run: exit %d, stderr %q", code, errs)
	}
}

// TestGuestWaitsForSockets: an agent container running bottle guest
// starts its command once the bundle listens on the sockets in the shared
// volume, and fails with status 125 when they do not come in time.
func TestGuestWaitsForSockets(t *testing.T) {
	env := daemonEnv(t)
	env["FAKE_DOCKER_CONTAINER_EXIT"] = "7"
	dir := bundleDir(t)
	createVolume(t, env, "x")
	must(t, env, append([]string{"create"}, agentArgs(t, "x", "10s")...)...)

	// Started before the bundle, the agent waits for it.
	type result struct {
		code      int
		out, errs string
	}
	done := make(chan result)
	go func() {
		code, out, errs := runFake(env, "start", "--attach", "--interactive", "bottle-x-agent")
		done <- result{code, out, errs}
	}()
	time.Sleep(100 * time.Millisecond)
	if out := must(t, env, "inspect", "--format", "{{.State.Status}}", "bottle-x-agent"); out != "running\n" {
		t.Errorf("agent waiting for its sockets is %q", out)
	}
	must(t, env, append([]string{"run", "--detach"}, bundleArgs(t, env, "x", dir)...)...)
	select {
	case r := <-done:
		if r.code != 7 || r.errs != "" {
			t.Errorf("agent: exit %d, stderr %q, want 7 and nothing", r.code, r.errs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the agent did not run once the bundle was ready")
	}
	if out := must(t, env, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.HostConfig.NetworkMode}}", "bottle-x-agent"); out != "exited 7 none\n" {
		t.Errorf("agent state = %q", out)
	}

	// A bundle that is gone leaves its sockets behind, and nothing accepts
	// connections on them.
	must(t, env, "rm", "--force", "bottle-x-sidecars", "bottle-x-agent")
	must(t, env, append([]string{"create"}, agentArgs(t, "x", "50ms")...)...)
	code, _, errs := runFake(env, "start", "--attach", "bottle-x-agent")
	want := "bottle: after waiting 50ms: forward 127.0.0.1:3128=/run/bottle/egress.sock: sidecar socket /run/bottle/egress.sock: nothing accepts connections: dial unix /run/bottle/egress.sock: connect: connection refused\n"
	if code != 125 || errs != want {
		t.Errorf("agent after its bundle: exit %d, stderr %q, want %q", code, errs, want)
	}

	// With no wait the sockets must be there at once.
	env2 := daemonEnv(t)
	createVolume(t, env2, "y")
	must(t, env2, append([]string{"create"}, agentArgs(t, "y", "0s")...)...)
	code, _, errs = runFake(env2, "start", "--attach", "bottle-y-agent")
	if code != 125 || errs != "bottle: forward 127.0.0.1:3128=/run/bottle/egress.sock: sidecar socket missing: stat /run/bottle/egress.sock: no such file or directory\n" {
		t.Errorf("agent with no wait: exit %d, stderr %q", code, errs)
	}

	// The bundle exits: its sockets stay, and refuse connections too.
	env3 := daemonEnv(t)
	createVolume(t, env3, "z")
	must(t, env3, append([]string{"create"}, agentArgs(t, "z", "50ms")...)...)
	must(t, env3, append([]string{"run", "--detach"}, bundleArgs(t, env3, "z", bundleDir(t))...)...)
	withWorld(env3["FAKE_DOCKER_STATE"], func(w *world) error {
		w.container("bottle-z-sidecars").Status = "exited"
		return nil
	})
	code, _, errs = runFake(env3, "start", "--attach", "bottle-z-agent")
	if code != 125 || !strings.Contains(errs, "nothing accepts connections") {
		t.Errorf("agent of an exited bundle: exit %d, stderr %q", code, errs)
	}
}

// TestBundleSocketsNeedAWritableMount: the bundle runs read-only, so a
// socket outside its mounts, or in a read-only one, cannot be made.
func TestBundleSocketsNeedAWritableMount(t *testing.T) {
	for name, mount := range map[string]string{"none": "", "read-only": ",readonly"} {
		t.Run(name, func(t *testing.T) {
			env := daemonEnv(t)
			dir := bundleDir(t)
			args := bundleArgs(t, env, "x", dir)
			i := slices.Index(args, "type=volume,src=bottle-x-sockets,dst=/run/bottle")
			if mount == "" {
				args = slices.Delete(args, i-1, i+1)
			} else {
				args[i] += mount
			}
			must(t, env, append([]string{"run", "--detach"}, args...)...)
			if _, err := os.Stat(filepath.Join(dir, "sidecars.ready")); err == nil {
				t.Error("a bundle that cannot listen wrote the ready file")
			}
			logs := must(t, env, "logs", "bottle-x-sidecars")
			if !strings.Contains(logs, "egress: listen unix /run/bottle/egress.sock: bind: read-only file system") {
				t.Errorf("logs = %q", logs)
			}
		})
	}
}

func TestBundleNotReady(t *testing.T) {
	for _, mode := range []string{"hang", "exit"} {
		t.Run(mode, func(t *testing.T) {
			env := daemonEnv(t)
			env["FAKE_DOCKER_NO_READY"] = mode
			dir := bundleDir(t)
			must(t, env, append([]string{"run", "--detach"}, bundleArgs(t, env, "x", dir)...)...)
			if _, err := os.Stat(filepath.Join(dir, "sidecars.ready")); err == nil {
				t.Fatal("a bundle that is not ready wrote the ready file")
			}
			running := must(t, env, "inspect", "--format", "{{json .State.Running}}", "bottle-x-sidecars")
			logs := must(t, env, "logs", "--tail", "20", "bottle-x-sidecars")
			if mode == "hang" && (running != "true\n" || logs != "") {
				t.Errorf("hang: running %q, logs %q", running, logs)
			}
			if mode == "exit" && (running != "false\n" || !strings.Contains(logs, "address already in use")) {
				t.Errorf("exit: running %q, logs %q", running, logs)
			}
		})
	}
	env := daemonEnv(t)
	env["FAKE_DOCKER_NO_READY"] = "sometimes"
	must(t, env, append([]string{"create"}, bundleArgs(t, env, "x", bundleDir(t))...)...)
	if code, _, errs := runFake(env, "start", "bottle-x-sidecars"); code != 3 || !strings.Contains(errs, "FAKE_DOCKER_NO_READY") {
		t.Errorf("bad FAKE_DOCKER_NO_READY: exit %d, stderr %q", code, errs)
	}
}

func TestBundleWithoutConfigExits(t *testing.T) {
	env := daemonEnv(t)
	dir := t.TempDir()
	must(t, env, append([]string{"run", "--detach"}, bundleArgs(t, env, "x", dir)...)...)
	if out := must(t, env, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "bottle-x-sidecars"); out != "exited 1\n" {
		t.Errorf("state = %q", out)
	}
	if logs := must(t, env, "logs", "bottle-x-sidecars"); !strings.Contains(logs, "open /state/sidecars.json: no such file") {
		t.Errorf("logs = %q", logs)
	}
}

func TestListsByLabel(t *testing.T) {
	env := daemonEnv(t)
	dir := bundleDir(t)
	createVolume(t, env, "x")
	must(t, env, "volume", "create", "--label", "other=1", "mine")
	must(t, env, "network", "create", "--label", "dev.bottle.slug=x", "--label", "dev.bottle.role=network", "bottle-x-internal")
	must(t, env, "network", "create", "--label", "other=1", "theirs")
	must(t, env, append([]string{"create"}, bundleArgs(t, env, "x", dir)...)...)
	must(t, env, "create", "--name", "unlabelled", "alpine")

	out := must(t, env, "ps", "--all", "--no-trunc", "--filter", "label=dev.bottle.slug", "--format", "{{json .}}")
	var c struct{ Names, Labels, State, Image, Networks, ID, Mounts, LocalVolumes string }
	if err := json.Unmarshal([]byte(out), &c); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("ps = %q: %v", out, err)
	}
	if c.Names != "bottle-x-sidecars" || c.Labels != "dev.bottle.slug=x" || c.State != "created" || c.Networks != "bridge" || len(c.ID) != 64 ||
		c.Mounts != dir+",bottle-x-sockets" || c.LocalVolumes != "1" {
		t.Errorf("ps row = %+v", c)
	}
	if out := must(t, env, "ps", "--filter", "label=dev.bottle.slug"); strings.Contains(out, "bottle-x") {
		t.Errorf("ps without --all lists a created container: %q", out)
	}
	if out := must(t, env, "ps", "-aq", "--filter", "label=dev.bottle.slug=y"); out != "" {
		t.Errorf("label value filter: %q", out)
	}

	out = must(t, env, "volume", "ls", "--filter", "label=dev.bottle.slug", "--format", "{{json .}}")
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("volume ls = %q: %v", out, err)
	}
	want := map[string]string{"Availability": "N/A", "Driver": "local", "Group": "N/A", "Labels": "dev.bottle.role=sockets,dev.bottle.slug=x",
		"Links": "N/A", "Mountpoint": "/var/lib/docker/volumes/bottle-x-sockets/_data", "Name": "bottle-x-sockets", "Scope": "local", "Size": "N/A", "Status": "N/A"}
	if !maps.Equal(v, want) {
		t.Errorf("volume ls row = %v, want %v", v, want)
	}
	if out := must(t, env, "volume", "ls", "--quiet"); out != "bottle-x-sockets\nmine\n" {
		t.Errorf("volume ls -q = %q", out)
	}
	if out := must(t, env, "volume", "ls", "-q", "--filter", "dangling=true"); out != "mine\n" {
		t.Errorf("dangling volumes = %q", out)
	}

	out = must(t, env, "network", "ls", "--no-trunc", "--filter", "label=dev.bottle.slug", "--format", "{{json .}}")
	var n struct{ Name, Labels, Driver, Internal, Scope string }
	if err := json.Unmarshal([]byte(out), &n); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("network ls = %q: %v", out, err)
	}
	if n.Name != "bottle-x-internal" || n.Labels != "dev.bottle.role=network,dev.bottle.slug=x" || n.Driver != "bridge" || n.Internal != "false" || n.Scope != "local" {
		t.Errorf("network ls row = %+v", n)
	}
	ids := strings.Fields(must(t, env, "network", "ls", "--quiet", "--no-trunc"))
	if len(ids) != 5 || len(ids[0]) != 64 {
		t.Errorf("network ls -q = %q, want 5 full IDs (bridge, host, none and two)", ids)
	}
	for _, args := range [][]string{{"ps", "--filter", "colour=red"}, {"volume", "ls", "--filter", "colour=red"}} {
		if code, _, errs := runFake(env, args...); code != 1 || errs != "Error response from daemon: invalid filter 'colour'\n" {
			t.Errorf("%s with a bad filter: exit %d, stderr %q", args[0], code, errs)
		}
	}
}

func TestVolumes(t *testing.T) {
	env := daemonEnv(t)
	createVolume(t, env, "x")
	// Creating a volume that exists returns it, unchanged.
	if out := must(t, env, "volume", "create", "--label", "k=v", "bottle-x-sockets"); out != "bottle-x-sockets\n" {
		t.Errorf("second volume create printed %q", out)
	}
	out := must(t, env, "volume", "inspect", "bottle-x-sockets")
	var vs []struct {
		Name, Driver, Mountpoint, Scope string
		Labels, Options                 map[string]string
	}
	if err := json.Unmarshal([]byte(out), &vs); err != nil || len(vs) != 1 {
		t.Fatalf("volume inspect = %q: %v", out, err)
	}
	if v := vs[0]; v.Name != "bottle-x-sockets" || v.Driver != "local" || v.Scope != "local" || v.Labels["k"] != "" || v.Labels["dev.bottle.slug"] != "x" ||
		!maps.Equal(v.Options, map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "uid=1000,gid=1000,mode=0755,size=1m"}) {
		t.Errorf("volume inspect = %+v", v)
	}
	if out := must(t, env, "inspect", "--format", "{{.Name}} {{.Driver}}", "bottle-x-sockets"); out != "bottle-x-sockets local\n" {
		t.Errorf("inspect of a volume = %q", out)
	}
	if code, _, errs := runFake(env, "volume", "inspect", "gone"); code != 1 || !strings.Contains(errs, "Error response from daemon: get gone: no such volume") {
		t.Errorf("volume inspect of a missing volume: exit %d, stderr %q", code, errs)
	}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--opt", "colour=red", "v1"}, `create v1: invalid option: "colour"`},
		{[]string{"--opt", "type=tmpfs", "v1"}, `create v1: missing required option: "device"`},
		{[]string{"--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "size=1m", "v1"}, "create v1: quota size requested but no quota support"},
		{[]string{"--driver", "nfs", "v1"}, `create v1: error looking up volume plugin nfs: plugin "nfs" not found`},
		{[]string{"a/b"}, `create a/b: "a/b" includes invalid characters for a local volume name`},
	} {
		code, _, errs := runFake(env, append([]string{"volume", "create"}, tc.args...)...)
		if code != 1 || !strings.Contains(errs, "Error response from daemon: "+tc.err) {
			t.Errorf("volume create %q: exit %d, stderr %q, want %q", tc.args, code, errs, tc.err)
		}
	}
	if out := must(t, env, "volume", "ls", "-q"); out != "bottle-x-sockets\n" {
		t.Errorf("failed creates changed the volumes: %q", out)
	}

	// A volume mount creates a missing volume; a container that mounts a
	// volume, running or not, keeps it from being removed, even by force.
	must(t, env, "create", "--name", "user", "--mount", "type=volume,src=made,dst=/data", "alpine")
	if out := must(t, env, "volume", "ls", "-q"); out != "bottle-x-sockets\nmade\n" {
		t.Errorf("volumes after create = %q", out)
	}
	id := strings.TrimSpace(must(t, env, "inspect", "--format", "{{.Id}}", "user"))
	if out := must(t, env, "inspect", "--format", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Source}} {{.RW}}{{end}}", "user"); out != "volume made /var/lib/docker/volumes/made/_data true\n" {
		t.Errorf("mounts = %q", out)
	}
	for _, args := range [][]string{{"volume", "rm", "made"}, {"volume", "rm", "--force", "made"}} {
		code, _, errs := runFake(env, args...)
		if code != 1 || errs != "Error response from daemon: remove made: volume is in use - ["+id+"]\n" {
			t.Errorf("%q of a volume in use: exit %d, stderr %q", args, code, errs)
		}
	}
	must(t, env, "rm", "user")
	if out := must(t, env, "volume", "rm", "made"); out != "made\n" {
		t.Errorf("volume rm printed %q", out)
	}
	// A missing volume is an error without --force.
	if code, _, errs := runFake(env, "volume", "rm", "made"); code != 1 || errs != "Error response from daemon: get made: no such volume\n" {
		t.Errorf("volume rm of a missing volume: exit %d, stderr %q", code, errs)
	}
	if code, out, errs := runFake(env, "volume", "rm", "--force", "made"); code != 0 || out != "made\n" || errs != "" {
		t.Errorf("volume rm --force of a missing volume: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// An anonymous volume goes with its container's rm --volumes.
	must(t, env, "create", "--name", "anon", "--mount", "type=volume,dst=/scratch", "-v", "named:/named", "alpine")
	if out := must(t, env, "volume", "ls", "-q", "--filter", "label=com.docker.volume.anonymous"); len(strings.TrimSpace(out)) != 64 {
		t.Errorf("anonymous volumes = %q", out)
	}
	must(t, env, "rm", "--volumes", "anon")
	if out := must(t, env, "volume", "ls", "-q"); out != "bottle-x-sockets\nnamed\n" {
		t.Errorf("volumes after rm -v = %q", out)
	}
}

func TestNetworkRules(t *testing.T) {
	env := daemonEnv(t)
	must(t, env, "network", "create", "--subnet", "10.213.0.0/28", "a")
	code, _, errs := runFake(env, "network", "create", "--subnet", "10.213.0.8/29", "b")
	if code != 1 || !strings.Contains(errs, "Pool overlaps with other one on this address space") {
		t.Errorf("overlap: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := runFake(env, "network", "create", "--subnet", "10.213.0.16/28", "a"); code != 1 || !strings.Contains(errs, "network with name a already exists") {
		t.Errorf("duplicate: exit %d, stderr %q", code, errs)
	}
	must(t, env, "network", "create", "--subnet", "10.213.0.16/28", "b")
	out := must(t, env, "network", "inspect", "--format", "{{json .IPAM.Config}}", "a", "b", "bridge", "host")
	want := `[{"Gateway":"10.213.0.1","Subnet":"10.213.0.0/28"}]` + "\n" + `[{"Gateway":"10.213.0.17","Subnet":"10.213.0.16/28"}]` + "\n" +
		`[{"Gateway":"172.17.0.1","Subnet":"172.17.0.0/16"}]` + "\n[]\n"
	if out != want {
		t.Errorf("IPAM configs = %q, want %q", out, want)
	}

	must(t, env, "run", "--detach", "--name", "c", "--network", "a", "--ip", "10.213.0.2", "alpine", "sleep", "1d")
	out = must(t, env, "network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", "a")
	if out != "c 10.213.0.2/28\n" {
		t.Errorf("endpoints of a = %q", out)
	}
	code, _, errs = runFake(env, "network", "rm", "a")
	if code != 1 || !strings.Contains(errs, "has active endpoints") {
		t.Errorf("rm with a running container: exit %d, stderr %q", code, errs)
	}
	must(t, env, "rm", "--force", "c")
	if out := must(t, env, "network", "rm", "a"); out != "a\n" {
		t.Errorf("network rm printed %q", out)
	}
	if code, _, errs := runFake(env, "network", "rm", "a", "bridge"); code != 1 ||
		!strings.Contains(errs, "network a not found") || !strings.Contains(errs, "bridge is a pre-defined network") {
		t.Errorf("rm of a missing and a builtin network: exit %d, stderr %q", code, errs)
	}
}

func TestContainerRules(t *testing.T) {
	env := daemonEnv(t)
	dir := bundleDir(t)
	must(t, env, "network", "create", "--subnet", "10.213.0.0/28", "a")
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--network", "gone", "alpine"}, "network gone not found"},
		{[]string{"--mount", "type=bind,src=/nonexistent/x,dst=/x", "alpine"}, "bind source path does not exist: /nonexistent/x"},
		{[]string{"--network", "a", "--ip", "10.9.9.9", "alpine"}, "no configured subnet"},
		{[]string{"bottle.local/sidecars:none"}, "lookup bottle.local: no such host"},
		{[]string{"--network", "none", "--network", "a", "alpine"}, "container cannot be connected to multiple networks with one of the networks in private (none) mode"},
		{[]string{"--network", "none", "--ip", "10.213.0.3", "alpine"}, "user specified IP address is supported on user defined networks only"},
		{[]string{"--network", "none", "--network-alias", "proxy", "alpine"}, "network-scoped alias is supported only for containers in user defined networks"},
	} {
		if code, _, errs := runFake(env, append([]string{"create"}, tc.args...)...); code != 1 || !strings.Contains(errs, tc.err) {
			t.Errorf("create %q: exit %d, stderr %q, want %q", tc.args, code, errs, tc.err)
		}
	}
	if out := must(t, env, "ps", "-aq"); out != "" {
		t.Errorf("failed creates left containers: %q", out)
	}
	must(t, env, append([]string{"create"}, bundleArgs(t, env, "x", dir)...)...)
	if code, _, errs := runFake(env, "create", "--name", "bottle-x-sidecars", "alpine"); code != 1 || !strings.Contains(errs, `Conflict. The container name "/bottle-x-sidecars" is already in use`) {
		t.Errorf("name conflict: exit %d, stderr %q", code, errs)
	}
	must(t, env, "start", "bottle-x-sidecars")
	if code, _, errs := runFake(env, "rm", "bottle-x-sidecars"); code != 1 || !strings.Contains(errs, "container is running") {
		t.Errorf("rm of a running container: exit %d, stderr %q", code, errs)
	}
	// rm --force of several: those that exist go; the missing ones are
	// named on stderr, and that is no error.
	must(t, env, "create", "--name", "bottle-x-agent", "--network", "none", "alpine")
	code, out, errs := runFake(env, "rm", "--force", "bottle-x-agent", "bottle-x-gone", "bottle-x-sidecars")
	if code != 0 || out != "bottle-x-agent\nbottle-x-sidecars\n" || errs != "Error response from daemon: No such container: bottle-x-gone\n" {
		t.Errorf("rm --force of two containers and a missing one: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, out, errs := runFake(env, "rm", "--force", "bottle-x-sidecars"); code != 0 || out != "" || !strings.Contains(errs, "No such container: bottle-x-sidecars") {
		t.Errorf("rm --force of a missing container: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, _ := runFake(env, "rm", "bottle-x-sidecars"); code != 1 {
		t.Errorf("rm of a missing container: exit %d, want 1", code)
	}
	if code, _, errs := runFake(env, "start", "nothing"); code != 1 || !strings.Contains(errs, "Error: failed to start containers: nothing") {
		t.Errorf("start of a missing container: exit %d, stderr %q", code, errs)
	}
}

func TestAttachedExitStatus(t *testing.T) {
	env := daemonEnv(t)
	env["FAKE_DOCKER_CONTAINER_EXIT"] = "7"
	must(t, env, "create", "--name", "agent", "--network", "none", "--interactive", "--entrypoint", "", "alpine:3.20", "sh", "-c", "exit 7")
	if code, out, _ := runFake(env, "start", "--attach", "--interactive", "agent"); code != 7 || out != "" {
		t.Errorf("start --attach: exit %d, stdout %q, want 7 and nothing", code, out)
	}
	if out := must(t, env, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{json .Config.Cmd}}", "agent"); out != "exited 7 [\"sh\",\"-c\",\"exit 7\"]\n" {
		t.Errorf("agent state = %q", out)
	}
	if code, _, _ := runFake(env, "run", "--rm", "-it", "alpine", "false"); code != 7 {
		t.Errorf("run: exit %d, want 7", code)
	}
	if out := must(t, env, "ps", "-aq"); strings.Count(out, "\n") != 1 {
		t.Errorf("run --rm left its container: %q", out)
	}
	if code, _, errs := runFake(env, "run", "--name", "agent", "alpine"); code != 125 || !strings.HasPrefix(errs, "docker: Error response from daemon: Conflict.") {
		t.Errorf("run error: exit %d, stderr %q", code, errs)
	}
	env["FAKE_DOCKER_CONTAINER_EXIT"] = "256"
	if code, _, _ := runFake(env, "start", "-a", "agent"); code != 3 {
		t.Errorf("bad FAKE_DOCKER_CONTAINER_EXIT: exit %d, want 3", code)
	}
}

func TestImages(t *testing.T) {
	env := daemonEnv(t)
	if out := must(t, env, "image", "ls", "--format", "{{json .ID}}", "--filter", "reference=bottle.local/sidecars:1"); out != "" {
		t.Errorf("image ls before build = %q", out)
	}
	if code, _, errs := runFake(env, "build", "--tag", "bottle.local/sidecars:1", t.TempDir()); code != 1 || !strings.Contains(errs, "failed to read dockerfile") {
		t.Errorf("build without a Dockerfile: exit %d, stderr %q", code, errs)
	}
	must(t, env, "build", "--label", "dev.bottle.image=1", "--tag", "bottle.local/sidecars:1", writeContext(t))
	out := must(t, env, "image", "ls", "--format", "{{json .ID}}", "--filter", "reference=bottle.local/sidecars:1")
	if len(out) != len(`"0123456789ab"`)+1 {
		t.Errorf("image ls after build = %q", out)
	}
	if out := must(t, env, "images", "--format", "{{.Repository}}:{{.Tag}}", "bottle.local/*"); out != "bottle.local/sidecars:1\n" {
		t.Errorf("images by repository glob = %q", out)
	}
	must(t, env, "create", "alpine")
	if out := must(t, env, "image", "ls", "-q", "--filter", "reference=alpine"); out == "" {
		t.Error("create did not pull its image")
	}
}

// With FAKE_DOCKER_NO_REGISTRY, a build whose base image the daemon lacks
// fails as BuildKit's does when the registry does not resolve; scratch,
// earlier stages and images the daemon has need no registry.
func TestBuildWithoutRegistry(t *testing.T) {
	env := daemonEnv(t)
	env["FAKE_DOCKER_NO_REGISTRY"] = "registry.invalid"
	context := func(dockerfile string) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	code, _, errs := runFake(env, "build", "--tag", "bottle.local/a:1", context("# a comment\nFROM node:22-slim@sha256:ab12\nRUN true\n"))
	want := `ERROR: failed to solve: node:22-slim@sha256:ab12: failed to resolve source metadata for docker.io/library/node:22-slim@sha256:ab12: ` +
		`failed to do request: Head "https://registry.invalid/v2/library/node/manifests/sha256:ab12": dial tcp: lookup registry.invalid: no such host` + "\n"
	if code != 1 || !strings.HasSuffix(errs, want) || !strings.Contains(errs, "   2 | >>> FROM node:22-slim@sha256:ab12\n") {
		t.Errorf("exit %d, stderr:\n%s", code, errs)
	}
	if out := must(t, env, "image", "ls", "--quiet"); out != "" {
		t.Errorf("a failed build left an image: %q", out)
	}
	// A base image given by --build-arg, on a registry of its own.
	code, _, errs = runFake(env, "build", "--build-arg", "BASE=ghcr.io/acme/base:2", "--tag", "bottle.local/a:1", context("ARG BASE=debian:12\nFROM ${BASE}\n"))
	if code != 1 || !strings.Contains(errs, "failed to resolve source metadata for ghcr.io/acme/base:2: failed to do request: Head \"https://registry.invalid/v2/acme/base/manifests/2\"") {
		t.Errorf("exit %d, stderr:\n%s", code, errs)
	}
	must(t, env, "build", "--tag", "base:1", context("FROM scratch\n"))
	must(t, env, "build", "--tag", "bottle.local/a:1", context("FROM base:1 AS one\nFROM one\nFROM scratch\n"))
	delete(env, "FAKE_DOCKER_NO_REGISTRY")
	must(t, env, "build", "--tag", "bottle.local/b:1", context("FROM node:22\n"))
}

func TestFailOnArgument(t *testing.T) {
	env := daemonEnv(t)
	env["FAKE_DOCKER_FAIL"] = "volume create *-sockets, rm *-agent"
	must(t, env, "volume", "create", "bottle-x-data")
	if code, _, _ := runFake(env, "volume", "create", "--driver", "local", "bottle-x-sockets"); code != 1 {
		t.Errorf("volume create *-sockets: exit %d, want 1", code)
	}
	must(t, env, "rm", "--force", "bottle-x-sidecars")
	if code, _, _ := runFake(env, "rm", "--force", "bottle-x-agent", "bottle-x-sidecars"); code != 1 {
		t.Errorf("rm *-agent: exit %d, want 1", code)
	}
	if out := must(t, env, "volume", "ls", "--format", "{{.Name}}"); out != "bottle-x-data\n" {
		t.Errorf("a failed create changed the state: volumes %q", out)
	}
}

func TestConcurrentCreates(t *testing.T) {
	env := daemonEnv(t)
	done := make(chan int)
	for range 8 {
		go func() {
			code, _, _ := runFake(env, "create", "--name", "bottle-x-agent", "alpine")
			done <- code
		}()
	}
	ok := 0
	for range 8 {
		if <-done == 0 {
			ok++
		}
	}
	if ok != 1 {
		t.Errorf("%d of 8 concurrent creates of one name succeeded, want 1", ok)
	}
}

// TestSave writes an image as `docker save` does: a tar whose manifest.json
// names the config and layer blobs it holds, by the image's ID or tag, to
// a file or stdout; a missing image fails as the daemon does.
func TestSave(t *testing.T) {
	env := daemonEnv(t)
	must(t, env, "build", "--tag", "agent:1", writeContext(t))
	id := strings.TrimSpace(must(t, env, "image", "inspect", "--format", "{{.Id}}", "agent:1"))
	file := filepath.Join(t.TempDir(), "a.tar")
	must(t, env, "save", "-o", file, id)
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if out := must(t, env, "image", "save", "agent:1"); out != string(body) {
		t.Errorf("save to stdout differs from save -o")
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(body))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the archive is not a tar: %v", err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v, %s", err, files["manifest.json"])
	}
	m := manifest[0]
	if _, ok := files[m.Config]; !ok || len(m.Layers) != 1 || !slices.Equal(m.RepoTags, []string{"agent:1"}) {
		t.Errorf("manifest %+v does not match the archive's files %v", m, slices.Collect(maps.Keys(files)))
	}
	for _, l := range m.Layers {
		if _, ok := files[l]; !ok {
			t.Errorf("layer %s is not in the archive", l)
		}
	}
	if code, _, errs := runFake(env, "save", "-o", file, "missing:1"); code != 1 || !strings.Contains(errs, "No such image: missing:1") {
		t.Errorf("save of a missing image: exit %d, %q", code, errs)
	}
}
