package docker

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// world is what the emulated daemon knows, kept as one JSON file in the
// state directory and changed under an exclusive lock, so that concurrent
// invocations (bottle creates its volume while it looks for its images,
// and starts its two containers at once) see each other as they would
// through a daemon.
type world struct {
	// Seq makes IDs unique when a name is reused.
	Seq        int          `json:"seq"`
	Containers []*container `json:"containers"`
	Networks   []*network   `json:"networks"`
	Volumes    []*volume    `json:"volumes,omitempty"`
	Images     []*image     `json:"images"`
}

type container struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Image      string            `json:"image"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd"`
	Labels     map[string]string `json:"labels"`
	Env        []string          `json:"env,omitempty"`
	Mounts     []mount           `json:"mounts"`
	// ReadOnly is --read-only: nothing but the mounts can be written.
	ReadOnly bool `json:"read_only,omitempty"`
	// Networks maps each attached network's name to the container's
	// address on it.
	Networks map[string]string   `json:"networks"`
	Aliases  map[string][]string `json:"aliases,omitempty"`
	// Status is created, running or exited.
	Status   string `json:"status"`
	ExitCode int    `json:"exit_code"`
	// Started is when the container last started; zero if it never did.
	Started time.Time `json:"started"`
	Logs    string    `json:"logs,omitempty"`
	Created time.Time `json:"created"`
}

// mount is a --mount or --volume; a volume mount's Source is the
// volume's name.
type mount struct {
	Type     string `json:"type"`
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readonly"`
}

type network struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Driver   string            `json:"driver"`
	Internal bool              `json:"internal"`
	Subnets  []string          `json:"subnets"`
	Options  map[string]string `json:"options"`
	Labels   map[string]string `json:"labels"`
	Builtin  bool              `json:"builtin,omitempty"`
	Created  time.Time         `json:"created"`
}

