package starlark

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/profiles"
)

func mapSource(files map[string]string) *Source {
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return &Source{FS: fsys, Label: "//bottle.star", Path: "/p/bottle.star", Root: "/p", Dir: "/p"}
}

var testEnv = Env{Workspace: "/w", StateHome: "/state", Taken: func(string) bool { return false }}

func TestLoadBuildsPlan(t *testing.T) {
	src := mapSource(map[string]string{
		"bottle.star": `
load("//lib.star", "defaults")
docker(image = "node:22", memory = "1GiB")
defaults()
allow("*.Example.com.", ports = [8443, 443, 443])
mount("src", "/workspace")
secret("TOKEN", from_file = "~/token")
`,
		"lib.star": `
def defaults():
    allow("api.example.com")
`,
	})
	p, err := Load(context.Background(), src, Options{Home: "/home/u"}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if p.Slug == "" || !strings.HasPrefix(p.Slug, "bottle-") || p.StateDir != "/state/"+p.Slug {
		t.Errorf("slug %q, state dir %q", p.Slug, p.StateDir)
	}
	want := []plan.Rule{
		{Host: "*.example.com", Ports: []int{443, 8443}, From: "//bottle.star:5:6"},
		{Host: "api.example.com", Ports: []int{443}, From: "//lib.star:3:10"},
	}
	if fmt.Sprint(p.Egress.Rules) != fmt.Sprint(want) {
		t.Errorf("rules = %v, want %v", p.Egress.Rules, want)
	}
	if p.Mounts[0].HostPath != "/p/src" || p.Secrets[0].FromFile != "/home/u/token" {
		t.Errorf("paths not resolved: %+v %+v", p.Mounts[0], p.Secrets[0])
	}
	if len(p.Sidecars) != 1 || !p.Sidecars[0].Implicit || p.Egress.Sidecar != plan.SidecarEgress {
		t.Errorf("the built-in egress sidecar was not added: %+v", p.Sidecars)
	}
	if p.Digest != p.ComputeDigest() {
		t.Errorf("digest not set")
	}
}

func TestSlugTakenGetsSuffix(t *testing.T) {
	src := mapSource(map[string]string{"bottle.star": `docker(image = "x")`})
	env := testEnv
	first, err := Load(context.Background(), src, Options{}, env)
	if err != nil {
		t.Fatal(err)
	}
	env.Taken = func(dir string) bool { return dir == first.StateDir }
	second, err := Load(context.Background(), src, Options{}, env)
	if err != nil {
		t.Fatal(err)
	}
	if second.Slug != first.Slug+"-2" {
		t.Errorf("second slug %q, want %q", second.Slug, first.Slug+"-2")
	}
}

func TestCancelledContextStopsEvaluation(t *testing.T) {
	src := mapSource(map[string]string{"bottle.star": `
def spin():
    for i in range(1 << 40):
        pass
spin()
`})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Eval(ctx, src, Options{MaxSteps: 1 << 62})
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("Eval with a cancelled context = %v, want cancelled", err)
	}
}

func TestShippedProfileEvaluates(t *testing.T) {
	p, err := Load(context.Background(), Embedded(profiles.FS, profiles.Default, "/w"), Options{}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if p.Backend.Kind != plan.BackendDocker || len(p.Egress.Rules) == 0 || p.Mounts[0].HostPath != "/w" {
		t.Errorf("unexpected shipped plan: %+v", p)
	}
}

// FuzzEval evaluates arbitrary profile text: no input may panic, and every
// error must become a positioned *Error.
func FuzzEval(f *testing.F) {
	for _, s := range []string{
		`docker(image = "node:22")`,
		`smolmachines(image = "a", cpus = 2, memory = "1GiB"); allow("x.example.com", ports = [1, 2])`,
		`load("//lib.star", "f"); f()`,
		`docker("x"); sidecar("git-gate", remotes = {"o": {"url": "/a", "protected": ["m"]}})`,
		`docker("x"); mount("~", "/h", readonly = True); env("A", "b"); secret("S", from_env = "S")`,
		`def f(): allow("*.example.com")`,
		`docker("x"); allow("a.example.com", methods = ["get"], paths = ["/r/**"], inspect = True); secret("S", from_env = "S", hosts = ["a.example.com"])`,
		`docker("x"); sidecar("egress", inspect = True); allow("*.example.com"); secret("S", from_env = "S", hosts = ["*.a.example.com"])`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		src := mapSource(map[string]string{"bottle.star": body, "lib.star": "def f():\n    allow(\"a.example.com\")\n"})
		p, err := Load(context.Background(), src, Options{MaxSteps: 100_000}, testEnv)
		if err != nil {
			if AsError(err).Msg == "" {
				t.Fatalf("error without a message: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("built plan does not validate: %v", err)
		}
	})
}

// TestGitGateSharedDefaults: the git gate's protected lists are every
// remote's defaults; tidying them for one remote must not change them for
// the next.
func TestGitGateSharedDefaults(t *testing.T) {
	src := mapSource(map[string]string{"bottle.star": `docker(image = "x")
sidecar("git-gate", remotes = {"a": "/a", "b": "/b"}, protected = ["m", "d", "d"], protected_tags = ["v*", "v*"])
`})
	p, err := Load(context.Background(), src, Options{}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range p.Sidecars {
		if sc.GitGate == nil {
			continue
		}
		for _, r := range sc.GitGate.Remotes {
			if fmt.Sprint(r.Protected, r.ProtectedTags) != "[d m] [v*]" {
				t.Errorf("remote %s: protected %q, protected_tags %q", r.Name, r.Protected, r.ProtectedTags)
			}
		}
		return
	}
	t.Fatal("no git-gate sidecar in the plan")
}
