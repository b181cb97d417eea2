package docker

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// build records an image under its tags once the context holds a
// Dockerfile; nothing is built.
func (d *daemon) build(args []string) int {
	opts, pos, err := parseOptions(args, optSpec{bools: []string{"compress", "force-rm", "load", "no-cache", "pull", "push", "quiet", "rm", "squash"},
		short: map[string]string{"f": "file", "q": "quiet", "t": "tag"}, interspersed: true})
	if err != nil || len(pos) != 1 {
		return d.usage("build", errors.Join(err, errors.New("\"docker build\" requires exactly 1 argument")))
	}
	dockerfile := opts.last("file")
	if dockerfile == "" {
		dockerfile = filepath.Join(pos[0], "Dockerfile")
	}
	content, err := os.ReadFile(dockerfile)
	if err != nil {
		fmt.Fprintf(d.stderr, "ERROR: failed to solve: failed to read dockerfile: open %s: no such file or directory\n", filepath.Base(dockerfile))
		return exitError
	}
	return d.world(func(w *world) error {
		if host := d.getenv("FAKE_DOCKER_NO_REGISTRY"); host != "" {
			for _, base := range baseImages(string(content), opts["build-arg"]) {
				if w.image(base) == nil {
					noRegistry(d.stderr, filepath.Base(dockerfile), string(content), base, host)
					return &exitErr{code: exitError}
				}
			}
		}
		var refs []string
		for _, t := range opts["tag"] {
			refs = append(refs, normalizeRef(t))
		}
		// A tag moves to the new image, as with docker build.
		for _, im := range w.Images {
			im.Refs = slices.DeleteFunc(im.Refs, func(r string) bool { return slices.Contains(refs, r) })
		}
		im := &image{ID: "sha256:" + hashID("build", string(content), fmt.Sprint(w.Seq)), Refs: refs, Labels: parseLabels(opts["label"]), Created: time.Now().UTC()}
		w.Seq++
		w.Images = append(w.Images, im)
		fmt.Fprintf(d.stderr, "#0 building with \"default\" instance using docker driver\n\n#1 [internal] load build definition from %s\n#1 DONE 0.0s\n\n#2 exporting to image\n#2 writing image %s done\n", filepath.Base(dockerfile), im.ID)
		for _, r := range refs {
			fmt.Fprintf(d.stderr, "#2 naming to %s done\n", r)
		}
		fmt.Fprintln(d.stderr, "#2 DONE 0.0s")
		return nil
	})
}

// baseImages are the images a Dockerfile's FROM lines name, with ARG
// defaults and --build-arg values put in: not scratch, and not an earlier
// stage.
func baseImages(dockerfile string, buildArgs []string) []string {
	args := map[string]string{}
	for _, a := range buildArgs {
		k, v, _ := strings.Cut(a, "=")
		args[k] = v
	}
	stages := map[string]bool{}
	var bases []string
	for _, line := range strings.Split(dockerfile, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && strings.EqualFold(f[0], "ARG"):
			k, v, _ := strings.Cut(f[1], "=")
			if _, set := args[k]; !set {
				args[k] = v
			}
		case len(f) >= 2 && strings.EqualFold(f[0], "FROM"):
			f = slices.DeleteFunc(f[1:], func(w string) bool { return strings.HasPrefix(w, "--") })
			ref := os.Expand(f[0], func(k string) string { return args[k] })
			if ref != "scratch" && !stages[strings.ToLower(ref)] {
				bases = append(bases, ref)
			}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages[strings.ToLower(f[2])] = true
			}
		}
	}
	return bases
}

