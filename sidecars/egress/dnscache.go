package egress

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// The proxy keeps each name's addresses for a short while, as squid's
// ipcache does, so that a client opening many connections to one host
// waits for one lookup, not one per connection. The Go resolver keeps
// nothing, and reports no TTL, so the proxy keeps an answer for
// dnsCacheLife, which is below the TTL of nearly every name on the
// internet. Failures are not kept. Every use of a kept answer is checked
// again, as a fresh one is (Proxy.dial): keeping an answer never lets an
// address through that the rules of the moment refuse.
var dnsCacheLife = 10 * time.Second

// maxDNSCache bounds the names kept.
const maxDNSCache = 1024

// dnsCache is the proxy's store of recent answers.
type dnsCache struct {
	mu      sync.Mutex
	entries map[string]dnsEntry
}

type dnsEntry struct {
	addrs   []netip.Addr
	expires time.Time
}

// lookup returns name's addresses from the cache or, when none are kept
// or they are too old, from r. name is fully qualified (a trailing dot).
// The returned slice must not be changed.
func (c *dnsCache) lookup(ctx context.Context, r Resolver, name string) ([]netip.Addr, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.addrs, nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	if err != nil || len(addrs) == 0 {
		return addrs, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxDNSCache {
		for n, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, n)
			}
		}
		if len(c.entries) >= maxDNSCache {
			clear(c.entries)
		}
	}
	if c.entries == nil {
		c.entries = map[string]dnsEntry{}
	}
	c.entries[name] = dnsEntry{addrs: addrs, expires: now.Add(dnsCacheLife)}
	return addrs, nil
}
