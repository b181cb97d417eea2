package docker

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

func (d *daemon) networkCreate(args []string) int {
	opts, pos, err := parseOptions(args, optSpec{bools: []string{"attachable", "config-only", "ingress", "internal", "ipv4", "ipv6"},
		short: map[string]string{"d": "driver", "o": "opt"}, interspersed: true})
	if err != nil || len(pos) != 1 {
		return d.usage("network create", errors.Join(err, errors.New("\"docker network create\" requires exactly 1 argument")))
	}
	name := pos[0]
	return d.world(func(w *world) error {
		for _, n := range w.Networks {
			if n.Name == name {
				return daemonf("network with name %s already exists", name)
			}
		}
		subnets := opts["subnet"]
		for _, s := range subnets {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return daemonf("invalid subnet %s: %v", s, err)
			}
			if w.overlaps(p) {
				return daemonf("invalid pool request: Pool overlaps with other one on this address space")
			}
		}
		if len(subnets) == 0 {
			// Docker's default pools: the next free 172.x.0.0/16.
			for i := 18; i < 32 && len(subnets) == 0; i++ {
				if p := netip.MustParsePrefix("172." + strconv.Itoa(i) + ".0.0/16"); !w.overlaps(p) {
					subnets = []string{p.String()}
				}
			}
			if len(subnets) == 0 {
				return daemonf("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
			}
		}
		driver := opts.last("driver")
		if driver == "" {
			driver = "bridge"
		}
		n := &network{ID: w.newID("network", name), Name: name, Driver: driver, Internal: opts.has("internal"), Subnets: subnets,
			Options: parseLabels(opts["opt"]), Labels: parseLabels(opts["label"]), Created: time.Now().UTC()}
		w.Networks = append(w.Networks, n)
		fmt.Fprintln(d.stdout, n.ID)
		return nil
	})
}

// overlaps reports whether p overlaps a subnet of any network.
func (w *world) overlaps(p netip.Prefix) bool {
	for _, n := range w.Networks {
		for _, s := range n.Subnets {
			if q, err := netip.ParsePrefix(s); err == nil && q.Overlaps(p) {
				return true
			}
		}
	}
	return false
}

// endpoints are the running containers attached to n: docker refuses to
// remove a network that has any.
func (w *world) endpoints(n *network) []*container {
	var out []*container
	for _, c := range w.Containers {
		if _, ok := c.Networks[n.Name]; ok && c.Status == "running" {
			out = append(out, c)
		}
	}
	return out
}

func (d *daemon) networkRm(args []string) int {
	_, names, err := parseOptions(args, optSpec{bools: []string{"force"}, short: map[string]string{"f": "force"}, interspersed: true})
	if err != nil || len(names) == 0 {
		return d.usage("network rm", errors.Join(err, errors.New("\"docker network rm\" requires at least 1 argument")))
	}
	return d.world(func(w *world) error {
		var errs []error
		for _, name := range names {
			n := w.network(name)
			switch {
			case n == nil:
				errs = append(errs, daemonf("network %s not found", name))
			case n.Builtin:
				errs = append(errs, daemonf("%s is a pre-defined network and cannot be removed", n.Name))
			case len(w.endpoints(n)) > 0:
				errs = append(errs, daemonf("error while removing network: network %s id %s has active endpoints", n.Name, n.ID))
			default:
				w.Networks = slices.DeleteFunc(w.Networks, func(x *network) bool { return x == n })
				fmt.Fprintln(d.stdout, name)
			}
		}
		return errors.Join(errs...)
	})
}

func (d *daemon) networkLs(args []string) int {
	opts, _, err := parseOptions(args, optSpec{bools: []string{"no-trunc", "quiet"}, short: map[string]string{"f": "filter", "q": "quiet"}, interspersed: true})
	if err != nil {
		return d.usage("network ls", err)
	}
	fs, err := filters(opts["filter"], "label", "name", "id", "driver", "type", "scope", "dangling")
	if err != nil {
		fmt.Fprintln(d.stderr, err)
		return exitError
	}
	noTrunc := opts.has("no-trunc")
	return d.world(func(w *world) error {
		ns := slices.Clone(w.Networks)
		sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
		var rows []map[string]string
		for _, n := range ns {
			typ := "custom"
			if n.Builtin {
				typ = "builtin"
			}
			if !matchLabels(n.Labels, fs["label"]) ||
				!anyMatch(fs["name"], func(v string) bool { return strings.Contains(n.Name, v) }) ||
				!anyMatch(fs["id"], func(v string) bool { return strings.HasPrefix(n.ID, v) }) ||
				!anyMatch(fs["driver"], func(v string) bool { return v == n.Driver }) ||
				!anyMatch(fs["type"], func(v string) bool { return v == typ }) ||
				!anyMatch(fs["scope"], func(v string) bool { return v == "local" }) ||
				!anyMatch(fs["dangling"], func(v string) bool { return (v == "true" || v == "1") == (!n.Builtin && len(w.attached(n)) == 0) }) {
				continue
			}
			rows = append(rows, map[string]string{
				"CreatedAt": listTime(n.Created), "Driver": n.Driver, "ID": trunc(n.ID, noTrunc), "IPv6": "false",
				"Internal": strconv.FormatBool(n.Internal), "Labels": labelString(n.Labels), "Name": n.Name, "Scope": "local",
			})
		}
		return d.printRows(rows, opts, "ID", "Name", "Driver", "Scope")
	})
}

// attached are the containers, running or not, attached to n.
func (w *world) attached(n *network) []*container {
	var out []*container
	for _, c := range w.Containers {
		if _, ok := c.Networks[n.Name]; ok {
			out = append(out, c)
		}
	}
	return out
}

// inspectNetwork is the API's network JSON; Containers holds the active
// endpoints, keyed by container ID.
func (w *world) inspectNetwork(n *network) map[string]any {
	configs := []map[string]any{}
	for _, s := range n.Subnets {
		cfg := map[string]any{"Subnet": s}
		if p, err := netip.ParsePrefix(s); err == nil {
			cfg["Gateway"] = p.Masked().Addr().Next().String()
		}
		configs = append(configs, cfg)
	}
	bits := "32"
	if len(n.Subnets) > 0 {
		if p, err := netip.ParsePrefix(n.Subnets[0]); err == nil {
			bits = strconv.Itoa(p.Bits())
		}
	}
	eps := map[string]any{}
	for _, c := range w.endpoints(n) {
		eps[c.ID] = map[string]any{"Name": c.Name, "EndpointID": hashID("endpoint", c.ID, n.ID), "MacAddress": "",
			"IPv4Address": c.Networks[n.Name] + "/" + bits, "IPv6Address": ""}
	}
	opts := map[string]string{}
	maps.Copy(opts, n.Options)
	labels := map[string]string{}
	maps.Copy(labels, n.Labels)
	return map[string]any{
		"Name": n.Name, "Id": n.ID, "Created": n.Created.Format(time.RFC3339Nano), "Scope": "local", "Driver": n.Driver,
		"EnableIPv4": true, "EnableIPv6": false, "IPAM": map[string]any{"Driver": "default", "Options": map[string]string{}, "Config": configs},
		"Internal": n.Internal, "Attachable": false, "Ingress": false, "ConfigFrom": map[string]any{"Network": ""}, "ConfigOnly": false,
		"Containers": eps, "Options": opts, "Labels": labels,
	}
}
