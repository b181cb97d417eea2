package plan

import "testing"

func TestDigestChangesWithRestrictions(t *testing.T) {
	base := restrictedPlan().ComputeDigest()
	for name, mutate := range map[string]func(p *Plan){
		"secret unbound":   func(p *Plan) { p.Secrets[0].Hosts = nil },
		"secret host":      func(p *Plan) { p.Secrets[0].Hosts = []string{"*.cdn.example.com"} },
		"secret more host": func(p *Plan) { p.Secrets[0].Hosts = append(p.Secrets[0].Hosts, "a.cdn.example.com") },
		"method added":     func(p *Plan) { p.Egress.Rules[2].Methods = append(p.Egress.Rules[2].Methods, "POST") },
		"methods removed":  func(p *Plan) { p.Egress.Rules[2].Methods = nil },
		"path changed":     func(p *Plan) { p.Egress.Rules[2].Paths[0] = "/repos/**" },
		"paths removed":    func(p *Plan) { p.Egress.Rules[2].Paths = nil },
		// A method and a path with the same text are not the same thing.
		"path as method": func(p *Plan) {
			p.Egress.Rules[2].Methods, p.Egress.Rules[2].Paths = []string{"GET", "HEAD", "/user"}, []string{"/repos/acme/**"}
		},
		"inspect off":     func(p *Plan) { p.Egress.Rules[2].Inspect = false },
		"inspect all off": func(p *Plan) { p.Sidecars[0].Egress.InspectAll = false },
	} {
		p := restrictedPlan()
		mutate(p)
		if p.ComputeDigest() == base {
			t.Errorf("%s: digest did not change", name)
		}
	}
}

func TestDigestRestrictionsIgnoreOrder(t *testing.T) {
	a := restrictedPlan()
	a.Secrets[0].Hosts = []string{"*.cdn.example.com", "api.example.com"}
	b := restrictedPlan()
	b.Secrets[0].Hosts = []string{"api.example.com", "*.cdn.example.com"}
	r := &b.Egress.Rules[2]
	r.Methods = []string{"HEAD", "GET"}
	r.Paths = []string{"/user", "/repos/acme/**"}
	b.Egress.Rules[0], b.Egress.Rules[2] = b.Egress.Rules[2], b.Egress.Rules[0]
	if a.ComputeDigest() != b.ComputeDigest() {
		t.Fatal("the order of hosts, methods, paths or rules changed the digest")
	}
}

// TestDigestUnchangedWithoutRestrictions pins the digest of a plan that
// uses none of the bound secrets, methods, paths or inspection, so that
// adding them did not make every existing profile ask for approval again.
func TestDigestUnchangedWithoutRestrictions(t *testing.T) {
	const want = "sha256:673c7d7a2b37a53604aca51d944ce765f4407b6bd8a13b09346fc5b64dbdb27a"
	if got := validPlan().ComputeDigest(); got != want {
		t.Errorf("digest of a plan without restrictions = %s, want %s", got, want)
	}
}
