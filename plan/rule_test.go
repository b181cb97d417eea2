package plan

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestNormalizeMethods(t *testing.T) {
	got, err := NormalizeMethods([]string{"head", "GET", "get", "Purge", "M-SEARCH"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"GET", "HEAD", "M-SEARCH", "PURGE"}; !reflect.DeepEqual(got, want) {
		t.Errorf("NormalizeMethods = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, "methods is empty"},
		{[]string{}, "methods is empty"},
		{[]string{""}, "empty string"},
		{[]string{"GET "}, `method "GET " is not an HTTP method name`},
		{[]string{"G(ET"}, "is not an HTTP method name"},
		{[]string{"GET,POST"}, "is not an HTTP method name"},
		{[]string{"GÉT"}, "is not an HTTP method name"},
		{[]string{"GET", "connect"}, "method CONNECT cannot be allowed or refused"},
	} {
		if _, err := NormalizeMethods(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NormalizeMethods(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestCheckPath(t *testing.T) {
	for _, ok := range []string{
		"/", "/**", "/repos/acme/app/**", "/repos/*/app", "/a/**/b", "/v?/x", "/a/[a-z]*", "/{a,b/c}/d",
		"/a\\?b=c", "/a/b.json", "/a/.well-known/x", "/a/..b", "/a b", "/a%zz", "/a/[*]*",
	} {
		if err := CheckPath(ok); err != nil {
			t.Errorf("CheckPath(%q) = %v, want nil", ok, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", `does not start with "/"`},
		{"repos/**", `does not start with "/"`},
		{"**/x", `does not start with "/"`},
		{"/a[b", "not a valid glob"},
		{"/a{b", "not a valid glob"},
		{"/a}", "not a valid glob"},
		{"/a\\", "not a valid glob"},
		{"/[]", "not a valid glob"},
		{"/search?q=x", "looks like it holds a query"},
		{"/a#frag", `holds "#"`},
		{"/a/../b", `".." segment`},
		{"/a/./b", `"." segment`},
		{"/a/..", `".." segment`},
		{"/a%2Fb", `holds the escape "%2F"`},
		{"/a%20b", `holds the escape "%20"`},
		{"/a/**b", `"**" inside a segment`},
		{"/a**/b", `"**" inside a segment`},
		{"/a/***", `holds "***"`},
		{"/a\x00", "control character"},
		{"/a\nb", "control character"},
	} {
		if err := CheckPath(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckPath(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestNormalizePaths(t *testing.T) {
	got, err := NormalizePaths([]string{"/b/**", "/a", "/b/**"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/a", "/b/**"}; !reflect.DeepEqual(got, want) {
		t.Errorf("NormalizePaths = %q, want %q", got, want)
	}
	if _, err := NormalizePaths([]string{}); err == nil || !strings.Contains(err.Error(), "paths is empty") {
		t.Errorf("NormalizePaths([]) = %v, want an empty-list error", err)
	}
	if _, err := NormalizePaths([]string{"/ok", "bad"}); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("NormalizePaths with a bad path = %v, want its error", err)
	}
}

func TestNormalizeSecretHosts(t *testing.T) {
	got, err := NormalizeSecretHosts([]string{"API.Example.com.", "*.example.org", "api.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"*.example.org", "api.example.com"}; !reflect.DeepEqual(got, want) {
		t.Errorf("NormalizeSecretHosts = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{}, "hosts is empty; leave hosts out"},
		{[]string{"10.0.0.1"}, "IP literals are never allowed"},
		{[]string{"*"}, `"*" alone`},
		{[]string{"com"}, "bare top-level domain"},
	} {
		if _, err := NormalizeSecretHosts(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NormalizeSecretHosts(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestCoversHost(t *testing.T) {
	rules := []Rule{{Host: "api.example.com"}, {Host: "*.cdn.example.com"}, {Host: "*.acme.example"}}
	for host, want := range map[string]bool{
		"api.example.com":       true,
		"example.com":           false,
		"x.api.example.com":     false,
		"a.cdn.example.com":     true,
		"a.b.cdn.example.com":   true,
		"cdn.example.com":       false,
		"*.cdn.example.com":     true,  // the same wildcard
		"*.x.cdn.example.com":   true,  // a wildcard under a wider one
		"*.example.com":         false, // wider than any rule
		"*.api.example.com":     false, // an exact rule covers no wildcard
		"*.acme.example":        true,
		"*.other.acme.example":  true,
		"*.xacme.example":       false,
		"a.xacme.example":       false,
		"*.a.b.c.acme.example":  true,
		"api.example.com.other": false,
	} {
		if got := CoversHost(rules, host); got != want {
			t.Errorf("CoversHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// restrictedPlan is validPlan with a bound secret, a rule with methods and
// paths, and inspection for every host.
func restrictedPlan() *Plan {
	p := validPlan()
	p.Secrets[0].Hosts = []string{"api.example.com"}
	p.Egress.Rules = append(p.Egress.Rules, Rule{Host: "api.github.com", Ports: []int{443},
		Methods: []string{"GET", "HEAD"}, Paths: []string{"/repos/acme/**", "/user"}, Inspect: true, From: "//b.star:5:6"})
	p.Sidecars[0].Egress.InspectAll = true
	return p
}

func TestValidateAcceptsRestrictions(t *testing.T) {
	if err := restrictedPlan().Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateRefusesRestrictions(t *testing.T) {
	pipelock := func(p *Plan) {
		p.Egress.Sidecar = SidecarPipelock
		p.Sidecars[0] = Sidecar{Name: SidecarPipelock, Pipelock: &PipelockConfig{}}
	}
	for _, tc := range []struct {
		name   string
		mutate func(p *Plan)
		want   string
	}{
		{"lower-case method", func(p *Plan) { p.Egress.Rules[2].Methods = []string{"get"} }, "not upper case, sorted and unique"},
		{"unsorted methods", func(p *Plan) { p.Egress.Rules[2].Methods = []string{"HEAD", "GET"} }, "not upper case, sorted and unique"},
		{"connect", func(p *Plan) { p.Egress.Rules[2].Methods = []string{"CONNECT"} }, "method CONNECT"},
		{"empty methods", func(p *Plan) { p.Egress.Rules[2].Methods = []string{} }, "methods is empty"},
		{"empty paths", func(p *Plan) { p.Egress.Rules[2].Paths = []string{} }, "paths is empty"},
		{"unsorted paths", func(p *Plan) { p.Egress.Rules[2].Paths = []string{"/user", "/repos/acme/**"} }, "not sorted and unique"},
		{"relative path", func(p *Plan) { p.Egress.Rules[2].Paths = []string{"repos"} }, `does not start with "/"`},
		{"empty hosts", func(p *Plan) { p.Secrets[0].Hosts = []string{} }, "hosts is empty"},
		{"uncanonical host", func(p *Plan) { p.Secrets[0].Hosts = []string{"API.example.com"} }, "not canonical"},
		{"secret host not allowed", func(p *Plan) { p.Secrets[0].Hosts = []string{"api.example.org"} }, `add allow("api.example.org")`},
		{"secret wildcard wider", func(p *Plan) { p.Secrets[0].Hosts = []string{"*.example.com"} }, `no allow() rule allows all of it`},
		{"pipelock secret", func(p *Plan) {
			pipelock(p)
			p.Egress.Rules = p.Egress.Rules[:2]
		}, "secret(hosts=...) needs the built-in egress sidecar; pipelock cannot substitute placeholders"},
		{"pipelock methods", func(p *Plan) {
			pipelock(p)
			p.Secrets[0].Hosts = nil
		}, `allow("api.github.com") with methods, paths and inspect needs the built-in egress sidecar`},
		{"conflict", func(p *Plan) {
			r := p.Egress.Rules[2]
			r.Methods, r.From = nil, "//b.star:6:6"
			p.Egress.Rules = append(p.Egress.Rules, r)
		}, "//b.star:6:6: allow: this rule and the one at //b.star:5:6 both allow api.github.com on port 443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := restrictedPlan()
			tc.mutate(p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckEgressPolicyConflicts(t *testing.T) {
	base := Rule{Host: "api.github.com", Ports: []int{443}, Methods: []string{"GET"}, From: "//b.star:1:1"}
	for _, tc := range []struct {
		name  string
		other func(r *Rule)
		clash bool
	}{
		{"identical", func(r *Rule) {}, false},
		{"identical but private", func(r *Rule) { r.AllowPrivate = true }, false},
		{"other ports", func(r *Rule) { r.Ports = []int{8443}; r.Methods = nil }, false},
		{"other host", func(r *Rule) { r.Host = "*.github.com"; r.Methods = nil }, false},
		{"other methods", func(r *Rule) { r.Methods = []string{"POST"} }, true},
		{"no methods", func(r *Rule) { r.Methods = nil }, true},
		{"paths", func(r *Rule) { r.Paths = []string{"/x"} }, true},
		{"inspect", func(r *Rule) { r.Inspect = true }, true},
		{"overlapping ports", func(r *Rule) { r.Ports = []int{80, 443}; r.Methods = nil }, true},
		{"private and other methods", func(r *Rule) { r.AllowPrivate = true; r.Methods = nil }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := base
			other.From = "//b.star:2:1"
			tc.other(&other)
			p := &Plan{Egress: Egress{Sidecar: SidecarEgress, Rules: []Rule{base, other}}}
			err := p.CheckEgressPolicy()
			if !tc.clash {
				if err != nil {
					t.Fatalf("CheckEgressPolicy = %v, want nil", err)
				}
				return
			}
			var de *DeclError
			if !errors.As(err, &de) {
				t.Fatalf("CheckEgressPolicy = %v, want a *DeclError", err)
			}
			if de.From != "//b.star:2:1" || !strings.Contains(de.Msg, "the one at //b.star:1:1") {
				t.Errorf("CheckEgressPolicy = %q at %q, want the later rule at fault, naming the earlier", de.Msg, de.From)
			}
		})
	}
}

func TestPlanJSONRoundTrip(t *testing.T) {
	p := restrictedPlan()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"hosts":["api.example.com"]`,
		`"methods":["GET","HEAD"]`,
		`"paths":["/repos/acme/**","/user"]`,
		`"inspect":true`,
		`"inspect_all":true`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("plan JSON lacks %s:\n%s", want, b)
		}
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, p) {
		t.Errorf("round trip changed the plan:\n got %+v\nwant %+v", back, *p)
	}
	// Without them, none of the new fields is written.
	b, err = json.Marshal(validPlan())
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{`"hosts"`, `"methods"`, `"paths"`, `"inspect"`, `"inspect_all"`} {
		if strings.Contains(string(b), absent) {
			t.Errorf("plan without restrictions holds %s:\n%s", absent, b)
		}
	}
}
