package starlark

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bottle-dev/bottle/profiles"
	"github.com/bottle-dev/bottle/starlark/repocache"
)

func BenchmarkEvalShipped(b *testing.B) {
	src := Embedded(profiles.FS, profiles.Default, "/w")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(context.Background(), src, Options{}, testEnv); err != nil {
			b.Fatal(err)
		}
	}
}

// teamRepo generates a repository of n library files where file i loads
// files i+1 and i+2 and defines a function that declares one rule and calls
// theirs; the profile loads file 0.
func teamRepo(n int) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := 0; i < n; i++ {
		body := ""
		var calls string
		for _, j := range []int{i + 1, i + 2} {
			if j < n {
				body += fmt.Sprintf("load(\"//lib/f%d.star\", f%d = \"f\")\n", j, j)
				if j == i+1 {
					calls += fmt.Sprintf("    f%d(seen)\n", j)
				}
			}
		}
		body += fmt.Sprintf(`
def f(seen):
    if %d in seen:
        return
    seen[%d] = True
    allow("host%d.example.com", ports = [443, %d])
%s`, i, i, i, 1000+i, calls)
		fsys[fmt.Sprintf("lib/f%d.star", i)] = &fstest.MapFile{Data: []byte(body)}
	}
	fsys["bottle.star"] = &fstest.MapFile{Data: []byte(`load("//lib/f0.star", "f")
docker(image = "node:22")
f({})
`)}
	return fsys
}

func BenchmarkEvalTeamRepo200(b *testing.B) {
	src := &Source{FS: teamRepo(200), Label: "//bottle.star", Path: "/p/bottle.star", Root: "/p", Dir: "/p"}
	p, err := Load(context.Background(), src, Options{}, testEnv)
	if err != nil {
		b.Fatal(err)
	}
	if len(p.Egress.Rules) != 200 {
		b.Fatalf("got %d rules, want 200", len(p.Egress.Rules))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(context.Background(), src, Options{}, testEnv); err != nil {
			b.Fatal(err)
		}
	}
}

// twoRepoProfile writes a project whose bottle.root declares two git
// repositories of n/2 library files each (shaped like teamRepo), made
// with the real git as file:// repositories and fetched into a repository
// cache as bottle fetch does, and returns the profile's source and the
// cache. The profile loads file 0 of each.
func twoRepoProfile(tb testing.TB, n int) (*Source, string) {
	if _, err := exec.LookPath("git"); err != nil {
		tb.Skip("git is not installed: repositories are fetched with the real git")
	}
	dir := tb.TempDir()
	cache := filepath.Join(dir, "cache")
	project := filepath.Join(dir, "project")
	var decls, loads, calls string
	for _, name := range []string{"acme", "tools"} {
		src := filepath.Join(dir, name)
		for file, f := range teamRepo(n / 2) {
			if !strings.HasPrefix(file, "lib/") {
				continue
			}
			body := strings.ReplaceAll(string(f.Data), ".example.com", "."+name+".example.com")
			writeTestFile(tb, filepath.Join(src, file), body)
		}
		git := func(args ...string) string {
			cmd := exec.Command("git", args...)
			cmd.Dir = src
			cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
				"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
			out, err := cmd.CombinedOutput()
			if err != nil {
				tb.Fatalf("git %v: %v\n%s", args, err, out)
			}
			return strings.TrimSpace(string(out))
		}
		git("init", "-q", "-b", "main")
		git("add", ".")
		git("commit", "-q", "-m", "libraries")
		url, commit := "file://"+src, git("rev-parse", "HEAD")
		if _, err := repocache.Fetch(context.Background(), cache, url, commit); err != nil {
			tb.Fatal(err)
		}
		decls += fmt.Sprintf("repo(name = %q, git = %q, commit = %q)\n", name, url, commit)
		loads += fmt.Sprintf("load(\"@%s//lib/f0.star\", %s = \"f\")\n", name, name)
		calls += name + "({})\n"
	}
	writeTestFile(tb, filepath.Join(project, RootMarker), decls)
	writeTestFile(tb, filepath.Join(project, "bottle.star"), loads+"docker(image = \"node:22\")\n"+calls)
	src, err := Open(filepath.Join(project, "bottle.star"))
	if err != nil {
		tb.Fatal(err)
	}
	return src, cache
}

func writeTestFile(tb testing.TB, file, body string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkEvalTwoRepos50 loads 50 files from two fetched repositories
// (warm cache: both are already in the repository cache), for comparison
// with BenchmarkEvalTeamRepo200.
func BenchmarkEvalTwoRepos50(b *testing.B) {
	src, cache := twoRepoProfile(b, 50)
	opts := Options{RepoCache: cache}
	p, err := Load(context.Background(), src, opts, testEnv)
	if err != nil {
		b.Fatal(err)
	}
	if len(p.Egress.Rules) != 50 || len(p.Repos) != 2 {
		b.Fatalf("got %d rules from %d repositories, want 50 from 2", len(p.Egress.Rules), len(p.Repos))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(context.Background(), src, opts, testEnv); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIsolation compares evaluating a profile in this process with
// evaluating it in a child: this test binary in its evaluation mode, and
// bottle's own executable (built once, with cgo off as released), whose
// start costs more because it links every package of bottle.
func BenchmarkIsolation(b *testing.B) {
	bottle := filepath.Join(b.TempDir(), "bottle")
	build := exec.Command("go", "build", "-o", bottle, "../cmd/bottle")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build bottle: %v\n%s", err, out)
	}
	example, err := Open("../profiles/examples/team/app/bottle.star")
	if err != nil {
		b.Fatal(err)
	}
	sources := []struct {
		name string
		src  *Source
	}{
		{"shipped", Embedded(profiles.FS, profiles.Default, "/w")},
		{"example", example},
	}
	children := []struct {
		name string
		iso  *Isolation
	}{
		{"in-process", nil},
		{"child=test-binary", newTestIsolation(b, "serve").Isolation},
		{"child=bottle", &Isolation{Command: func() (*exec.Cmd, error) {
			cmd := exec.Command(bottle, "evaluate")
			cmd.Args[0] = "bottle"
			return cmd, nil
		}}},
	}
	for _, s := range sources {
		for _, c := range children {
			b.Run(s.name+"/"+c.name, func(b *testing.B) {
				opts := Options{Isolation: c.iso}
				for b.Loop() {
					if _, err := Load(context.Background(), s.src, opts, testEnv); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
