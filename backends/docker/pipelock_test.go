package docker_test

import (
	"strings"
	"testing"
)

// TestPipelockInSandbox runs pipelock as the egress sidecar against a real
// daemon: the host's binary (a static build of the stand-in, which
// follows pipelock 2.3.0's source) is copied into the bundle image, run
// there on a loopback port, and bridged onto the agent's 127.0.0.1:8888.
// A host no rule allows gets pipelock's own refusal through the relay.
func TestPipelockInSandbox(t *testing.T) {
	e := newEnv(t)
	e.extra = append(e.extra, "BOTTLE_PIPELOCK="+fixture.pipelock)
	profile := e.profile("pipelock.star", `
docker(image = "AGENT_IMAGE")
sidecar("pipelock")
allow("allowed.test", ports = [443])
`)
	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c",
		`echo "proxy=$HTTPS_PROXY"; /bin/probe http http://denied.test/; true`)
	if code != 0 {
		t.Fatalf("bottle exited %d:\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "proxy=http://127.0.0.1:8888") {
		t.Errorf("the agent is not pointed at pipelock:\n%s", out)
	}
	if !strings.Contains(out, "status 403") || !strings.Contains(out, "blocked") || strings.Contains(out, "bottle: egress") {
		t.Errorf("pipelock did not refuse the denied host through the relay:\n%s", out)
	}
}
