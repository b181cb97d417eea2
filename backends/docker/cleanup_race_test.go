package docker_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/backends/docker"
	"github.com/bottle-dev/bottle/plan"
)

// TestRemoveVolumeHeldByLateContainer: a stopped bottle's socket volume
// held by a container that came after cleanup listed the bottle's
// resources (a docker CLI that outlived the killed bottle created it) is
// removed with that container, so that cleanup does not fail with "volume
// is in use". A container of the same slug under another owner is never
// removed, nor a running one without an owner label when the volume has
// none (made before owner labels, it may be another owner's): the volume
// then stays, and the error says why.
func TestRemoveVolumeHeldByLateContainer(t *testing.T) {
	requireDocker(t)
	slug := "late-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	vol := "bottle-" + slug + "-sockets"
	labels := func(owner string) []string {
		l := []string{"--label", backends.LabelSlug + "=" + slug}
		if owner != "" {
			l = append(l, "--label", backends.LabelOwner+"="+owner)
		}
		return l
	}
	t.Cleanup(func() {
		exec.Command("docker", "rm", "-f", "bottle-"+slug+"-late", "bottle-"+slug+"-other", "bottle-"+slug+"-legacy").Run()
		exec.Command("docker", "volume", "rm", "-f", vol).Run()
	})
	create := func(name, owner string) {
		dockerOut(t, append(append([]string{"create", "--name", name}, labels(owner)...), "-v", vol+":/run/bottle", fixture.image, "true")...)
	}
	exists := func(args ...string) bool { return exec.Command("docker", args...).Run() == nil }
	d := &docker.Backend{}
	vr := backends.Resource{Backend: plan.BackendDocker, Kind: "volume", Name: vol, Slug: slug, Owner: "me"}

	dockerOut(t, append(append([]string{"volume", "create"}, labels("me")...), vol)...)
	create("bottle-"+slug+"-late", "me")
	if err := d.Remove(context.Background(), []backends.Resource{vr}); err != nil {
		t.Fatalf("remove the volume held by a late container of its bottle: %v", err)
	}
	if exists("volume", "inspect", vol) || exists("container", "inspect", "bottle-"+slug+"-late") {
		t.Errorf("the volume or its late container is still there")
	}

	dockerOut(t, append(append([]string{"volume", "create"}, labels("me")...), vol)...)
	create("bottle-"+slug+"-other", "someone-else")
	err := d.Remove(context.Background(), []backends.Resource{vr})
	if err == nil || !strings.Contains(err.Error(), "volume is in use") {
		t.Errorf("remove a volume another owner's container holds: %v, want \"volume is in use\"", err)
	}
	if !exists("container", "inspect", "bottle-"+slug+"-other") {
		t.Errorf("another owner's container was removed")
	}

	legacy := "bottle-" + slug + "-legacy"
	lvol := "bottle-" + slug + "-legacy-sockets"
	t.Cleanup(func() { exec.Command("docker", "volume", "rm", "-f", lvol).Run() })
	dockerOut(t, append(append([]string{"volume", "create"}, labels("")...), lvol)...)
	dockerOut(t, append(append([]string{"run", "-d", "--name", legacy}, labels("")...), "-v", lvol+":/run/bottle", fixture.image, "sleep", "60")...)
	lr := backends.Resource{Backend: plan.BackendDocker, Kind: "volume", Name: lvol, Slug: slug}
	err = d.Remove(context.Background(), []backends.Resource{lr})
	if err == nil || !strings.Contains(err.Error(), "volume is in use") {
		t.Errorf("remove an unlabelled volume a running unlabelled container holds: %v, want \"volume is in use\"", err)
	}
	if !exists("container", "inspect", legacy) {
		t.Errorf("a running container without an owner label was removed")
	}
}
