package pipelock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/bottle-dev/bottle/internal/fakes/pipelock/config"
)

// serve is `pipelock run` (internal/cli/runtime/run.go:143-180 and
// server.go:286-355, 584-1145@v2.3.0) for a config file whose sections the
// stand-in emulates. It listens where pipelock would, logs pipelock's
// startup banner (stderr) and startup and shutdown records (JSON lines),
// answers /health as pipelock does, and answers forward-proxy requests
// with pipelock's decision as far as the stand-in can make it (see
// proxyRequest). It returns when ctx ends (SIGINT or SIGTERM in Main).
func serve(ctx context.Context, flags parsedFlags, pos positional, version string, stdout, stderr io.Writer) error {
	// internal/cli/runtime/run.go:132-142@v2.3.0
	switch {
	case pos.atDash < 0 && len(pos.args) > 0:
		return fmt.Errorf("unexpected arguments %q; pass agent args after --", pos.args)
	case pos.atDash > 0:
		return fmt.Errorf("unexpected arguments before --: %q", pos.args[:pos.atDash])
	}
	agentArgs := pos.args // run.go:198-203: everything after "--"
	path := flags["config"]
	if path == "" {
		// server.go:332-334 starts from config.Defaults(); not emulated.
		return errNotEmulated("run without --config")
	}
	cfg, err := config.Load(path) // server.go:326-331
	if err != nil {
		return fmt.Errorf("loading config: %w", err)
	}
	if m, ok := flags["mode"]; ok { // server.go:336-338 (--mode only when given: run.go:156)
		cfg.Mode = m
	}
	if l, ok := flags["listen"]; ok { // server.go:339-341 (--listen only when given: run.go:157)
		cfg.FetchProxy.Listen = l
	}
	cfg.ApplyDefaults() // server.go:347
	warnings, err := cfg.ValidateWithWarnings()
	for _, w := range warnings { // server.go:349-351
		fmt.Fprintf(stderr, "WARNING: %s: %s\n", w.Field, w.Message)
	}
	if err != nil { // server.go:352-354
		return fmt.Errorf("invalid config: %w", err)
	}

	// The audit logger (server.go:368-378, internal/audit/logger.go:428-469@v2.3.0):
	// zerolog JSON lines with a timestamp and component=pipelock, on stdout,
	// a file or both.
	if cfg.Logging.Format != "json" {
		return errNotEmulated("logging.format " + cfg.Logging.Format + " in run")
	}
	var writers []io.Writer
	if cfg.Logging.Output == "stdout" || cfg.Logging.Output == "both" {
		writers = append(writers, stdout)
	}
	if cfg.Logging.Output == "file" || cfg.Logging.Output == "both" {
		f, err := os.OpenFile(filepath.Clean(cfg.Logging.File), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("creating audit logger: %w", err)
		}
		defer f.Close()
		writers = append(writers, f)
	}
	logger := zerolog.New(io.MultiWriter(writers...)).With().Timestamp().Str("component", "pipelock").Logger()

	if !isContainerized() { // server.go:638-640
		fmt.Fprintln(stderr, "WARNING: running outside a container - consider using Docker/Podman for network isolation")
	}
	listen := cfg.FetchProxy.Listen
	fmt.Fprintf(stderr, "Pipelock v%s starting\n", version)              // server.go:643
	fmt.Fprintf(stderr, "  Mode:   %s\n", cfg.Mode)                      // server.go:644
	fmt.Fprintf(stderr, "  Listen: %s\n", listen)                        // server.go:645
	fmt.Fprintf(stderr, "  Fetch:  http://%s/fetch?url=<url>\n", listen) // server.go:646
	fmt.Fprintf(stderr, "  Health: http://%s/health\n", listen)          // server.go:647
	fmt.Fprintf(stderr, "  Stats:  http://%s/stats\n", listen)           // server.go:650-652 (no metrics_listen)
	if cfg.ForwardProxy.Enabled {                                        // server.go:653-655
		fmt.Fprintf(stderr, "  Proxy:  HTTP/HTTPS forward proxy enabled (CONNECT + absolute-URI)\n")
	}
	fmt.Fprintf(stderr, "  Config: %s (hot-reload enabled, SIGHUP to reload)\n", path) // server.go:672-674, signal_unix.go:46-48
	if len(agentArgs) > 0 {                                                            // server.go:693-698
		fmt.Fprintf(stderr, "  Agent:  %v\n", agentArgs)
		fmt.Fprintln(stderr, "\nNote: agent process launching is not yet implemented (Phase 2).")
		fmt.Fprintln(stderr, "The fetch proxy is running — configure your agent to use:")
		fmt.Fprintf(stderr, "  PIPELOCK_FETCH_URL=http://%s/fetch\n\n", listen)
	}

	start := time.Now()
	// internal/proxy/proxy.go:1925-1942@v2.3.0: the server's timeouts; with the
	// forward proxy on there is no write timeout.
	writeTimeout := time.Duration(cfg.FetchProxy.TimeoutSeconds+10) * time.Second
	if cfg.ForwardProxy.Enabled {
		writeTimeout = 0
	}
	srv := &http.Server{
		Addr:              listen,
		Handler:           handler(cfg, version, start),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadTimeout:       10 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
	}
	done := make(chan struct{})
	go func() { // proxy.go:1951-1970: shut down when the context ends
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		case <-done:
		}
	}()
	// proxy.go:1982, internal/audit/logger.go:877-884@v2.3.0
	logger.Info().Str("event", "startup").Str("listen", listen).Str("mode", cfg.Mode).
		Str("version", version).Str("config_hash", cfg.Hash()).Msg("pipelock started")
	err = srv.ListenAndServe() // proxy.go:1984-1990
	close(done)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("proxy error: %w", err) // server.go:1098-1104
	}
	// server.go:1142-1144, internal/audit/logger.go:887-891@v2.3.0
	logger.Info().Str("event", "shutdown").Str("reason", "signal received").Msg("pipelock stopping")
	fmt.Fprintln(stderr, "\nPipelock stopped.")
	return nil
}

