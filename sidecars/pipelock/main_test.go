package pipelock

import (
	"bytes"
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

// fakeBin is the pipelock stand-in (internal/fakes/pipelock/cmd/pipelock),
// built by TestMain.
var fakeBin string

// parentEnv makes the test binary act as a bottle that starts pipelock and
// then waits to be killed; see TestPdeathsig.
const parentEnv = "BOTTLE_PIPELOCK_TEST_PARENT"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(parentEnv); cfg != "" {
		p, err := Start(context.Background(), os.Getenv(Env), cfg, io.Discard)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(p.cmd.Process.Pid)
		select {}
	}
	dir, err := os.MkdirTemp("", "pipelock-fake-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeBin = filepath.Join(dir, "pipelock")
	build := exec.Command("go", "build", "-o", fakeBin, "github.com/bottle-dev/bottle/internal/fakes/pipelock/cmd/pipelock")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the pipelock stand-in:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestImports keeps the package free of the layers above it.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, banned := range []string{"/backends", "/render", "/starlark", "/cmd"} {
				if strings.HasPrefix(path, "github.com/bottle-dev/bottle"+banned) {
					t.Errorf("%s imports %s", f, path)
				}
			}
		}
	}
}

// renderFile renders a plan allowing rules to a pipelock.yaml in a temp dir.
func renderFile(t *testing.T, rules ...plan.Rule) string {
	t.Helper()
	out, err := Render(pipelockPlan(defaultPipelock, rules...), "127.0.0.1:8888")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pipelock.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer collects a child's output for the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
