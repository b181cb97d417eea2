package docker

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
