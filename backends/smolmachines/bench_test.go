package smolmachines

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/backends"
	_ "github.com/bottle-dev/bottle/sidecars/all" // git-gate and supervise sections
	bstar "github.com/bottle-dev/bottle/starlark"
)

// errAtCreate stops a launch where smolvm would create the machine.
var errAtCreate = errors.New("stopped at machine create")

// stopAtCreate is a Runner that stops the benchmark's clock and fails at
// `machine create`, and answers every other smolvm command (the teardown)
// with success. Only bottle's own time before smolvm runs is measured.
type stopAtCreate struct{ b *testing.B }

func (r stopAtCreate) Output(_ context.Context, c backends.Cmd) ([]byte, error) {
	if len(c.Args) > 1 && c.Args[1] == "create" {
		r.b.StopTimer()
		return nil, errAtCreate
	}
	// The image is in the cache after the first launch: the engine is
	// asked for its ID only, as in a real launch of a cached image.
	if len(c.Args) > 1 && c.Args[0] == "image" && c.Args[1] == "inspect" {
		return []byte(idA + "\n"), nil
	}
	if len(c.Args) > 2 && c.Args[0] == "save" {
		return nil, os.WriteFile(c.Args[2], []byte("archive"), 0o644)
	}
	return nil, nil
}

func (r stopAtCreate) Attach(context.Context, backends.Cmd, backends.Stdio) (int, error) {
	return -1, errors.New("not reached")
}

// BenchmarkLaunchToCreate measures what bottle start does before `smolvm
// machine create`: evaluate the profile, claim the state directory, render
// the sidecar configuration and the Smolfile, stage the guest binary (a
// copy of this test binary, as large as bottle), start the host sidecars
// (egress and supervise, this test binary as `bottle sidecars`) and wait
// until they listen. The target is 50 ms.
func BenchmarkLaunchToCreate(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	ws := filepath.Join(dir, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		b.Fatal(err)
	}
	profile := filepath.Join(ws, "p.star")
	err = os.WriteFile(profile, []byte(strings.Join([]string{
		`smolmachines(image = "alpine:3.20", cpus = 2, memory = "2GiB")`,
		`mount(".", "/workspace")`,
		`allow("api.anthropic.com")`,
		`allow("registry.example.org")`,
		`sidecar("supervise")`,
		`agent(command = ["sh"])`,
	}, "\n")+"\n"), 0o644)
	if err != nil {
		b.Fatal(err)
	}
	b.Setenv(envTestGuest, exe)
	b.Setenv(envTestPause, "")
	b.Setenv("BOTTLE_DOCKER", "true")
	b.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	be := &Backend{Runner: stopAtCreate{b}, Smolvm: exe}
	ctx := context.Background()
	env := bstar.Env{Workspace: ws, StateHome: filepath.Join(dir, "state")}

	b.ResetTimer()
	for range b.N {
		src, err := bstar.Open(profile)
		if err != nil {
			b.Fatal(err)
		}
		p, err := bstar.Load(ctx, src, bstar.Options{Stderr: io.Discard}, env)
		if err != nil {
			b.Fatal(err)
		}
		// As the engine does before a launch: the sidecars' sockets.
		if err := be.Configure(p); err != nil {
			b.Fatal(err)
		}
		st, err := backends.Claim(p.StateDir)
		if err != nil {
			b.Fatal(err)
		}
		planJSON, err := json.Marshal(p)
		if err == nil {
			err = st.WriteFile(backends.PlanFile, planJSON)
		}
		if err != nil {
			b.Fatal(err)
		}
		bottle := &backends.Bottle{Plan: p, State: st, Executable: exe, Progress: io.Discard}
		if _, err := be.Launch(ctx, bottle, backends.Stdio{}); !errors.Is(err, errAtCreate) {
			b.Fatalf("Launch: %v, want it stopped at machine create", err)
		}
		if err := st.Release(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
