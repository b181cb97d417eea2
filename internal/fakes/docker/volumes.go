package docker

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// localVolumeName is what the local volume driver accepts as a name
// (volume/local/local.go:37-40,255-260@v27.5.1 of moby).
var localVolumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// localVolumeOptions are the local driver's --opt keys, with the keys each
// one needs beside it (volume/local/local_unix.go:25-35,50-83@v27.5.1).
var localVolumeOptions = map[string][]string{"type": {"device"}, "device": {"type"}, "o": {"device", "type"}, "size": nil}

// anonymousLabel marks a volume docker made for a mount without a source.
const anonymousLabel = "com.docker.volume.anonymous"

// newVolume creates a volume of the local driver, as `docker volume
// create` and a container's volume mount do, after the driver's checks.
// A volume of that name that exists already is returned unchanged, as the
// daemon does.
func (w *world) newVolume(name, driver string, opts, labels map[string]string) (*volume, error) {
	if driver == "" {
		driver = "local"
	}
	if v := w.volume(name); v != nil {
		// An existing volume of the same driver is no conflict
		// (volume/service/store.go:524-557@v27.5.1).
		return v, nil
	}
	// volume/drivers/extpoint.go:90@v27.5.1.
	if driver != "local" {
		return nil, daemonf("create %s: error looking up volume plugin %s: plugin %q not found", name, driver, driver)
	}
	if !localVolumeName.MatchString(name) {
		if len(name) < 2 {
			return nil, daemonf("create %s: volume name is too short, names should be at least two alphanumeric characters", name)
		}
		return nil, daemonf("create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name, name)
	}
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		needs, ok := localVolumeOptions[k]
		if !ok {
			return nil, daemonf("create %s: invalid option: %q", name, k)
		}
		if k == "size" {
			// Quotas need a backing filesystem that has them, which the
			// daemon this emulates has not
			// (volume/local/local_unix.go:74@v27.5.1).
			return nil, daemonf("create %s: quota size requested but no quota support", name)
		}
		for _, n := range needs {
			if _, ok := opts[n]; !ok {
				return nil, daemonf("create %s: missing required option: %q", name, n)
			}
		}
	}
	v := &volume{Name: name, Driver: driver, Options: opts, Labels: labels, Created: time.Now().UTC()}
	w.Volumes = append(w.Volumes, v)
	return v, nil
}

// removeAnonymousVolumes removes a container's anonymous volumes that no other
// container uses, as docker rm --volumes does.
func (w *world) removeAnonymousVolumes(c *container) {
	for _, m := range c.Mounts {
		v := w.volume(m.Source)
		if m.Type != "volume" || v == nil || len(w.volumeUsers(v.Name)) > 0 {
			continue
		}
		if _, ok := v.Labels[anonymousLabel]; ok {
			w.Volumes = slices.DeleteFunc(w.Volumes, func(x *volume) bool { return x == v })
		}
	}
}

func (d *daemon) volumeCreate(args []string) int {
	opts, pos, err := parseOptions(args, optSpec{short: map[string]string{"d": "driver", "o": "opt"}, interspersed: true})
	switch {
	case err == nil && len(pos) > 1:
		err = errors.New("\"docker volume create\" requires at most 1 argument")
	case err == nil && len(pos) == 1 && opts.last("name") != "":
		err = errors.New("conflicting options: cannot specify a volume-name through both --name and as a positional arg")
	}
	if err != nil {
		return d.usage("volume create", err)
	}
	name := opts.last("name")
	if len(pos) == 1 {
		name = pos[0]
	}
	return d.world(func(w *world) error {
		if name == "" {
			name = w.newID("volume", "")
		}
		v, err := w.newVolume(name, opts.last("driver"), parseLabels(opts["opt"]), parseLabels(opts["label"]))
		if err != nil {
			return err
		}
		fmt.Fprintln(d.stdout, v.Name)
		return nil
	})
}

