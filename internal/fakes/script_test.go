package fakes_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bottle-dev/bottle/internal/fakes/docker"
	"github.com/bottle-dev/bottle/internal/fakes/pipelock"
	"github.com/bottle-dev/bottle/internal/fakes/smolvm"
)

// TestMain registers the stand-ins the way bottle's testscript suite
// does, so the scripts below run them as real processes from PATH.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"smolvm":   func() { os.Exit(smolvm.Main()) },
		"pipelock": func() { os.Exit(pipelock.Main()) },
		"docker":   func() { os.Exit(docker.Main()) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("FAKE_SMOLVM_STATE", filepath.Join(env.WorkDir, "smolvm-state"))
			env.Setenv("FAKE_SMOLVM_LOG", filepath.Join(env.WorkDir, "argv.log"))
			env.Setenv("FAKE_DOCKER_LOG", filepath.Join(env.WorkDir, "argv.log"))
			env.Setenv("FAKE_PIPELOCK_LOG", filepath.Join(env.WorkDir, "argv.log"))
			return nil
		},
	})
}
