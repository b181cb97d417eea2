package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// daemon answers the commands that read or change the emulated daemon's
// objects, kept in the FAKE_DOCKER_STATE directory.
type daemon struct {
	dir    string
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// stateful runs a command against the state directory. It reports false
// for commands it does not emulate.
func (d *daemon) stateful(path, rest []string) (int, bool) {
	switch strings.Join(canonical(path), " ") {
	case "create":
		return d.create(rest), true
	case "run":
		return d.run(rest), true
	case "start":
		return d.start(rest), true
	case "rm":
		return d.rm(rest), true
	case "ps":
		return d.ps(rest), true
	case "inspect":
		return d.inspect(rest, ""), true
	case "container inspect":
		return d.inspect(rest, "container"), true
	case "network inspect":
		return d.inspect(rest, "network"), true
	case "image inspect":
		return d.inspect(rest, "image"), true
	case "volume inspect":
		return d.inspect(rest, "volume"), true
	case "logs":
		return d.logs(rest), true
	case "network create":
		return d.networkCreate(rest), true
	case "network rm":
		return d.networkRm(rest), true
	case "network ls":
		return d.networkLs(rest), true
	case "volume create":
		return d.volumeCreate(rest), true
	case "volume rm":
		return d.volumeRm(rest), true
	case "volume ls":
		return d.volumeLs(rest), true
	case "image ls":
		return d.imageLs(rest), true
	case "build":
		return d.build(rest), true
	case "save", "image save":
		return d.save(rest), true
	}
	return 0, false
}

// canonical maps the docker CLI's aliases to one spelling: "container rm"
// and "container remove" to "rm", "images" to "image ls", and so on.
// "inspect" keeps its management command, which restricts the object type.
func canonical(path []string) []string {
	alias := map[string]string{"list": "ls", "remove": "rm"}
	p := make([]string, len(path))
	for i, w := range path {
		if a, ok := alias[w]; ok && i > 0 {
			w = a
		}
		p[i] = w
	}
	switch {
	case len(p) == 1 && p[0] == "images":
		return []string{"image", "ls"}
	case len(p) == 2 && (p[0] == "builder" || p[0] == "buildx" || p[0] == "image") && p[1] == "build":
		return []string{"build"}
	case len(p) == 2 && p[0] == "container" && p[1] == "ls":
		return []string{"ps"}
	case len(p) == 2 && p[0] == "container" && p[1] != "inspect":
		return p[1:]
	}
	return p
}

// world runs f on the locked state and prints its error as the CLI would:
// a daemon's error as "Error response from daemon: ...", others as
// "Error: ..." when they do not say so themselves.
func (d *daemon) world(f func(w *world) error) int {
	err := withWorld(d.dir, f)
	if err == nil {
		return exitOK
	}
	var fe *fakeErr
	if errors.As(err, &fe) {
		fmt.Fprintf(d.stderr, "fake docker: %v\n", fe.err)
		return exitFake
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(d.stderr, err)
	return exitError
}

// fakeErr marks a misuse of the stand-in itself (exit 3).
type fakeErr struct{ err error }

func (e *fakeErr) Error() string { return e.err.Error() }

// exitErr is an exit status whose message is already printed.
type exitErr struct{ code int }

func (e *exitErr) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// printInspect prints objects as `docker inspect` does: through the
// template, one per line, or as an indented JSON array.
func (d *daemon) printInspect(objs []any, format string) error {
	if format == "" {
		if objs == nil {
			objs = []any{}
		}
		b, err := json.MarshalIndent(objs, "", "    ")
		if err != nil {
			return err
		}
		fmt.Fprintln(d.stdout, string(b))
		return nil
	}
	f, err := newFormatter(format)
	if err != nil {
		return err
	}
	for _, o := range objs {
		s, err := f.render(o)
		if err != nil {
			return err
		}
		fmt.Fprintln(d.stdout, s)
	}
	return nil
}

// printRows prints list rows through --format, or their IDs with --quiet,
// or as a table of the given keys, tab-separated.
func (d *daemon) printRows(rows []map[string]string, opts options, columns ...string) error {
	if opts.has("quiet") {
		for _, r := range rows {
			fmt.Fprintln(d.stdout, r["ID"])
		}
		return nil
	}
	if format := opts.last("format"); format != "" && format != "table" {
		f, err := newFormatter(format)
		if err != nil {
			return err
		}
		for _, r := range rows {
			s, err := f.render(r)
			if err != nil {
				return err
			}
			fmt.Fprintln(d.stdout, s)
		}
		return nil
	}
	fmt.Fprintln(d.stdout, strings.ToUpper(strings.Join(columns, "\t")))
	for _, r := range rows {
		var vals []string
		for _, c := range columns {
			vals = append(vals, r[c])
		}
		fmt.Fprintln(d.stdout, strings.Join(vals, "\t"))
	}
	return nil
}

func (d *daemon) inspect(args []string, kind string) int {
	opts, refs, err := parseOptions(args, optSpec{bools: []string{"size"}, short: map[string]string{"f": "format", "s": "size"}, interspersed: true})
	if err != nil {
		return d.usage("inspect", err)
	}
	if t := opts.last("type"); t != "" {
		kind = t
	}
	return d.world(func(w *world) error {
		var objs []any
		var missing []string
		for _, ref := range refs {
			var obj any
			if c := w.container(ref); c != nil && (kind == "" || kind == "container") {
				obj = w.inspectContainer(c)
			} else if n := w.network(ref); n != nil && (kind == "" || kind == "network") {
				obj = w.inspectNetwork(n)
			} else if im := w.image(ref); im != nil && (kind == "" || kind == "image") {
				obj = inspectImage(im)
			} else if v := w.volume(ref); v != nil && (kind == "" || kind == "volume") {
				obj = inspectVolume(v)
			}
			if obj == nil {
				missing = append(missing, ref)
				continue
			}
			objs = append(objs, obj)
		}
		if err := d.printInspect(objs, opts.last("format")); err != nil {
			return err
		}
		if len(missing) == 0 {
			return nil
		}
		for _, ref := range missing {
			switch kind {
			case "network":
				fmt.Fprintf(d.stderr, "Error response from daemon: network %s not found\n", ref)
			case "volume":
				fmt.Fprintf(d.stderr, "Error response from daemon: get %s: no such volume\n", ref)
			case "":
				fmt.Fprintf(d.stderr, "Error: No such object: %s\n", ref)
			default:
				fmt.Fprintf(d.stderr, "Error: No such %s: %s\n", kind, ref)
			}
		}
		return &exitErr{exitError}
	})
}

// usage reports a command-line error as cobra does.
func (d *daemon) usage(cmd string, err error) int {
	fmt.Fprintf(d.stderr, "%v\nSee 'docker %s --help'.\n", err, cmd)
	return exitError
}

// humanDuration is docker's go-units HumanDuration, to the hour.
func humanDuration(t time.Duration) string {
	switch s := int(t.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	case s < 120:
		return "About a minute"
	case s < 3600:
		return fmt.Sprintf("%d minutes", s/60)
	case s < 7200:
		return "About an hour"
	default:
		return fmt.Sprintf("%d hours", s/3600)
	}
}

// listTime is how docker's list formats print a creation time.
func listTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 -0700 MST") }

func trunc(id string, noTrunc bool) string {
	if noTrunc || len(id) <= 12 {
		return id
	}
	return id[:12]
}
