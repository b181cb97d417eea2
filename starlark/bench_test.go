package starlark

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/bottle-dev/bottle/profiles"
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
