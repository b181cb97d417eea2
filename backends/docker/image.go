package docker

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bottle-dev/bottle/backends"
)

var (
	//go:embed assets/bundle.Dockerfile
	bundleDockerfile []byte
	//go:embed assets/bundle-git.Dockerfile
	bundleGitDockerfile []byte
	//go:embed assets/claude-code.Dockerfile
	claudeDockerfile []byte
	//go:embed assets/codex.Dockerfile
	codexDockerfile []byte
)

// DefaultBundleBase is the base of the git gate's bundle unless
// BOTTLE_BUNDLE_BASE names another (for example one made with debootstrap
// and docker import where no registry is reachable).
const DefaultBundleBase = "debian:12-slim"

// ClaudeImage is the agent image of the shipped Claude Code profile, which
// bottle builds from its embedded Dockerfile when it is missing. The
// bottle.local registry name does not resolve, so docker never pulls
// someone else's image under this name.
const ClaudeImage = "bottle.local/claude-code:latest"

// CodexImage is the agent image for Codex, built like ClaudeImage.
const CodexImage = "bottle.local/codex:latest"

// agentImage is a shipped agent image: its Dockerfile, what it holds, and
// the argument of scripts/agent-image that builds it with no registry.
type agentImage struct {
	dockerfile []byte
	holds      string
	script     string
}

// agentImages are the images bottle builds when a profile names them and
// the daemon lacks them.
var agentImages = map[string]agentImage{
	ClaudeImage: {claudeDockerfile, "Node.js and Claude Code", "claude"},
	CodexImage:  {codexDockerfile, "Node.js and Codex", "codex"},
}

// bundleRepo is the sidecar bundle's repository; its tag is a hash of the
// bundle's inputs, so it is rebuilt exactly when they change.
const bundleRepo = "bottle.local/sidecars"

// caBundles are where hosts keep their CA certificates.
var caBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/cert.pem",
}

// sidecarBinary returns the static linux bottle binary the bundle runs:
// $BOTTLE_SIDECAR_BINARY, else bottle's own executable.
func sidecarBinary(exe, arch string) (string, error) {
	if p := os.Getenv("BOTTLE_SIDECAR_BINARY"); p != "" {
		exe = p
	}
	if err := backends.CheckStaticLinux(exe, arch, "the sidecar bundle", "BOTTLE_SIDECAR_BINARY"); err != nil {
		return "", err
	}
	return exe, nil
}

// bundleInputs gathers the build context of the sidecar bundle and the tag
// that names it.
type bundleInputs struct {
	binary string
	// pipelock is the host's pipelock binary, copied in when the plan's
	// egress sidecar is pipelock; empty otherwise.
	pipelock   string
	dockerfile []byte
	// base is the git bundle's base image; empty for the scratch bundle.
	base string
	ca   []byte
	tag  string
}

