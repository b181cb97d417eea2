package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
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
		{[]string{"--context", "remote", "-H", "unix:///x", "--debug", "network", "create", "--internal", "n"}, "network create"},
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
		"FAKE_DOCKER_OUT_NETWORK_LS":       `{"Name":"bridge"}`,
		"FAKE_DOCKER_OUT_NETWORK":          "fallback",
		"FAKE_DOCKER_OUT_VERSION":          `{"Server":null}`,
		"FAKE_DOCKER_FAIL":                 "run, network create",
		"FAKE_DOCKER_EXIT_RUN":             "125",
		"FAKE_DOCKER_ERR_NETWORK_CREATE":   "Error response from daemon: network with name bottle-x-int already exists",
		"FAKE_DOCKER_OUT_CONTAINER_CREATE": "",
	}
	if _, out, _ := runFake(env, "network", "ls", "--format", "{{json .}}"); out != "{\"Name\":\"bridge\"}\n" {
		t.Errorf("network ls = %q", out)
	}
	if _, out, _ := runFake(env, "network", "inspect", "x"); out != "fallback\n" {
		t.Errorf("network inspect fallback = %q", out)
	}
	if _, out, _ := runFake(env, "version", "--format", "{{json .}}"); out != "{\"Server\":null}\n" {
		t.Errorf("canned version = %q", out)
	}
	code, _, errs := runFake(env, "run", "--rm", "alpine")
	if code != 125 || !strings.Contains(errs, `injected failure for "docker run"`) {
		t.Errorf("run: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runFake(env, "network", "create", "--internal", "bottle-x-int")
	if code != 1 || errs != "Error response from daemon: network with name bottle-x-int already exists\n" {
		t.Errorf("network create: exit %d, stderr %q", code, errs)
	}
	if code, out, _ := runFake(env, "container", "create", "alpine"); code != 0 || out != "" {
		t.Errorf("container create: exit %d, out %q", code, out)
	}
	env["FAKE_DOCKER_FAIL"] = "network"
	if code, _, _ := runFake(env, "network", "rm", "x"); code != 1 {
		t.Errorf("prefix failure: exit %d", code)
	}
	if code, _, _ := runFake(env, "networks"); code != 0 {
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
	runFake(env, "network", "create", "--label", "dev.bottle.slug=x", "bottle-x-int")
	runFake(env, "run", "-e", "A=b c", "alpine")
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "docker network create --label dev.bottle.slug=x bottle-x-int\ndocker run -e 'A=b c' alpine\n"
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

// bundleDir is a bottle state directory holding the sidecar configuration.
func bundleDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sidecars.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// createBundle creates a bundle container of slug s on network net, the
// way the docker backend does.
func createBundle(t *testing.T, env map[string]string, s, net, dir string) {
	t.Helper()
	must(t, env, "build", "--tag", "bottle.local/sidecars:1", writeContext(t))
	must(t, env, "create", "--name", "bottle-"+s+"-sidecars", "--label", "dev.bottle.slug="+s, "--network", net, "--ip", "10.213.0.2",
		"--read-only", "--mount", "type=bind,src="+dir+",dst=/state", "bottle.local/sidecars:1", "sidecars", "--config", "/state/sidecars.json")
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
	must(t, env, "network", "create", "--internal", "--subnet", "10.213.0.0/28", "--label", "dev.bottle.slug=x", "bottle-x-internal")
	createBundle(t, env, "x", "bottle-x-internal", dir)
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

func TestBundleNotReady(t *testing.T) {
	for _, mode := range []string{"hang", "exit"} {
		t.Run(mode, func(t *testing.T) {
			env := daemonEnv(t)
			env["FAKE_DOCKER_NO_READY"] = mode
			dir := bundleDir(t)
			must(t, env, "network", "create", "--subnet", "10.213.0.0/28", "n")
			createBundle(t, env, "x", "n", dir)
			must(t, env, "start", "bottle-x-sidecars")
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
	must(t, env, "network", "create", "--subnet", "10.213.0.0/28", "n")
	createBundle(t, env, "x", "n", bundleDir(t))
	if code, _, errs := runFake(env, "start", "bottle-x-sidecars"); code != 3 || !strings.Contains(errs, "FAKE_DOCKER_NO_READY") {
		t.Errorf("bad FAKE_DOCKER_NO_READY: exit %d, stderr %q", code, errs)
	}
}

func TestBundleWithoutConfigExits(t *testing.T) {
	env := daemonEnv(t)
	dir := t.TempDir()
	must(t, env, "network", "create", "--subnet", "10.213.0.0/28", "n")
	createBundle(t, env, "x", "n", dir)
	must(t, env, "start", "bottle-x-sidecars")
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
	must(t, env, "network", "create", "--subnet", "10.213.0.0/28", "--label", "dev.bottle.slug=x", "--label", "dev.bottle.role=network", "bottle-x-internal")
	must(t, env, "network", "create", "--label", "other=1", "mine")
	createBundle(t, env, "x", "bottle-x-internal", dir)
	must(t, env, "create", "--name", "unlabelled", "alpine")

	out := must(t, env, "ps", "--all", "--no-trunc", "--filter", "label=dev.bottle.slug", "--format", "{{json .}}")
	var c struct{ Names, Labels, State, Image, Networks, ID string }
	if err := json.Unmarshal([]byte(out), &c); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("ps = %q: %v", out, err)
	}
	if c.Names != "bottle-x-sidecars" || c.Labels != "dev.bottle.slug=x" || c.State != "created" || c.Networks != "bottle-x-internal" || len(c.ID) != 64 {
		t.Errorf("ps row = %+v", c)
	}
	if out := must(t, env, "ps", "--filter", "label=dev.bottle.slug"); strings.Contains(out, "bottle-x") {
		t.Errorf("ps without --all lists a created container: %q", out)
	}
	if out := must(t, env, "ps", "-aq", "--filter", "label=dev.bottle.slug=y"); out != "" {
		t.Errorf("label value filter: %q", out)
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
	if code, _, errs := runFake(env, "ps", "--filter", "colour=red"); code != 1 || errs != "Error response from daemon: invalid filter 'colour'\n" {
		t.Errorf("bad filter: exit %d, stderr %q", code, errs)
	}
}

func TestNetworkRules(t *testing.T) {
	env := daemonEnv(t)
	dir := bundleDir(t)
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

	createBundle(t, env, "x", "a", dir)
	if code, _, errs := runFake(env, "network", "connect", "missing", "bottle-x-sidecars"); code != 1 || !strings.Contains(errs, "network missing not found") {
		t.Errorf("connect to a missing network: exit %d, stderr %q", code, errs)
	}
	must(t, env, "network", "connect", "b", "bottle-x-sidecars")
	if code, _, errs := runFake(env, "network", "connect", "b", "bottle-x-sidecars"); code != 1 || !strings.Contains(errs, "already exists in network b") {
		t.Errorf("second connect: exit %d, stderr %q", code, errs)
	}
	must(t, env, "start", "bottle-x-sidecars")
	out = must(t, env, "network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", "a")
	if out != "bottle-x-sidecars 10.213.0.2/28\n" {
		t.Errorf("endpoints of a = %q", out)
	}
	code, _, errs = runFake(env, "network", "rm", "a")
	if code != 1 || !strings.Contains(errs, "has active endpoints") {
		t.Errorf("rm with a running container: exit %d, stderr %q", code, errs)
	}
	must(t, env, "network", "disconnect", "--force", "a", "bottle-x-sidecars")
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
	if code, _, errs := runFake(env, "create", "--network", "gone", "alpine"); code != 1 || !strings.Contains(errs, "network gone not found") {
		t.Errorf("missing network: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := runFake(env, "create", "--mount", "type=bind,src=/nonexistent/x,dst=/x", "alpine"); code != 1 ||
		!strings.Contains(errs, "bind source path does not exist: /nonexistent/x") {
		t.Errorf("missing bind source: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := runFake(env, "create", "--network", "a", "--ip", "10.9.9.9", "alpine"); code != 1 || !strings.Contains(errs, "no configured subnet") {
		t.Errorf("address outside the subnet: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := runFake(env, "create", "bottle.local/sidecars:none"); code != 1 || !strings.Contains(errs, "lookup bottle.local: no such host") {
		t.Errorf("unbuilt bottle.local image: exit %d, stderr %q", code, errs)
	}
	createBundle(t, env, "x", "a", dir)
	if code, _, errs := runFake(env, "create", "--name", "bottle-x-sidecars", "alpine"); code != 1 || !strings.Contains(errs, `Conflict. The container name "/bottle-x-sidecars" is already in use`) {
		t.Errorf("name conflict: exit %d, stderr %q", code, errs)
	}
	must(t, env, "start", "bottle-x-sidecars")
	if code, _, errs := runFake(env, "rm", "bottle-x-sidecars"); code != 1 || !strings.Contains(errs, "container is running") {
		t.Errorf("rm of a running container: exit %d, stderr %q", code, errs)
	}
	if out := must(t, env, "rm", "--force", "bottle-x-sidecars"); out != "bottle-x-sidecars\n" {
		t.Errorf("rm printed %q", out)
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
	must(t, env, "network", "create", "a")
	must(t, env, "create", "--name", "agent", "--network", "a", "--interactive", "--entrypoint", "", "alpine:3.20", "sh", "-c", "exit 7")
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

func TestFailOnArgument(t *testing.T) {
	env := daemonEnv(t)
	env["FAKE_DOCKER_FAIL"] = "network create *-egress, rm *-agent"
	must(t, env, "network", "create", "bottle-x-internal")
	if code, _, _ := runFake(env, "network", "create", "--driver", "bridge", "bottle-x-egress"); code != 1 {
		t.Errorf("network create *-egress: exit %d, want 1", code)
	}
	must(t, env, "rm", "--force", "bottle-x-sidecars")
	if code, _, _ := runFake(env, "rm", "--force", "bottle-x-agent"); code != 1 {
		t.Errorf("rm *-agent: exit %d, want 1", code)
	}
	out := must(t, env, "network", "ls", "--format", "{{.Name}}", "--filter", "type=custom")
	if out != "bottle-x-internal\n" {
		t.Errorf("a failed create changed the state: networks %q", out)
	}
}

func TestConcurrentCreates(t *testing.T) {
	env := daemonEnv(t)
	done := make(chan int)
	for i := range 8 {
		go func() {
			code, _, _ := runFake(env, "network", "create", "--subnet", "10.213.0.0/28", fmt.Sprintf("n%d", i))
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
		t.Errorf("%d of 8 concurrent creates of one subnet succeeded, want 1", ok)
	}
}
