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

// reviewSetup makes a unique slug, a socket volume labelled with it (and
// with owner, when not empty) and registers the cleanup of the named
// containers and the volume.
func reviewSetup(t *testing.T, prefix, owner string, containers ...string) (slug, vol string) {
	t.Helper()
	requireDocker(t)
	slug = prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	vol = "bottle-" + slug + "-sockets"
	t.Cleanup(func() {
		for _, c := range containers {
			exec.Command("docker", "rm", "-f", "bottle-"+slug+"-"+c).Run()
		}
		exec.Command("docker", "volume", "rm", "-f", vol).Run()
	})
	args := []string{"volume", "create", "--label", backends.LabelSlug + "=" + slug}
	if owner != "" {
		args = append(args, "--label", backends.LabelOwner+"="+owner)
	}
	dockerOut(t, append(args, vol)...)
	return slug, vol
}

func reviewExists(args ...string) bool { return exec.Command("docker", args...).Run() == nil }

// TestReviewCleanupBreakCommaInjectedOwner: a running container of the
// same slug whose owner label is another owner's, but which carries a
// label (sorting before the owner label) whose value is
// "x,dev.bottle.owner=me", holds my stopped bottle's volume. docker ps
// prints Labels as sorted "k=v,k=v", so the parser reads the injected
// owner first; the other owner's running container must still survive.
// Labels come from the image too, so whoever controls an image another
// user's bottle runs controls such a label.
func TestReviewCleanupBreakCommaInjectedOwner(t *testing.T) {
	slug, vol := reviewSetup(t, "rvinj", "me", "other")
	other := "bottle-" + slug + "-other"
	dockerOut(t, "run", "-d", "--name", other,
		"--label", "a.inject=x,"+backends.LabelOwner+"=me",
		"--label", backends.LabelSlug+"="+slug, "--label", backends.LabelOwner+"=someone-else",
		"-v", vol+":/run/bottle", fixture.image, "sleep", "120")
	d := &docker.Backend{}
	err := d.Remove(context.Background(), []backends.Resource{{Backend: plan.BackendDocker, Kind: "volume", Name: vol, Slug: slug, Owner: "me"}})
	if !reviewExists("container", "inspect", other) {
		t.Fatalf("another owner's running container was removed by my cleanup (Remove: %v)", err)
	}
	if err == nil || !strings.Contains(err.Error(), "volume is in use") {
		t.Errorf("Remove: %v, want \"volume is in use\"", err)
	}
}

// TestReviewCleanupBreakPausedLegacyContainer: an unlabelled volume held
// by a paused container without an owner label. A paused container is a
// live sandbox (its processes exist, frozen), but docker ps reports its
// State as "paused", not "running", so it counts as stopped and is
// removed with rm --force.
func TestReviewCleanupBreakPausedLegacyContainer(t *testing.T) {
	slug, vol := reviewSetup(t, "rvpause", "", "legacy")
	legacy := "bottle-" + slug + "-legacy"
	dockerOut(t, "run", "-d", "--name", legacy, "--label", backends.LabelSlug+"="+slug,
		"-v", vol+":/run/bottle", fixture.image, "sleep", "120")
	dockerOut(t, "pause", legacy)
	d := &docker.Backend{}
	err := d.Remove(context.Background(), []backends.Resource{{Backend: plan.BackendDocker, Kind: "volume", Name: vol, Slug: slug}})
	if !reviewExists("container", "inspect", legacy) {
		t.Fatalf("a live (paused) container without an owner label was removed (Remove: %v)", err)
	}
}

// TestReviewCleanupHeldRunningLegacyInjectedEmptyOwner: a running
// container without an owner label, whose other label injects an empty
// owner, holding an unlabelled volume: the running check still keeps it.
func TestReviewCleanupHeldRunningLegacyInjectedEmptyOwner(t *testing.T) {
	slug, vol := reviewSetup(t, "rvleg", "", "legacy")
	legacy := "bottle-" + slug + "-legacy"
	dockerOut(t, "run", "-d", "--name", legacy, "--label", "a.inject=x,"+backends.LabelOwner+"=",
		"--label", backends.LabelSlug+"="+slug, "-v", vol+":/run/bottle", fixture.image, "sleep", "120")
	d := &docker.Backend{}
	err := d.Remove(context.Background(), []backends.Resource{{Backend: plan.BackendDocker, Kind: "volume", Name: vol, Slug: slug}})
	if !reviewExists("container", "inspect", legacy) {
		t.Fatalf("a running container without an owner label was removed (Remove: %v)", err)
	}
	if err == nil || !strings.Contains(err.Error(), "volume is in use") {
		t.Errorf("Remove: %v, want \"volume is in use\"", err)
	}
}