type volume struct {
	Name    string            `json:"name"`
	Driver  string            `json:"driver"`
	Options map[string]string `json:"options,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	// Sockets are the unix sockets listening in the volume: each one's
	// path inside the volume, mapped to the ID of the container that
	// listens on it (a sidecar bundle; see startContainer). A socket
	// accepts connections while that container runs.
	Sockets map[string]string `json:"sockets,omitempty"`
}

type image struct {
	// ID is "sha256:" and 64 hex digits.
	ID      string            `json:"id"`
	Refs    []string          `json:"refs"`
	Labels  map[string]string `json:"labels"`
	Created time.Time         `json:"created"`
}

// stateFile and lockFile live in the FAKE_DOCKER_STATE directory.
const (
	stateFile = "state.json"
	lockFile  = "lock"
)

// daemonErr is an error as the daemon words it; the CLI prints it and
// exits 1 (run: 125, with a "docker: " prefix).
type daemonErr struct{ msg string }

func (e *daemonErr) Error() string { return "Error response from daemon: " + e.msg }

func daemonf(format string, args ...any) error { return &daemonErr{fmt.Sprintf(format, args...)} }

// withWorld loads the state under an exclusive lock, calls f and saves the
// state if f changed it.
func withWorld(dir string, f func(w *world) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fake docker state: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("fake docker state: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("fake docker state: lock: %w", err)
	}
	path := filepath.Join(dir, stateFile)
	before, err := os.ReadFile(path)
	w := &world{}
	switch {
	case errors.Is(err, os.ErrNotExist):
		w.Networks = builtinNetworks()
	case err != nil:
		return fmt.Errorf("fake docker state: %w", err)
	default:
		if err := json.Unmarshal(before, w); err != nil {
			return fmt.Errorf("fake docker state %s: %w", path, err)
		}
	}
	ferr := f(w)
	after, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return fmt.Errorf("fake docker state: %w", err)
	}
	if !bytes.Equal(before, after) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, after, 0o644); err != nil {
			return fmt.Errorf("fake docker state: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("fake docker state: %w", err)
		}
	}
	return ferr
}

// builtinNetworks are the networks every Docker daemon starts with.
func builtinNetworks() []*network {
	t := time.Date(2025, 1, 22, 13, 41, 48, 0, time.UTC)
	return []*network{
		{ID: hashID("network", "bridge"), Name: "bridge", Driver: "bridge", Subnets: []string{"172.17.0.0/16"}, Builtin: true, Created: t,
			Options: map[string]string{"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": "docker0"}},
		{ID: hashID("network", "host"), Name: "host", Driver: "host", Builtin: true, Created: t},
		{ID: hashID("network", "none"), Name: "none", Driver: "null", Builtin: true, Created: t},
	}
}

// hashID is a 64-hex-digit ID derived from its parts.
func hashID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])
}

func (w *world) newID(kind, name string) string {
	w.Seq++
	return hashID(kind, name, fmt.Sprint(w.Seq))
}

// container finds a container by name, ID or unique ID prefix.
func (w *world) container(ref string) *container {
	ref = strings.TrimPrefix(ref, "/")
	var prefixed []*container
	for _, c := range w.Containers {
		if c.Name == ref || c.ID == ref {
			return c
		}
		if strings.HasPrefix(c.ID, ref) {
			prefixed = append(prefixed, c)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return nil
}

func (w *world) network(ref string) *network {
	var prefixed []*network
	for _, n := range w.Networks {
		if n.Name == ref || n.ID == ref {
			return n
		}
		if strings.HasPrefix(n.ID, ref) {
			prefixed = append(prefixed, n)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return nil
}

// volume finds a volume by its name; volumes have no other ID.
func (w *world) volume(name string) *volume {
	for _, v := range w.Volumes {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// volumeUsers are the IDs of the containers, running or not, that mount
// the volume: docker refuses to remove a volume while any does.
func (w *world) volumeUsers(name string) []string {
	var ids []string
	for _, c := range w.Containers {
		if slices.ContainsFunc(c.Mounts, func(m mount) bool { return m.Type == "volume" && m.Source == name }) {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

func (w *world) image(ref string) *image {
	norm := normalizeRef(ref)
	for _, im := range w.Images {
		if slices.Contains(im.Refs, norm) || im.ID == ref || im.ID == "sha256:"+ref ||
			len(ref) >= 12 && strings.HasPrefix(strings.TrimPrefix(im.ID, "sha256:"), ref) {
			return im
		}
	}
	return nil
}

// removeContainer forgets c. The sockets it made stay in their volumes,
// with nothing accepting connections on them.
func (w *world) removeContainer(c *container) {
	w.Containers = slices.DeleteFunc(w.Containers, func(x *container) bool { return x == c })
}

// normalizeRef adds the latest tag to a reference without a tag or digest.
func normalizeRef(ref string) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref
	}
	return ref + ":latest"
}

// freeAddress is the first address of the network's first subnet after
// its gateway that no container holds.
func (w *world) freeAddress(n *network) string {
	if len(n.Subnets) == 0 {
		return ""
	}
	p, err := netip.ParsePrefix(n.Subnets[0])
	if err != nil {
		return ""
	}
	held := map[string]bool{}
	for _, c := range w.Containers {
		if a, ok := c.Networks[n.Name]; ok {
			held[a] = true
		}
	}
	for a := p.Masked().Addr().Next().Next(); p.Contains(a); a = a.Next() {
		if !held[a.String()] {
			return a.String()
		}
	}
	return ""
}

// checkAddress says why ip cannot be a container's address on n, if it
// cannot.
func (w *world) checkAddress(n *network, ip string) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return daemonf("invalid IPv4 address: %s", ip)
	}
	if n.Builtin {
		return daemonf("user specified IP address is supported on user defined networks only")
	}
	if len(n.Subnets) == 0 {
		return daemonf("user specified IP address is supported only when connecting to networks with user configured subnets")
	}
	in := false
	for _, s := range n.Subnets {
		if p, err := netip.ParsePrefix(s); err == nil && p.Contains(a) {
			in = true
		}
	}
	if !in {
		return daemonf("no configured subnet or ip-range contain the IP address %s", ip)
	}
	for _, c := range w.Containers {
		if c.Networks[n.Name] == ip {
			return daemonf("Address already in use")
		}
	}
	return nil
}

// labelString is the "k=v,k=v" form of docker's list formats, sorted.
func labelString(labels map[string]string) string {
	var kv []string
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func parseLabels(specs []string) map[string]string {
	out := map[string]string{}
	for _, s := range specs {
		k, v, _ := strings.Cut(s, "=")
		out[k] = v
	}
	return out
}

// matchLabels applies label filters ("key" or "key=value"), all of which
// must hold.
func matchLabels(labels map[string]string, filters []string) bool {
	for _, f := range filters {
		k, v, hasValue := strings.Cut(f, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

// filters parses --filter values, refusing keys the command does not know
// as the daemon does.
func filters(specs []string, known ...string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, s := range specs {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value)")
		}
		if !slices.Contains(known, k) {
			return nil, daemonf("invalid filter '%s'", k)
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}

// templateFuncs are the functions docker offers in --format templates.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSpace(b.String()), nil
	},
	"join":  strings.Join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

// formatter renders values through a --format template the way the docker
// CLI does: the template sees the JSON field names of the API objects.
type formatter struct{ tmpl *template.Template }

func newFormatter(format string) (*formatter, error) {
	format = strings.TrimPrefix(format, "table ")
	t, err := template.New("format").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %v", err)
	}
	return &formatter{t}, nil
}

func (f *formatter) render(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := f.tmpl.Execute(&b, generic); err != nil {
		return "", fmt.Errorf("template: %v", err)
	}
	return b.String(), nil
}

// optSpec describes a command's options: which take no value, the short
// names, and whether options may follow the first positional argument
// (they may not for run and create, where the image ends the options).
type optSpec struct {
	bools        []string
	short        map[string]string
	interspersed bool
}

type options map[string][]string

func (o options) has(name string) bool { return len(o[name]) > 0 && o[name][len(o[name])-1] != "false" }

func (o options) last(name string) string {
	if v := o[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// parseOptions splits args into options (by long name, without dashes)
// and positional arguments. An option the spec does not list as a boolean
// takes a value, which is right for every docker option bottle uses.
func parseOptions(args []string, spec optSpec) (options, []string, error) {
	opts := options{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return opts, append(pos, args[i+1:]...), nil
		case strings.HasPrefix(a, "--") || len(a) == 2 && a[0] == '-':
			name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if long, ok := spec.short[name]; ok && !strings.HasPrefix(a, "--") {
				name = long
			}
			if slices.Contains(spec.bools, name) {
				if !hasValue {
					value = "true"
				}
			} else if !hasValue {
				if i+1 >= len(args) {
					return nil, nil, fmt.Errorf("flag needs an argument: %s", a)
				}
				i++
				value = args[i]
			}
			opts[name] = append(opts[name], value)
		case strings.HasPrefix(a, "-") && len(a) > 2:
			// Combined short options (-it), or a short option with its
			// value attached (-eK=V).
			first, ok := spec.short[a[1:2]]
			if ok && !slices.Contains(spec.bools, first) {
				opts[first] = append(opts[first], a[2:])
				continue
			}
			for _, r := range a[1:] {
				long, ok := spec.short[string(r)]
				if !ok || !slices.Contains(spec.bools, long) {
					return nil, nil, fmt.Errorf("unknown shorthand flag: '%c' in %s", r, a)
				}
				opts[long] = append(opts[long], "true")
			}
		default:
			pos = append(pos, a)
			if !spec.interspersed {
				return opts, append(pos, args[i+1:]...), nil
			}
		}
	}
	return opts, pos, nil
}
