package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bottle-dev/bottle/backends"
	fakedocker "github.com/bottle-dev/bottle/internal/fakes/docker"
	fakepipelock "github.com/bottle-dev/bottle/internal/fakes/pipelock"
	fakesmolvm "github.com/bottle-dev/bottle/internal/fakes/smolvm"
)

var update = flag.Bool("update", false, "rewrite testscript files with the actual output")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"bottle": func() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) },
		// Stand-ins for tools that cannot run here (see their package docs).
		"docker":   func() { os.Exit(fakedocker.Main()) },
		"smolvm":   func() { os.Exit(fakesmolvm.Main()) },
		"pipelock": func() { os.Exit(fakepipelock.Main()) },
	})
}

func TestScripts(t *testing.T) {
	static := staticBinary(t, "./testdata/static", "static")
	staticPipelock := staticBinary(t, "../../internal/fakes/pipelock/cmd/pipelock", "pipelock")
	staticBottle := staticBinary(t, ".", "bottle")
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			bin, err := static()
			if err != nil {
				return err
			}
			env.Setenv("BOTTLE_SIDECAR_BINARY", bin)
			plk, err := staticPipelock()
			if err != nil {
				return err
			}
			// A static build of the pipelock stand-in, for the docker
			// backend, which copies pipelock into its bundle image.
			env.Setenv("STATIC_PIPELOCK", plk)
			// A static build of bottle itself, for the microVM's guest
			// binary, which the smolvm stand-in runs in its guest view.
			bottle, err := staticBottle()
			if err != nil {
				return err
			}
			env.Setenv("STATIC_BOTTLE", bottle)
			env.Setenv("FAKE_DOCKER_STATE", filepath.Join(env.WorkDir, ".docker"))
			env.Setenv("XDG_STATE_HOME", filepath.Join(env.WorkDir, ".state"))
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("FAKE_DOCKER_LOG", filepath.Join(env.WorkDir, "docker.log"))
			env.Setenv("FAKE_SMOLVM_LOG", filepath.Join(env.WorkDir, "smolvm.log"))
			smolState := filepath.Join(env.WorkDir, ".smolvm")
			// A script that fails half-way must not leave guests running.
			env.Defer(func() { fakesmolvm.Cleanup(smolState) })
			env.Setenv("FAKE_SMOLVM_STATE", smolState)
			env.Setenv("FAKE_PIPELOCK_LOG", filepath.Join(env.WorkDir, "pipelock.log"))
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, ".cache"))
			// Scripts make their repositories with the real git, isolated
			// from the machine's git configuration.
			env.Setenv("GIT_CONFIG_NOSYSTEM", "1")
			env.Setenv("GIT_AUTHOR_NAME", "Team")
			env.Setenv("GIT_AUTHOR_EMAIL", "team@example.com")
			env.Setenv("GIT_COMMITTER_NAME", "Team")
			env.Setenv("GIT_COMMITTER_EMAIL", "team@example.com")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":  cmdStatus,
			"regsub":  cmdRegsub,
			"pin":     cmdPin,
			"githttp": cmdGitHTTP,
			"owner":   cmdOwner,
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// staticBinary returns a function that builds the package pkg with cgo
// off, as name, the first time it is called and returns its path: a static linux
// executable for the docker backend's binary checks, which refuse the
// dynamically linked test binary. It is built from Setup, not from
// TestMain, which runs again in every process the scripts start, into a
// directory of t's that lives as long as the scripts do.
func staticBinary(t *testing.T, pkg, name string) func() (string, error) {
	var (
		once sync.Once
		path string
		err  error
	)
	return func() (string, error) {
		once.Do(func() {
			path = filepath.Join(t.TempDir(), name)
			cmd := exec.Command("go", "build", "-o", path, pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
			if out, berr := cmd.CombinedOutput(); berr != nil {
				err = fmt.Errorf("build %s statically: %v\n%s", pkg, berr, out)
			}
		})
		return path, err
	}
}

// cmdStatus runs a program and checks its exact exit code:
//
//	status 2 bottle start bad.star
//
// Its stdout and stderr are kept for cmp, as with exec.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status CODE program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status: %q is not an exit code", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("status: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// cmdRegsub writes the last command's stdout to a file with every match of
// a regular expression replaced, so goldens can hold values that differ
// from run to run (slugs and digests derived from the work directory):
//
//	regsub 'claude-[0-9a-f]{6}' SLUG out.json
func cmdRegsub(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: regsub REGEXP REPLACEMENT FILE")
	}
	re, err := regexp.Compile(args[0])
	ts.Check(err)
	out := re.ReplaceAllString(ts.ReadFile("stdout"), args[1])
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), []byte(out), 0o644))
}

// cmdPin replaces every PLACEHOLDER in FILE with VALUE, or else with the
// last command's stdout, trimmed, so a script can pin a repository to the
// commit it just made and name it by its path in $WORK:
//
//	exec git -C team rev-parse HEAD
//	pin project/bottle.root COMMIT
//	pin project/bottle.root WORK $WORK
func cmdPin(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: pin FILE PLACEHOLDER [VALUE]")
	}
	var value string
	if len(args) == 3 {
		value = args[2]
	} else if value = strings.TrimSpace(ts.ReadFile("stdout")); value == "" {
		ts.Fatalf("pin: the last command printed nothing")
	}
	file := ts.MkAbs(args[0])
	data, err := os.ReadFile(file)
	ts.Check(err)
	if !strings.Contains(string(data), args[1]) {
		ts.Fatalf("pin: %s holds no %s", args[0], args[1])
	}
	ts.Check(os.WriteFile(file, []byte(strings.ReplaceAll(string(data), args[1], value)), 0o644))
}

// cmdGitHTTP serves the bare repositories under DIR over git's smart HTTP
// protocol (git http-backend as a CGI program) on 127.0.0.1 until the
// script ends, sets $GITHTTP to its base URL, and appends one line per
// request to $WORK/githttp.log, so a script can check that a command made
// no network call:
//
//	githttp srv
//	exec bottle fetch
func cmdGitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: githttp DIR")
	}
	gitPath, err := exec.LookPath("git")
	ts.Check(err)
	backend := &cgi.Handler{
		Path:       gitPath,
		Args:       []string{"http-backend"},
		Env:        []string{"GIT_PROJECT_ROOT=" + ts.MkAbs(args[0]), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		InheritEnv: []string{"PATH"},
	}
	logPath := ts.MkAbs("githttp.log")
	var mu sync.Mutex
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "%s %s\n", r.Method, r.URL.Path)
			f.Close()
		}
		mu.Unlock()
		backend.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	ts.Defer(func() { srv.Close() })
	ts.Setenv("GITHTTP", "http://"+ln.Addr().String())
}

// cmdOwner sets $OWNER to the owner label value (backends.OwnerOf) of the
// script's state home, for scripts that make what a killed bottle of this
// owner would leave behind.
func cmdOwner(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: owner")
	}
	ts.Setenv("OWNER", backends.OwnerOf(filepath.Join(ts.Getenv("XDG_STATE_HOME"), "bottle")))
}
