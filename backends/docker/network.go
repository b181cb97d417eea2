package docker

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Subnets come from a pool of its own, carved into /28s (14 addresses; a
// bottle uses 2 or 3), so that bottles never exhaust Docker's default
// address pools and never take Docker's default bridge, 172.17.0.0/16.
var (
	subnetPool   = netip.MustParsePrefix("10.213.0.0/16")
	subnetBits   = 28
	dockerBridge = netip.MustParsePrefix("172.17.0.0/16")
)

// poolSize is the number of subnets in the pool.
func poolSize() int { return 1 << (subnetBits - subnetPool.Bits()) }

// nthSubnet is the i-th /28 of the pool.
func nthSubnet(i int) netip.Prefix {
	base := subnetPool.Addr().As4()
	v := binary.BigEndian.Uint32(base[:]) + uint32(i)<<(32-subnetBits)
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], v)
	return netip.PrefixFrom(netip.AddrFrom4(a), subnetBits)
}

// pickSubnets returns n distinct subnets for the bottle, starting at a
// position derived from its slug and skipping every subnet that overlaps
// one in used. skip moves the start on, for retries after a collision with
// a bottle created at the same moment.
func pickSubnets(slug string, used []netip.Prefix, n, skip int) ([]netip.Prefix, error) {
	sum := sha256.Sum256([]byte(slug))
	start := int(binary.BigEndian.Uint32(sum[:4]) % uint32(poolSize()))
	var out []netip.Prefix
	for i := 0; i < poolSize() && len(out) < n; i++ {
		cand := nthSubnet((start + i) % poolSize())
		if overlapsAny(cand, used) || cand.Overlaps(dockerBridge) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		out = append(out, cand)
	}
	if len(out) < n {
		return nil, fmt.Errorf("no free subnet left in %s for a new bottle; run bottle cleanup to remove stale networks", subnetPool)
	}
	return out, nil
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}

// usedSubnets lists the subnets of every Docker network, and of the host's
// routes when the daemon is local, so a new bottle's networks overlap none.
func (d *Backend) usedSubnets(ctx context.Context) ([]netip.Prefix, error) {
	ids, err := d.out(ctx, "network", "ls", "--quiet", "--no-trunc")
	if err != nil {
		return nil, fmt.Errorf("list docker networks: %w", err)
	}
	var used []netip.Prefix
	args := append([]string{"network", "inspect", "--format", "{{json .IPAM.Config}}"}, strings.Fields(string(ids))...)
	if len(args) > 4 {
		out, err := d.out(ctx, args...)
		if err != nil {
			return nil, fmt.Errorf("inspect docker networks: %w", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			var cfgs []struct{ Subnet string }
			if json.Unmarshal([]byte(line), &cfgs) != nil {
				continue
			}
			for _, c := range cfgs {
				if p, err := netip.ParsePrefix(c.Subnet); err == nil {
					used = append(used, p)
				}
			}
		}
	}
	if os.Getenv("DOCKER_HOST") == "" {
		used = append(used, hostRoutes()...)
	}
	return used, nil
}

// hostRoutes reads the host's IPv4 routes (Linux), leaving out the default
// route, which every subnet overlaps.
func hostRoutes() []netip.Prefix {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []netip.Prefix
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(fs[1], 16, 32)
		mask, err2 := strconv.ParseUint(fs[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 {
			continue
		}
		var d [4]byte
		binary.LittleEndian.PutUint32(d[:], uint32(dst))
		var m [4]byte
		binary.LittleEndian.PutUint32(m[:], uint32(mask))
		bits := 0
		for _, b := range m {
			for b != 0 {
				bits += int(b & 1)
				b >>= 1
			}
		}
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(d), bits).Masked())
	}
	return out
}
