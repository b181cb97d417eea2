// Package smolmachines is bottle's microVM backend. It drives the smolvm
// CLI (found on PATH, or named by BOTTLE_SMOLVM), written for smolvm
// render.SmolvmVersion, the oldest release it accepts (see
// render.SmolvmVersion for why that one).
//
// A bottle is one smolvm machine, bottle-<slug>, labelled
// dev.bottle.slug=<slug>, with no network device at all (net = false in
// its Smolfile). Its sidecars run on the host as one `bottle sidecars`
// process listening on unix sockets in the state directory; `machine
// create --mount-socket HOST:GUEST` bridges each into the guest at
// /run/bottle/<name>.sock, over vsock. No NIC is a stronger guarantee than
// any packet policy: the guest has nothing to route with.
//
// Inside the guest bottle's own static linux binary, shared read-only at
// /opt/bottle, runs first as `bottle guest`: it listens on 127.0.0.1 at
// each sidecar's port, relays to the mounted sockets, runs the agent (or
// the one-off command of `bottle start -- CMD`) as its child and exits
// with its code. The agent reaches the egress proxy through HTTPS_PROXY and
// HTTP_PROXY=http://127.0.0.1:<port>.
//
// The image reaches the VM as a `docker save` archive that bottle makes
// on the host and caches by image ID (image.go): smolvm pulls registry
// images inside the guest and so refuses one on a machine without a
// network (src/config.rs:828-872@v1.8.1).
//
// The lifecycle is `machine create --image ARCHIVE`, `machine start`,
// `machine exec -i [-t] -- /opt/bottle/bottle guest --control
// /run/bottle/control.sock --forward ... -- CMD`, and on the way out
// (also on Ctrl-C and SIGTERM, from any step) `machine stop`, `machine
// delete -f` and the sidecars' stop. The Smolfile's `cmd`, the machine's
// persistent workload that smolvm starts detached on every boot, is
// `bottle guest --idle`: were it empty, smolvm would start the image's own
// ENTRYPOINT and CMD (an agent, outside bottle's control) instead.
//
// smolvm's exec forwards no signals to the guest, and its `--secret-env`
// values reach the guest's crun as `--env K=V` arguments
// (crates/smolvm-agent/src/crun.rs:335-351@v1.8.1), which every process
// in the guest can read. So bottle uses neither: a control socket in the
// state directory, mounted into the guest like the sidecars' sockets,
// carries the secrets to bottle guest (which puts them only in the agent's
// environment), bottle's signals to the agent, and the agent's exit code
// back (see bottleguest.ListenControl). When bottle dies the socket
// closes, and bottle guest stops the agent. Without a terminal, smolvm's
// exec runs in a process group of its own, so a terminal's Ctrl-C reaches
// bottle, which passes it on; with one, smolvm stays in the foreground to
// own the terminal, which is in raw mode, so Ctrl-C is a key for the agent.
//
// Secrets never appear in a process's arguments or in a file, on the host
// or in the guest.
//
// The guest binary must be a static linux build for the host's
// architecture (a microVM runs the host's). On a Linux host bottle uses
// its own executable, if it was built with CGO_ENABLED=0. Elsewhere, and
// for a dynamically linked bottle, set BOTTLE_GUEST_BINARY to such a
// build; on a macOS host (Apple silicon, whose guests are linux/arm64):
//
//	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -o bottle-linux-arm64 ./cmd/bottle
//	export BOTTLE_GUEST_BINARY=$PWD/bottle-linux-arm64
//
// Preflight checks, each failure a line that says how to fix it: smolvm
// is installed and new enough, /dev/kvm (BOTTLE_KVM_DEVICE) is a device
// the user may read and write on Linux, the guest binary fits, the mount
// sources are directories, and the socket paths are short enough.
//
// Two environment variables exist for bottle's own tests:
// BOTTLE_SMOL_TEST_GUEST names a guest binary that is not checked (a
// dynamically linked test binary), and BOTTLE_SMOL_TEST_PAUSE=STEP
// (sidecars, create, start or exec) makes Launch stop before that step,
// create the file test-paused in the state directory, and wait to be
// cancelled or killed.
package smolmachines

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// Labels on every machine.
const (
	LabelSlug   = backends.LabelSlug
	LabelDigest = backends.LabelDigest
)

// machinePrefix starts the name of every machine bottle creates.
const machinePrefix = "bottle-"

// Where things are inside the guest.
const (
	// guestDir is where the directory holding the guest binary is shared.
	guestDir = "/opt/bottle"
	// guestBinaryName is the guest binary's name in that directory.
	guestBinaryName = "bottle"
	// guestSocketDir holds the mounted sidecar sockets.
	guestSocketDir = sidecars.SandboxSocketDir
)

// Environment variables bottle's tests set; see the package comment.
const (
	envTestGuest = "BOTTLE_SMOL_TEST_GUEST"
	envTestPause = "BOTTLE_SMOL_TEST_PAUSE"
)

// Backend is the smolmachines backend.
type Backend struct {
	// Runner runs the smolvm CLI; nil means backends.Exec.
	Runner backends.Runner
	// Smolvm is the CLI's path; empty means $BOTTLE_SMOLVM, else "smolvm"
	// on PATH.
	Smolvm string
}

func init() { backends.Register(plan.BackendSmolmachines, &Backend{}) }

func (s *Backend) runner() backends.Runner {
	if s.Runner != nil {
		return s.Runner
	}
	return backends.Exec{}
}

// cli returns the smolvm CLI's path or a one-line fix.
func (s *Backend) cli() (string, error) {
	name := s.Smolvm
	if name == "" {
		name = os.Getenv("BOTTLE_SMOLVM")
	}
	if name == "" {
		name = "smolvm"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("smolvm (%s) was not found; install smolvm %s or newer (see github.com/smol-machines/smolvm) or set BOTTLE_SMOLVM to its path", name, minVersion)
	}
	return p, nil
}

func (s *Backend) out(ctx context.Context, args ...string) ([]byte, error) {
	cli, err := s.cli()
	if err != nil {
		return nil, err
	}
	return s.runner().Output(ctx, backends.Cmd{Path: cli, Args: args})
}

// machineName is the name of a bottle's machine.
func machineName(slug string) string { return machinePrefix + slug }

// notFound reports whether smolvm said the machine does not exist.
func notFound(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "not found")
}