// TestReviewCleanupHeldSlugLookalikes: containers whose slug label only
// looks like mine (my slug followed by "=x" or ",x", or a prefix of it),
// all with my owner label and stopped, are not of my bottle: the slug
// filter is exact, so none is removed.
func TestReviewCleanupHeldSlugLookalikes(t *testing.T) {
	slug, vol := reviewSetup(t, "rvslug", "me", "eq", "comma", "prefix")
	for c, s := range map[string]string{"eq": slug + "=x", "comma": slug + ",x", "prefix": slug[:len(slug)-1]} {
		dockerOut(t, "create", "--name", "bottle-"+slug+"-"+c, "--label", backends.LabelSlug+"="+s,
			"--label", backends.LabelOwner+"=me", "-v", vol+":/run/bottle", fixture.image, "true")
	}
	d := &docker.Backend{}
	err := d.Remove(context.Background(), []backends.Resource{{Backend: plan.BackendDocker, Kind: "volume", Name: vol, Slug: slug, Owner: "me"}})
	for _, c := range []string{"eq", "comma", "prefix"} {
		if !reviewExists("container", "inspect", "bottle-"+slug+"-"+c) {
			t.Errorf("container %s of another slug was removed (Remove: %v)", c, err)
		}
	}
	if err == nil {
		t.Errorf("Remove of a volume held by other slugs' containers succeeded")
	}
}

// TestReviewCleanupHeldOwnerLookalikes: containers of my slug whose owner
// label only looks like mine ("me ", "me=x", "m") are another owner's and
// stay.
func TestReviewCleanupHeldOwnerLookalikes(t *testing.T) {
	slug, vol := reviewSetup(t, "rvown", "me", "sp", "eq", "prefix")
	owners := map[string]string{"sp": "me ", "eq": "me=x", "prefix": "m"}
	for c, o := range owners {
		dockerOut(t, "create", "--name", "bottle-"+slug+"-"+c, "--label", backends.LabelSlug+"="+slug,
			"--label", backends.LabelOwner+"="+o, "-v", vol+":/run/bottle", fixture.image, "true")
	}
	d := &docker.Backend{}
	d.Remove(context.Background(), []backends.Resource{{Backend: plan.BackendDocker, Kind: "volume", Name: vol, Slug: slug, Owner: "me"}})
	for c, o := range owners {
		if !reviewExists("container", "inspect", "bottle-"+slug+"-"+c) {
			t.Errorf("container with owner label %q was removed by owner \"me\"'s cleanup", o)
		}
	}
}

// TestReviewCleanupBreakOwnerWithComma: a running container of my slug
// whose owner label is "me,x" (not mine) holds my stopped bottle's volume.
// Splitting Labels on "," reads its owner as "me", so it is removed.
func TestReviewCleanupBreakOwnerWithComma(t *testing.T) {
	slug, vol := reviewSetup(t, "rvcomma", "me", "other")
	other := "bottle-" + slug + "-other"
	dockerOut(t, "run", "-d", "--name", other, "--label", backends.LabelSlug+"="+slug,
		"--label", backends.LabelOwner+"=me,x", "-v", vol+":/run/bottle", fixture.image, "sleep", "120")
	d := &docker.Backend{}
	err := d.Remove(context.Background(), []backends.Resource{{Backend: plan.BackendDocker, Kind: "volume", Name: vol, Slug: slug, Owner: "me"}})
	if !reviewExists("container", "inspect", other) {
		t.Fatalf("running container with owner label \"me,x\" was removed by owner \"me\"'s cleanup (Remove: %v)", err)
	}
}

// TestReviewCleanupHeldSeveralNames: my late container holding my volume
// is the target of a legacy link from another owner's running container,
// so docker ps gives it several names ("mine,other/alias"). Removal by
// that Names string touches nothing else: the other container stays.
func TestReviewCleanupHeldSeveralNames(t *testing.T) {
	slug, vol := reviewSetup(t, "rvnames", "me", "late", "other")
	late, other := "bottle-"+slug+"-late", "bottle-"+slug+"-other"
	dockerOut(t, "run", "-d", "--name", late, "--label", backends.LabelSlug+"="+slug, "--label", backends.LabelOwner+"=me",
		"-v", vol+":/run/bottle", fixture.image, "sleep", "120")
	dockerOut(t, "stop", "-t", "0", late)
	dockerOut(t, "start", late)
	dockerOut(t, "run", "-d", "--name", other, "--link", late+":alias", "--label", backends.LabelSlug+"="+slug,
		"--label", backends.LabelOwner+"=someone-else", fixture.image, "sleep", "120")
	names := dockerOut(t, "ps", "--no-trunc", "--filter", "name=^"+late+"$", "--format", "{{.Names}}")
	if !strings.Contains(names, ",") {
		t.Logf("docker gave one name only: %q", names)
	}
	d := &docker.Backend{}
	err := d.Remove(context.Background(), []backends.Resource{{Backend: plan.BackendDocker, Kind: "volume", Name: vol, Slug: slug, Owner: "me"}})
	if !reviewExists("container", "inspect", other) {
		t.Fatalf("another owner's running container was removed (Remove: %v)", err)
	}
	t.Logf("Names %q; Remove: %v", strings.TrimSpace(names), err)
}
