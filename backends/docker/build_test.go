package docker

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/backends"
)

// buildRunner answers every docker build with canned output and an exit
// code.
type buildRunner struct {
	out  string
	code int
	args [][]string
}

func (r *buildRunner) Output(context.Context, backends.Cmd) ([]byte, error) { return nil, nil }

func (r *buildRunner) Attach(_ context.Context, c backends.Cmd, stdio backends.Stdio) (int, error) {
	r.args = append(r.args, c.Args)
	io.WriteString(stdio.Stderr, r.out)
	return r.code, nil
}

func TestBuildFailureNamesTheCause(t *testing.T) {
	agent := imageBuild{tag: ClaudeImage, base: "node:22-bookworm-slim@sha256:00", fix: "FIX"}
	basePull := "the base image node:22-bookworm-slim@sha256:00 cannot be pulled (no image registry reachable?); FIX"
	for _, tc := range []struct {
		name string
		b    imageBuild
		out  string
		want string
	}{
		{"buildkit, no DNS", agent, "#2 [internal] load metadata for docker.io/library/node:22-slim\n" +
			"ERROR: failed to solve: node:22-slim: failed to resolve source metadata for docker.io/library/node:22-slim: " +
			"failed to do request: Head \"https://registry.invalid/v2/library/node/manifests/22-slim\": dial tcp: lookup registry.invalid: no such host\n", basePull},
		{"buildkit, timeout", agent, "failed to solve: DeadlineExceeded: node:22-slim: failed to do request: Head \"https://registry.invalid/v2/x\": dial tcp 192.0.2.1:443: i/o timeout\n", basePull},
		{"pull access denied", agent, "ERROR: failed to solve: pull access denied, repository does not exist or may require authorization\n", basePull},
		{"legacy builder", agent, "Sending build context to Docker daemon  2.048kB\nStep 1/4 : FROM node:22-slim\n" +
			"Get \"https://registry.invalid/v2/\": dial tcp: lookup registry.invalid on 10.0.0.53:53: no such host\n", basePull},
		{"legacy builder, TLS", agent, "Step 1/4 : FROM node:22-slim\nGet \"https://registry.invalid/v2/\": net/http: TLS handshake timeout\n", basePull},
		{"legacy builder, a later step's network failure", agent, "Step 1/4 : FROM node:22-slim\n ---> 1234\nStep 2/4 : RUN curl x\n" +
			"curl: (6) Could not resolve host: x; dial tcp: no such host\nThe command '/bin/sh -c curl x' returned a non-zero code: 6\n",
			"build image " + ClaudeImage + ": docker build exited with 6 (the end of its output is above)"},
		{"npm without a network", agent, "#5 [2/2] RUN npm install -g @anthropic-ai/claude-code@2.1.332\n#5 12.30 npm ERR! code ENOTFOUND\n" +
			"#5 12.30 npm ERR! syscall getaddrinfo\n#5 12.31 npm ERR! network request failed\n",
			"docker build of " + ClaudeImage + " could not reach the npm registry (npm: ENOTFOUND); let docker build reach it (network, DNS, proxy), or build or tag an image yourself and name it in docker(image = ...)"},
		{"npm 10, untrusted certificate", agent, "npm error code SELF_SIGNED_CERT_IN_CHAIN\nnpm error errno SELF_SIGNED_CERT_IN_CHAIN\n",
			"docker build of " + ClaudeImage + " could not reach the npm registry (npm: SELF_SIGNED_CERT_IN_CHAIN); let docker build reach it (network, DNS, proxy), or build or tag an image yourself and name it in docker(image = ...)"},
		{"npm, a package that does not exist", agent, "npm ERR! code E404\nnpm ERR! 404 Not Found\n",
			"build image " + ClaudeImage + ": docker build exited with 6 (the end of its output is above)"},
		{"scratch has no base to pull", imageBuild{tag: "bottle.local/sidecars:x"}, "ERROR: failed to solve: failed to resolve source metadata for x\n",
			"build image bottle.local/sidecars:x: docker build exited with 6 (the end of its output is above)"},
	} {
		code := 1
		if strings.HasSuffix(tc.want, "exited with 6 (the end of its output is above)") {
			code = 6
		}
		if got := buildFailure(tc.b, code, tc.out).Error(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestBuildCollapsesOnSuccessAndShowsTheTailOnFailure(t *testing.T) {
	var noise strings.Builder
	for i := range 100 {
		noise.WriteString("#5 " + strings.Repeat("x", i%7) + " step output line\n")
	}
	r := &buildRunner{out: noise.String()}
	d := &Backend{Runner: r, Docker: "/usr/bin/docker"}
	b := imageBuild{what: "the agent image T (test)", tag: "bottle.local/t:1", dir: "/ctx", base: "node@sha256:00", fix: "FIX",
		args: []string{"--build-arg", "A=1"}}
	var progress bytes.Buffer
	if err := d.build(context.Background(), b, &progress); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`\Abottle: building the agent image T \(test\)\nbottle: built bottle.local/t:1 in [0-9.]+m?s\n\z`).Match(progress.Bytes()) {
		t.Errorf("a successful build showed more than two lines:\n%s", progress.String())
	}
	want := []string{"build", "--label", "dev.bottle.image=1", "--tag", "bottle.local/t:1", "--build-arg", "A=1", "/ctx"}
	if got := r.args[0]; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("docker %v, want docker %v", got, want)
	}

	r.out, r.code = noise.String()+"Step 1/2 : FROM node\nGet \"https://registry.invalid/v2/\": dial tcp: lookup registry.invalid: no such host\n", 1
	progress.Reset()
	err := d.build(context.Background(), b, &progress)
	if err == nil || !strings.HasPrefix(err.Error(), "the base image node@sha256:00 cannot be pulled") {
		t.Fatalf("err = %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(progress.String(), "\n"), "\n")
	if len(lines) != 2+buildTail {
		t.Fatalf("a failed build showed %d lines, want the start, a heading and %d lines of output:\n%s", len(lines), buildTail, progress.String())
	}
	if !strings.HasPrefix(lines[1], "bottle: docker build of bottle.local/t:1 failed after ") || lines[len(lines)-1] != "    Get \"https://registry.invalid/v2/\": dial tcp: lookup registry.invalid: no such host" {
		t.Errorf("failure output:\n%s", progress.String())
	}
}

func TestLastLinesDropsControlCharacters(t *testing.T) {
	got := lastLines("a\n\x1b[31mred\x1b[0m\r\nprogress 10%\rprogress 100%\n\n", 3)
	want := []string{"a", "[31mred[0m", "progress 100%"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lastLines = %q, want %q", got, want)
	}
}

func TestBuildLogKeepsTheEnd(t *testing.T) {
	l := newBuildLog(io.Discard)
	chunk := strings.Repeat("y", 1023) + "\n"
	for range 2 * maxBuildLog / len(chunk) {
		l.Write([]byte(chunk))
	}
	l.Write([]byte("the end\n"))
	if s := l.String(); len(s) > maxBuildLog || !strings.HasSuffix(s, "the end\n") {
		t.Errorf("kept %d bytes ending %q", len(s), s[max(0, len(s)-20):])
	}
}

// The shipped agent images are pinned: the base image by digest, the
// agent's package by exact version, the same versions as the script that
// builds them with no registry.
func TestAgentImagesArePinned(t *testing.T) {
	b, err := os.ReadFile("../../scripts/agent-image")
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	pkg := regexp.MustCompile(`npm install -g [^\n]*?(@[a-z-]+/[a-z-]+@[0-9]+\.[0-9]+\.[0-9]+)\s`)
	for image, ai := range agentImages {
		base := dockerfileBase(ai.dockerfile)
		if !regexp.MustCompile(`^node:22-bookworm-slim@sha256:[0-9a-f]{64}$`).MatchString(base) {
			t.Errorf("%s: base image %q is not pinned by digest", image, base)
		}
		m := pkg.FindSubmatch(ai.dockerfile)
		if m == nil {
			t.Errorf("%s: no npm install of an exact version", image)
			continue
		}
		if !strings.Contains(script, ai.script+"_pkg="+string(m[1])+"\n") {
			t.Errorf("%s installs %s, but scripts/agent-image %s does not", image, m[1], ai.script)
		}
		if !regexp.MustCompile(`(?m)^USER node$`).Match(ai.dockerfile) || !regexp.MustCompile(`(?m)^WORKDIR /workspace$`).Match(ai.dockerfile) {
			t.Errorf("%s: not run as the unprivileged user in /workspace", image)
		}
	}
	if len(agentImages) != 2 {
		t.Errorf("agent images: %d", len(agentImages))
	}
}

func TestDockerfileBase(t *testing.T) {
	for in, want := range map[string]string{
		"# c\nFROM node:22@sha256:ab AS x\nRUN y\nFROM x\n": "node:22@sha256:ab",
		"from --platform=linux/amd64 debian:12\n":           "debian:12",
		"FROM scratch\nCOPY a /a\n":                         "",
	} {
		if got := dockerfileBase([]byte(in)); got != want {
			t.Errorf("dockerfileBase(%q) = %q, want %q", in, got, want)
		}
	}
}