// volumeRm removes volumes. --force only makes a missing volume no error:
// the daemon refuses to remove a volume that a container uses, with or
// without it.
func (d *daemon) volumeRm(args []string) int {
	opts, names, err := parseOptions(args, optSpec{bools: []string{"force"}, short: map[string]string{"f": "force"}, interspersed: true})
	if err != nil || len(names) == 0 {
		return d.usage("volume rm", errors.Join(err, errors.New("\"docker volume rm\" requires at least 1 argument")))
	}
	return d.world(func(w *world) error {
		var errs []error
		for _, name := range names {
			v := w.volume(name)
			switch users := w.volumeUsers(name); {
			case v == nil && opts.has("force"):
				fmt.Fprintln(d.stdout, name)
			case v == nil:
				// OpErr{Op: "get"} (volume/service/store.go:668,
				// errors.go:11,45-59@v27.5.1).
				errs = append(errs, daemonf("get %s: no such volume", name))
			case len(users) > 0:
				// volume/service/store.go:809-811, errors.go:9@v27.5.1.
				errs = append(errs, daemonf("remove %s: volume is in use - [%s]", name, strings.Join(users, ", ")))
			default:
				w.Volumes = slices.DeleteFunc(w.Volumes, func(x *volume) bool { return x == v })
				fmt.Fprintln(d.stdout, name)
			}
		}
		return errors.Join(errs...)
	})
}

// volumeLs lists volumes sorted by name; docker's list JSON has these
// keys, and no usage data ("N/A").
func (d *daemon) volumeLs(args []string) int {
	opts, pos, err := parseOptions(args, optSpec{bools: []string{"cluster", "quiet"}, short: map[string]string{"f": "filter", "q": "quiet"}, interspersed: true})
	if err != nil || len(pos) > 0 {
		return d.usage("volume ls", errors.Join(err, errors.New("\"docker volume ls\" accepts no arguments")))
	}
	fs, err := filters(opts["filter"], "dangling", "driver", "label", "name")
	if err != nil {
		fmt.Fprintln(d.stderr, err)
		return exitError
	}
	return d.world(func(w *world) error {
		vs := slices.Clone(w.Volumes)
		sort.Slice(vs, func(i, j int) bool { return vs[i].Name < vs[j].Name })
		var rows []map[string]string
		for _, v := range vs {
			if !matchLabels(v.Labels, fs["label"]) ||
				!anyMatch(fs["name"], func(s string) bool { return strings.Contains(v.Name, s) }) ||
				!anyMatch(fs["driver"], func(s string) bool { return s == v.Driver }) ||
				!anyMatch(fs["dangling"], func(s string) bool { return (s == "true" || s == "1") == (len(w.volumeUsers(v.Name)) == 0) }) {
				continue
			}
			if opts.has("quiet") {
				fmt.Fprintln(d.stdout, v.Name)
				continue
			}
			rows = append(rows, map[string]string{
				"Availability": "N/A", "Driver": v.Driver, "Group": "N/A", "Labels": labelString(v.Labels), "Links": "N/A",
				"Mountpoint": mountpoint(v.Name), "Name": v.Name, "Scope": "local", "Size": "N/A", "Status": "N/A",
			})
		}
		if opts.has("quiet") {
			return nil
		}
		return d.printRows(rows, opts, "Driver", "Name")
	})
}

// mountpoint is where the local driver keeps a volume's files.
func mountpoint(name string) string { return "/var/lib/docker/volumes/" + name + "/_data" }

// inspectVolume is the API's volume JSON.
func inspectVolume(v *volume) map[string]any {
	var labels, opts map[string]string
	if len(v.Labels) > 0 {
		labels = maps.Clone(v.Labels)
	}
	if len(v.Options) > 0 {
		opts = maps.Clone(v.Options)
	}
	return map[string]any{"CreatedAt": v.Created.Format(time.RFC3339), "Driver": v.Driver, "Labels": labels,
		"Mountpoint": mountpoint(v.Name), "Name": v.Name, "Options": opts, "Scope": "local"}
}
