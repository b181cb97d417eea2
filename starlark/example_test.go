package starlark

import (
	"context"
	"testing"
)

// TestTeamExample evaluates the worked example in profiles/examples/team:
// a project loading two libraries from a team repository.
func TestTeamExample(t *testing.T) {
	src, err := Open("../profiles/examples/team/app/bottle.star")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Load(context.Background(), src, Options{}, testEnv)
	if err != nil {
		t.Fatal(AsError(err))
	}
	from := map[string]string{}
	for _, r := range p.Egress.Rules {
		from[r.Host] = r.From
	}
	want := map[string]string{
		"git.acme.example": "@acme//lib/base.star:7:10",
		"sso.acme.example": "@acme//lib/base.star:8:10",
		"npm.example.com":  "@acme//lib/node.star:9:10",
		"api.github.com":   "@acme//lib/node.star:11:14",
	}
	if len(from) != len(want) {
		t.Errorf("rules %v, want %v", from, want)
	}
	for host, pos := range want {
		if from[host] != pos {
			t.Errorf("%s from %q, want %q", host, from[host], pos)
		}
	}
	if len(p.Repos) != 1 || p.Repos[0].Name != "acme" || p.Repos[0].Path == "" {
		t.Errorf("repos %+v, want acme as a path repository", p.Repos)
	}
}