// isContainerized: internal/cli/runtime/container.go:14-38@v2.3.0.
func isContainerized() bool {
	if _, err := os.Stat("/.dockerenv"); err == nil {
		return true
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return true
	}
	if b, err := os.ReadFile("/proc/1/cgroup"); err == nil {
		s := string(b)
		return strings.Contains(s, "docker") || strings.Contains(s, "containerd") || strings.Contains(s, "podman") || strings.Contains(s, "cri-o")
	}
	return false
}

// notEmulated answers a request the stand-in cannot answer as pipelock
// would. It is the stand-in's own response, not pipelock's.
func notEmulated(w http.ResponseWriter, what string) {
	http.Error(w, "fake pipelock: "+what+" is not emulated by this stand-in", http.StatusNotImplemented)
}

// handler is pipelock's request routing (internal/proxy/proxy.go:1811-1899@v2.3.0):
// CONNECT and absolute-URI requests go to the forward proxy, the rest to
// the mux of /fetch, /ws, /health, /metrics and /stats. The kill switch
// (proxy.go:1814-1827) is off: its section is not emulated.
func handler(cfg *config.Config, version string, start time.Time) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, _ *http.Request) { notEmulated(w, "/fetch") })        // proxy.go:1880
	mux.HandleFunc("/ws", func(w http.ResponseWriter, _ *http.Request) { notEmulated(w, "/ws") })              // proxy.go:1881
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { health(w, cfg, version, start) }) // proxy.go:1882
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { notEmulated(w, "/metrics") })    // proxy.go:1884-1887
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) { notEmulated(w, "/stats") })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect { // proxy.go:1829-1836
			if !cfg.ForwardProxy.Enabled {
				http.Error(w, "CONNECT not supported", http.StatusMethodNotAllowed)
				return
			}
			handleConnect(w, r, cfg)
			return
		}
		if r.URL.IsAbs() && r.URL.Host != "" { // proxy.go:1837-1844
			if !cfg.ForwardProxy.Enabled {
				http.Error(w, "forward proxy not enabled", http.StatusMethodNotAllowed)
				return
			}
			handleForwardHTTP(w, r, cfg)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// health answers /health (internal/proxy/proxy.go:3259-3306@v2.3.0) with
// the values pipelock computes from the emulated config. The sections the
// stand-in refuses keep pipelock's defaults: response scanning on
// (internal/config/normalize.go:53-54@v2.3.0), git protection, WebSocket
// proxy and TLS interception off, and the kill switch inactive.
// dlp_patterns counts the configured patterns; pipelock's run also merges
// rule bundles from its home (internal/rules/merge.go:112-172@v2.3.0),
// which the stand-in does not.
func health(w http.ResponseWriter, cfg *config.Config, version string, start time.Time) {
	resp := struct {
		Status                 string  `json:"status"`
		Version                string  `json:"version"`
		Mode                   string  `json:"mode"`
		UptimeSeconds          float64 `json:"uptime_seconds"`
		DLPPatterns            int     `json:"dlp_patterns"`
		ResponseScanEnabled    bool    `json:"response_scan_enabled"`
		GitProtectionEnabled   bool    `json:"git_protection_enabled"`
		RateLimitEnabled       bool    `json:"rate_limit_enabled"`
		ForwardProxyEnabled    bool    `json:"forward_proxy_enabled"`
		WebSocketProxyEnabled  bool    `json:"websocket_proxy_enabled"`
		RequestBodyScanEnabled bool    `json:"request_body_scan_enabled"`
		TLSInterceptionEnabled bool    `json:"tls_interception_enabled"`
		KillSwitchActive       bool    `json:"kill_switch_active"`
	}{
		Status:                 "healthy",
		Version:                version, // internal/cli/root.go:39@v2.3.0: /health reports the CLI's version
		Mode:                   cfg.Mode,
		UptimeSeconds:          time.Since(start).Seconds(),
		DLPPatterns:            len(cfg.DLP.Patterns),
		ResponseScanEnabled:    true,
		RateLimitEnabled:       cfg.FetchProxy.Monitoring.MaxReqPerMinute > 0,
		ForwardProxyEnabled:    cfg.ForwardProxy.Enabled,
		RequestBodyScanEnabled: cfg.RequestBodyScanning.Enabled,
	}
	// proxy.go:3307-3314 writeJSON
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(resp)
}

// handleConnect is the start of pipelock's CONNECT handling
// (internal/proxy/forward.go:72-227@v2.3.0): the target gets port 443 when
// it has none, the URL scanner runs on "https://host/", header DLP may
// block, and a blocked URL is refused with 403 "CONNECT blocked: <reason>"
// (and the hint in X-Pipelock-Hint when explain_blocks is on). Anything
// pipelock would go on to do (later scanners, audit mode, dialing, SNI
// verification, tunnelling) is not emulated.
func handleConnect(w http.ResponseWriter, r *http.Request, cfg *config.Config) {
	target := r.Host
	if target == "" { // forward.go:95-99
		http.Error(w, "missing target host", http.StatusBadRequest)
		return
	}
	if _, _, err := net.SplitHostPort(target); err != nil { // forward.go:102-106
		bare := strings.TrimPrefix(strings.TrimSuffix(target, "]"), "[")
		target = net.JoinHostPort(bare, "443")
	}
	host, _, _ := net.SplitHostPort(target) // forward.go:111-116
	synthetic := host
	if strings.Contains(host, ":") {
		synthetic = "[" + host + "]"
	}
	v := scanURL(cfg, "https://"+synthetic+"/") // forward.go:126
	if headerDLPMayBlock(r.Header, cfg) {       // forward.go:158-190: header DLP is decided before the URL verdict
		notEmulated(w, "header DLP on CONNECT")
		return
	}
	if !v.decided {
		notEmulated(w, "a CONNECT that passes the allowlist and blocklist (pipelock would run further scanners, then dial and tunnel)")
		return
	}
	if !cfg.EnforceEnabled() { // forward.go:227-245: audit mode goes on
		notEmulated(w, "a blocked CONNECT with enforce: false")
		return
	}
	if cfg.ExplainBlocksEnabled() && v.hint != "" { // forward.go:222-224
		w.Header().Set("X-Pipelock-Hint", v.hint)
	}
	http.Error(w, "CONNECT blocked: "+v.reason, http.StatusForbidden) // forward.go:225
}

// handleForwardHTTP is the start of pipelock's absolute-URI handling
// (internal/proxy/forward.go:544-693@v2.3.0): the URL scanner runs on the
// request URL and a blocked URL is refused with 403 "blocked: <reason>"
// (and X-Pipelock-Hint when explain_blocks is on). A2A scanning, which
// could answer first (forward.go:585-616), is off unless configured
// (internal/config/normalize.go:509@v2.3.0), and the session airlock
// (forward.go:654-666) starts open. Forwarding is not emulated.
func handleForwardHTTP(w http.ResponseWriter, r *http.Request, cfg *config.Config) {
	v := scanURL(cfg, r.URL.String()) // forward.go:573-582
	if !v.decided {
		notEmulated(w, "an absolute-URI request that passes the allowlist and blocklist (pipelock would run further scanners, then forward it)")
		return
	}
	if !cfg.EnforceEnabled() { // forward.go:694-712: audit mode goes on
		notEmulated(w, "a blocked absolute-URI request with enforce: false")
		return
	}
	if cfg.ExplainBlocksEnabled() && v.hint != "" { // forward.go:689-691
		w.Header().Set("X-Pipelock-Hint", v.hint)
	}
	http.Error(w, "blocked: "+v.reason, http.StatusForbidden) // forward.go:692
}

// headerDLPMayBlock reports whether pipelock's header DLP could refuse
// this CONNECT (internal/proxy/bodyscan.go:614-648, 721-743@v2.3.0): it
// blocks only with request body scanning on, scan_headers on, action
// block and enforcement on, and it looks only at the headers header_mode
// selects. Whether a value matches a DLP pattern is not emulated.
func headerDLPMayBlock(h http.Header, cfg *config.Config) bool {
	rb := cfg.RequestBodyScanning
	if !rb.Enabled || !rb.ScanHeaders || rb.Action != "block" || !cfg.EnforceEnabled() {
		return false
	}
	set := map[string]bool{}
	list := rb.SensitiveHeaders
	if rb.HeaderMode == "all" {
		list = rb.IgnoreHeaders
	}
	for _, name := range list {
		set[http.CanonicalHeaderKey(name)] = true
	}
	for name := range h {
		if set[http.CanonicalHeaderKey(name)] != (rb.HeaderMode == "all") {
			return true
		}
	}
	return false
}
