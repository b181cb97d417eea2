package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"sync"
	"time"
)

// upstreamPool is the http.RoundTripper of intercepted hosts' requests
// (plainPool is the plain-HTTP forwarder's). It keeps upstream
// connections alive between requests, but never across decisions: each request goes through a transport of its own decision's
// (the deciding rule, the host and the port), made afresh whenever the
// rules change, so a connection dialled and checked for one decision
// never carries a request another decision allowed, and goes to the
// address that was checked when it was dialled.
type upstreamPool struct {
	// dial is the checked dial (Proxy.dialForward).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// tlsConfig makes the pool's transports speak TLS to the upstream
	// (HTTP/2 where it offers it), verified by this configuration.
	tlsConfig *tls.Config

	mu         sync.Mutex
	transports map[upstreamKey]*http.Transport
}

// upstreamKey identifies a decision: the deciding rule (every field of
// it, written out), the host and the port. The rules' changes reset the
// pool, so equal rules of different rule sets never share a transport.
type upstreamKey struct {
	rule string
	host string
	port int
}

// maxUpstreamTransports bounds the transports kept; past it they are all
// closed and made again as needed.
const maxUpstreamTransports = 1024

// RoundTrip implements http.RoundTripper.
func (u *upstreamPool) RoundTrip(r *http.Request) (*http.Response, error) {
	st, ok := r.Context().Value(forwardKey{}).(*forwardState)
	if !ok || st.d.Rule == nil {
		return nil, errors.New("egress: a request without an allowing decision")
	}
	t := u.transport(upstreamKey{rule: fmt.Sprintf("%#v", *st.d.Rule), host: st.d.Host, port: st.d.Port})
	// A reused connection is not dialled again: record its address.
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if a, err := netip.ParseAddrPort(info.Conn.RemoteAddr().String()); err == nil {
			st.addr.Store(&a)
		}
	}}
	return t.RoundTrip(r.WithContext(httptrace.WithClientTrace(r.Context(), trace)))
}

func (u *upstreamPool) transport(k upstreamKey) *http.Transport {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.transports[k]; ok {
		return t
	}
	if u.transports == nil || len(u.transports) >= maxUpstreamTransports {
		u.closeLocked()
		u.transports = map[upstreamKey]*http.Transport{}
	}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         u.dial,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     upstreamIdle,
		// The client's request decides; the upstream's keep-alive
		// answer is honoured by the transport.
		ForceAttemptHTTP2: false,
	}
	if u.tlsConfig != nil {
		t.TLSClientConfig = u.tlsConfig.Clone()
		t.TLSClientConfig.ServerName = k.host
		t.ForceAttemptHTTP2 = true
		t.TLSHandshakeTimeout = 10 * time.Second
	}
	u.transports[k] = t
	return t
}

// reset drops every transport and closes their idle connections: the
// rules changed, so every decision is new.
func (u *upstreamPool) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closeLocked()
	u.transports = nil
}

func (u *upstreamPool) closeLocked() {
	for _, t := range u.transports {
		t.CloseIdleConnections()
	}
}