// noRegistry prints what docker build with BuildKit prints when it cannot
// reach the registry of a base image (Docker 27 and 28, as quoted in bug
// reports such as github.com/qingchencloud/clawapp issue 13 and
// github.com/DrewThomasson/ebook2audiobook issue 1605): the failed
// "load metadata" step, the Dockerfile's FROM line, and the final
// "failed to solve" line. host is the registry host that does not
// resolve, which the script chooses.
func noRegistry(stderr io.Writer, name, dockerfile, ref, host string) {
	full := ref
	if !strings.Contains(strings.SplitN(ref, "/", 2)[0], ".") {
		full = "docker.io/" + ref
		if !strings.Contains(ref, "/") {
			full = "docker.io/library/" + ref
		}
	}
	repo, tag := full, "latest"
	if i := strings.LastIndexByte(full, '@'); i >= 0 {
		repo, tag = full[:i], full[i+1:]
	} else if i := strings.LastIndexByte(full, ':'); i > strings.LastIndexByte(full, '/') {
		repo, tag = full[:i], full[i+1:]
	} else {
		full += ":latest"
	}
	if j := strings.LastIndexByte(repo, ':'); j > strings.LastIndexByte(repo, '/') {
		repo = repo[:j] // a tag before the digest
	}
	path := repo[strings.IndexByte(repo, '/')+1:]
	cause := fmt.Sprintf("failed to do request: Head \"https://%s/v2/%s/manifests/%s\": dial tcp: lookup %s: no such host", host, path, tag, host)
	fmt.Fprintf(stderr, "#0 building with \"default\" instance using docker driver\n\n#1 [internal] load build definition from %s\n#1 transferring dockerfile: %dB done\n#1 DONE 0.0s\n\n", name, len(dockerfile))
	fmt.Fprintf(stderr, "#2 [internal] load metadata for %s\n#2 ERROR: %s\n------\n > [internal] load metadata for %s:\n------\n", full, cause, full)
	lines := strings.Split(strings.TrimRight(dockerfile, "\n"), "\n")
	for i, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], "FROM") {
			fmt.Fprintf(stderr, "%s:%d\n--------------------\n", name, i+1)
			for j := max(0, i-2); j <= min(len(lines)-1, i+2); j++ {
				mark := "   "
				if j == i {
					mark = ">>>"
				}
				fmt.Fprintf(stderr, "%4d | %s %s\n", j+1, mark, lines[j])
			}
			fmt.Fprintln(stderr, "--------------------")
			break
		}
	}
	fmt.Fprintf(stderr, "ERROR: failed to solve: %s: failed to resolve source metadata for %s: %s\n", ref, full, cause)
}

func (d *daemon) imageLs(args []string) int {
	opts, pos, err := parseOptions(args, optSpec{bools: []string{"all", "digests", "no-trunc", "quiet", "tree"},
		short: map[string]string{"a": "all", "f": "filter", "q": "quiet"}, interspersed: true})
	if err != nil || len(pos) > 1 {
		return d.usage("image ls", errors.Join(err, errors.New("\"docker image ls\" accepts at most 1 argument")))
	}
	fs, err := filters(opts["filter"], "reference", "label", "dangling", "before", "since")
	if err != nil {
		fmt.Fprintln(d.stderr, err)
		return exitError
	}
	// docker images REPOSITORY[:TAG] is a reference filter.
	fs["reference"] = append(fs["reference"], pos...)
	noTrunc := opts.has("no-trunc")
	return d.world(func(w *world) error {
		var rows []map[string]string
		seen := map[string]bool{}
		for _, im := range w.Images {
			id := strings.TrimPrefix(im.ID, "sha256:")
			if noTrunc {
				id = im.ID
			} else {
				id = id[:12]
			}
			for _, ref := range im.Refs {
				repo, tag := ref[:strings.LastIndexByte(ref, ':')], ref[strings.LastIndexByte(ref, ':')+1:]
				if !matchLabels(im.Labels, fs["label"]) || !anyMatch(fs["reference"], func(p string) bool { return refMatches(p, repo, tag) }) {
					continue
				}
				if opts.has("quiet") && seen[id] {
					continue
				}
				seen[id] = true
				rows = append(rows, map[string]string{
					"Containers": "N/A", "CreatedAt": listTime(im.Created), "CreatedSince": humanDuration(time.Since(im.Created)) + " ago",
					"Digest": "<none>", "ID": id, "Repository": repo, "SharedSize": "N/A", "Size": "12.3MB", "Tag": tag,
					"UniqueSize": "N/A", "VirtualSize": "12.3MB",
				})
			}
		}
		return d.printRows(rows, opts, "Repository", "Tag", "ID", "CreatedSince", "Size")
	})
}

// refMatches is the reference filter: a glob against REPOSITORY:TAG, or
// against REPOSITORY alone when it has no tag.
func refMatches(pattern, repo, tag string) bool {
	if ok, _ := path.Match(pattern, repo+":"+tag); ok {
		return true
	}
	ok, _ := path.Match(pattern, repo)
	return ok
}

func inspectImage(im *image) map[string]any {
	return map[string]any{"Id": im.ID, "RepoTags": im.Refs, "Created": im.Created.Format(time.RFC3339Nano),
		"Os": "linux", "Architecture": hostArch(), "Config": map[string]any{"Labels": im.Labels}}
}
