package docker

import (
	"errors"
	"fmt"
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