// newBundleInputs picks the bundle for the plan's sidecars: FROM scratch
// when every sidecar is built in and pure Go, a Debian base with git when
// the plan has a git gate. A pipelock binary, when given, is copied in
// beside bottle's as /pipelock and named by BOTTLE_PIPELOCK; the tag then
// covers its bytes too.
func newBundleInputs(binary string, withGit bool, pipelock string) (*bundleInputs, error) {
	in := &bundleInputs{binary: binary, pipelock: pipelock, dockerfile: bundleDockerfile}
	if withGit {
		in.dockerfile, in.base = bundleGitDockerfile, DefaultBundleBase
		if b := os.Getenv("BOTTLE_BUNDLE_BASE"); b != "" {
			in.base = b
		}
	}
	if pipelock != "" {
		in.dockerfile = append(slices.Clone(in.dockerfile), []byte("COPY pipelock /pipelock\nENV BOTTLE_PIPELOCK=/pipelock\n")...)
	}
	for _, p := range caBundles {
		if b, err := os.ReadFile(p); err == nil {
			in.ca = b
			break
		}
	}
	f, err := os.Open(binary)
	if err != nil {
		return nil, fmt.Errorf("read the sidecar binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	h.Write(in.dockerfile)
	h.Write([]byte{0})
	h.Write([]byte(in.base))
	h.Write([]byte{0})
	h.Write(in.ca)
	h.Write([]byte{0})
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("read the sidecar binary: %w", err)
	}
	if pipelock != "" {
		pf, err := os.Open(pipelock)
		if err != nil {
			return nil, fmt.Errorf("read pipelock: %w", err)
		}
		defer pf.Close()
		h.Write([]byte{0})
		if _, err := io.Copy(h, pf); err != nil {
			return nil, fmt.Errorf("read pipelock: %w", err)
		}
	}
	in.tag = bundleRepo + ":" + hex.EncodeToString(h.Sum(nil))[:20]
	return in, nil
}

// imageExists reports whether the daemon has the image.
func (d *Backend) imageExists(ctx context.Context, ref string) (bool, error) {
	out, err := d.out(ctx, "image", "ls", "--format", "{{json .ID}}", "--filter", "reference="+ref)
	if err != nil {
		return false, fmt.Errorf("list images: %w", err)
	}
	return len(bytes.TrimSpace(out)) > 0, nil
}

// ensureBundle builds the sidecar bundle image unless an image with the
// same inputs exists, showing the build's progress.
func (d *Backend) ensureBundle(ctx context.Context, in *bundleInputs, progress io.Writer) error {
	ok, err := d.imageExists(ctx, in.tag)
	if err != nil || ok {
		return err
	}
	dir, err := os.MkdirTemp("", "bottle-bundle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), in.dockerfile, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca-certificates.crt"), in.ca, 0o644); err != nil {
		return err
	}
	if err := copyFile(in.binary, filepath.Join(dir, "bottle"), 0o755); err != nil {
		return err
	}
	if in.pipelock != "" {
		if err := copyFile(in.pipelock, filepath.Join(dir, "pipelock"), 0o755); err != nil {
			return err
		}
	}
	b := imageBuild{what: "the sidecar bundle image " + in.tag, tag: in.tag, dir: dir, base: in.base,
		fix: "make one with scripts/debian-base-image and name it in BOTTLE_BUNDLE_BASE"}
	if in.base != "" {
		b.args = []string{"--build-arg", "BASE=" + in.base}
	}
	return d.build(ctx, b, progress)
}

// ensureAgentImage builds a shipped agent image when the profile uses it
// and it is missing. Other images are the profile's business: docker run
// pulls them as usual.
func (d *Backend) ensureAgentImage(ctx context.Context, image string, progress io.Writer) error {
	ai, ok := agentImages[image]
	if !ok {
		return nil
	}
	ok, err := d.imageExists(ctx, image)
	if err != nil || ok {
		return err
	}
	dir, err := os.MkdirTemp("", "bottle-agent-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), ai.dockerfile, 0o644); err != nil {
		return err
	}
	return d.build(ctx, imageBuild{
		what: fmt.Sprintf("the agent image %s (%s)", image, ai.holds), tag: image, dir: dir,
		base: dockerfileBase(ai.dockerfile),
		fix: fmt.Sprintf("build or tag an image yourself and name it in docker(image = ...), or build %s with scripts/agent-image %s",
			image, ai.script),
	}, progress)
}

// dockerfileBase returns the image of a Dockerfile's first FROM line, or
// "" for scratch.
func dockerfileBase(dockerfile []byte) string {
	for _, line := range strings.Split(string(dockerfile), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.EqualFold(f[0], "FROM") {
			for _, w := range f[1:] {
				if !strings.HasPrefix(w, "--") {
					if w == "scratch" {
						return ""
					}
					return w
				}
			}
		}
	}
	return ""
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return errors.Join(out.Close())
}
