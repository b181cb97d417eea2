package starlark

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

// loadProfile evaluates body as //bottle.star, with lib.star beside it.
func loadProfile(t *testing.T, body string) (*plan.Plan, error) {
	t.Helper()
	src := mapSource(map[string]string{
		"bottle.star": body,
		"lib.star":    "def github():\n    allow(\"api.github.com\", methods = [\"get\"])\n",
	})
	return Load(context.Background(), src, Options{Home: "/home/u"}, testEnv)
}

func TestAllowRestrictions(t *testing.T) {
	p, err := loadProfile(t, `docker(image = "node:22")
allow("API.GitHub.com", methods = ["head", "GET", "get"], paths = ["/user", "/repos/acme/**", "/user"], inspect = True)
allow("uploads.github.com", ports = [443, 8443], paths = ("/a/{b,c}/*.tar.gz",))
allow("*.example.com", inspect = True)
allow("plain.example.org", methods = None, paths = None)
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []plan.Rule{
		{Host: "*.example.com", Ports: []int{443}, Inspect: true, From: "//bottle.star:4:6"},
		{Host: "api.github.com", Ports: []int{443}, Methods: []string{"GET", "HEAD"},
			Paths: []string{"/repos/acme/**", "/user"}, Inspect: true, From: "//bottle.star:2:6"},
		{Host: "plain.example.org", Ports: []int{443}, From: "//bottle.star:5:6"},
		{Host: "uploads.github.com", Ports: []int{443, 8443}, Paths: []string{"/a/{b,c}/*.tar.gz"}, From: "//bottle.star:3:6"},
	}
	if !reflect.DeepEqual(p.Egress.Rules, want) {
		t.Errorf("rules =\n%+v\nwant\n%+v", p.Egress.Rules, want)
	}
	if !p.Egress.Rules[1].Intercepted() || p.Egress.Rules[2].Intercepted() {
		t.Errorf("Intercepted() is wrong for %+v", p.Egress.Rules)
	}
}

func TestSecretHosts(t *testing.T) {
	p, err := loadProfile(t, `docker(image = "node:22")
secret("API_KEY", from_env = "API_KEY", hosts = ["API.example.com.", "*.cdn.example.com", "api.example.com"])
secret("UPLOAD_KEY", from_file = "~/k", hosts = ["*.a.cdn.example.com", "x.cdn.example.com"])
secret("PLAIN", from_env = "PLAIN", hosts = None)
secret("VISIBLE", from_env = "VISIBLE")
allow("api.example.com")
allow("*.cdn.example.com", ports = [8443])
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []plan.Secret{
		{Name: "API_KEY", FromEnv: "API_KEY", Hosts: []string{"*.cdn.example.com", "api.example.com"}, From: "//bottle.star:2:7"},
		{Name: "PLAIN", FromEnv: "PLAIN", From: "//bottle.star:4:7"},
		{Name: "UPLOAD_KEY", FromFile: "/home/u/k", Hosts: []string{"*.a.cdn.example.com", "x.cdn.example.com"}, From: "//bottle.star:3:7"},
		{Name: "VISIBLE", FromEnv: "VISIBLE", From: "//bottle.star:5:7"},
	}
	if !reflect.DeepEqual(p.Secrets, want) {
		t.Errorf("secrets =\n%+v\nwant\n%+v", p.Secrets, want)
	}
	if p.Secrets[0].Visible() || !p.Secrets[3].Visible() {
		t.Errorf("Visible() is wrong for %+v", p.Secrets)
	}
}

func TestEgressInspectOption(t *testing.T) {
	for body, want := range map[string]bool{
		`docker(image = "x")`:                                     false,
		`docker(image = "x"); sidecar("egress")`:                  false,
		`docker(image = "x"); sidecar("egress", inspect = False)`: false,
		`docker(image = "x"); sidecar("egress", inspect = True)`:  true,
	} {
		p, err := loadProfile(t, body)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		var got *plan.EgressConfig
		for _, sc := range p.Sidecars {
			if sc.Name == plan.SidecarEgress {
				got = sc.Egress
			}
		}
		if got == nil || got.InspectAll != want {
			t.Errorf("%s: egress config %+v, want inspect_all %v", body, got, want)
		}
	}
}

// TestRestrictionErrors: every way to get the new arguments wrong is a
// profile error at the position of the call to change, saying what to do.
func TestRestrictionErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"bad method", `allow("a.example.com", methods = ["GET", "GE T"])`,
			`//bottle.star:2:6: allow: method "GE T" is not an HTTP method name`},
		{"method not a string", `allow("a.example.com", methods = [1])`,
			`//bottle.star:2:6: allow: for parameter "methods": got int in a list of strings`},
		{"methods a string", `allow("a.example.com", methods = "GET")`,
			`//bottle.star:2:6: allow: for parameter "methods": got string, want a list of strings`},
		{"empty method", `allow("a.example.com", methods = [""])`,
			`//bottle.star:2:6: allow: methods holds an empty string`},
		{"no methods", `allow("a.example.com", methods = [])`,
			`//bottle.star:2:6: allow: methods is empty, which would allow no request; leave methods out to allow every method`},
		{"connect", `allow("a.example.com", methods = ["GET", "connect"])`,
			`//bottle.star:2:6: allow: method CONNECT cannot be allowed or refused`},
		{"relative path", `allow("a.example.com", paths = ["repos/**"])`,
			`//bottle.star:2:6: allow: path "repos/**" does not start with "/"`},
		{"bad glob", `allow("a.example.com", paths = ["/a/[b"])`,
			`//bottle.star:2:6: allow: path "/a/[b" is not a valid glob`},
		{"unbalanced brace", `allow("a.example.com", paths = ["/a/{b,c"])`,
			`//bottle.star:2:6: allow: path "/a/{b,c" is not a valid glob`},
		{"query", `allow("a.example.com", paths = ["/search?q=*"])`,
			`//bottle.star:2:6: allow: path "/search?q=*" looks like it holds a query`},
		{"fragment", `allow("a.example.com", paths = ["/a#b"])`,
			`//bottle.star:2:6: allow: path "/a#b" holds "#"`},
		{"dot segment", `allow("a.example.com", paths = ["/a/../b"])`,
			`//bottle.star:2:6: allow: path "/a/../b" holds a ".." segment`},
		{"no paths", `allow("a.example.com", paths = [])`,
			`//bottle.star:2:6: allow: paths is empty`},
		{"inspect not a bool", `allow("a.example.com", inspect = "yes")`,
			`//bottle.star:2:6: allow: for parameter "inspect": got string, want bool`},
		{"empty hosts", `secret("K", from_env = "K", hosts = [])`,
			`//bottle.star:2:7: secret: K: hosts is empty; leave hosts out to give the agent the real value`},
		{"ip host", `secret("K", from_env = "K", hosts = ["10.0.0.1"])`,
			`//bottle.star:2:7: secret: K: "10.0.0.1" is an IP address, and IP literals are never allowed`},
		{"hosts a string", `secret("K", from_env = "K", hosts = "a.example.com")`,
			`//bottle.star:2:7: secret: for parameter "hosts": got string, want a list of strings`},
		{"secret host not allowed", "secret(\"K\", from_env = \"K\", hosts = [\"b.example.com\"])\nallow(\"a.example.com\")",
			`//bottle.star:2:7: secret: K is bound to "b.example.com", which no allow() rule allows; add allow("b.example.com")`},
		{"secret wildcard wider than rule", "allow(\"a.example.com\")\nallow(\"*.cdn.example.com\")\nsecret(\"K\", from_env = \"K\", hosts = [\"*.example.com\"])",
			`//bottle.star:4:7: secret: K is bound to "*.example.com", but no allow() rule allows all of it; add allow("*.example.com"), or a wildcard over a parent domain`},
		{"secret wildcard under exact rule", "allow(\"api.example.com\")\nsecret(\"K\", from_env = \"K\", hosts = [\"*.api.example.com\"])",
			`//bottle.star:3:7: secret: K is bound to "*.api.example.com", but no allow() rule allows all of it`},
		{"pipelock and hosts", "sidecar(\"pipelock\")\nallow(\"a.example.com\")\nsecret(\"K\", from_env = \"K\", hosts = [\"a.example.com\"])",
			`//bottle.star:4:7: secret: K: secret(hosts=...) needs the built-in egress sidecar; pipelock cannot substitute placeholders; remove sidecar("pipelock") to use the built-in one, or leave hosts out`},
		{"pipelock and methods", "sidecar(\"pipelock\")\nallow(\"a.example.com\", methods = [\"GET\"])",
			`//bottle.star:3:6: allow: allow("a.example.com") with methods needs the built-in egress sidecar; bottle runs pipelock without TLS interception`},
		{"pipelock and paths", "sidecar(\"pipelock\")\nallow(\"a.example.com\", paths = [\"/x\"], inspect = True)",
			`//bottle.star:3:6: allow: allow("a.example.com") with paths and inspect needs the built-in egress sidecar`},
		{"pipelock has no inspect option", `sidecar("pipelock", inspect = True)`,
			`//bottle.star:2:8: sidecar: pipelock has no option "inspect"`},
		{"egress inspect not a bool", `sidecar("egress", inspect = "all")`,
			`//bottle.star:2:8: sidecar: egress: option inspect is string, want True or False`},
		{"conflicting rules", "allow(\"a.example.com\", methods = [\"GET\"])\nallow(\"a.example.com\", ports = [80, 443])",
			`//bottle.star:3:6: allow: this rule and the one at //bottle.star:2:6 both allow a.example.com on port 443 with different methods, paths or inspect`},
		{"conflict across files", "load(\"//lib.star\", \"github\")\ngithub()\nallow(\"api.github.com\", inspect = True)",
			`//bottle.star:3:6: allow: this rule and the one at //lib.star:2:10 both allow api.github.com on port 443`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "docker(image = \"node:22\")\n" + tc.body + "\n"
			if strings.HasPrefix(tc.body, "load(") {
				body = tc.body + "\ndocker(image = \"node:22\")\n"
			}
			_, err := loadProfile(t, body)
			if err == nil {
				t.Fatalf("profile loaded, want an error starting %q", tc.want)
			}
			if got := AsError(err).Error(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("error\n %s\nwant it to start\n %s", got, tc.want)
			}
		})
	}
}

// TestRestrictionsThatDoNotConflict: rules for one host that can each
// decide some request are accepted.
func TestRestrictionsThatDoNotConflict(t *testing.T) {
	for _, body := range []string{
		// The same restrictions twice, one with private addresses.
		"allow(\"a.example.com\", methods = [\"GET\"])\nallow(\"a.example.com\", methods = [\"get\"], allow_private = True)",
		// Different ports.
		"allow(\"a.example.com\", methods = [\"GET\"])\nallow(\"a.example.com\", ports = [8443])",
		// An exact name and a wildcard over it: the exact rule decides its name.
		"allow(\"*.example.com\", methods = [\"GET\"])\nallow(\"a.example.com\")",
		// The same paths in another order.
		"allow(\"a.example.com\", paths = [\"/b\", \"/a\"])\nallow(\"a.example.com\", paths = [\"/a\", \"/b\", \"/a\"])",
	} {
		if _, err := loadProfile(t, "docker(image = \"node:22\")\n"+body+"\n"); err != nil {
			t.Errorf("%s:\n%v", body, err)
		}
	}
}
