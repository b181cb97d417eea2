package gitgate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// Defaults for the Config fields left zero.
const (
	DefaultUpstreamTimeout = 5 * time.Minute
	DefaultMaxPushBytes    = 100 << 20
)

// Config configures a Gate.
type Config struct {
	// Remotes are the upstream repositories the gate fronts; each is served
	// at "/<Name>.git".
	Remotes []plan.GitRemote
	// StateDir is the bottle's state directory. The gate keeps its mirrors
	// in StateDir/git-gate/<name>.git, created 0700.
	StateDir string
	// Log receives one JSON object per line for every fetch refresh and
	// every push decision. It never receives credentials or secret values.
	// Nil discards the log.
	Log io.Writer
	// Git is the git executable; empty means "git" looked up in PATH.
	Git string
	// UpstreamTimeout bounds each fetch from and push to an upstream;
	// zero means DefaultUpstreamTimeout.
	UpstreamTimeout time.Duration
	// MaxPushBytes bounds one push, in bytes: the pack as sent, the new
	// objects as stored (uncompressed), and archive members decompressed
	// for the scan, each on its own. A push over it is refused with the
	// limit named. Zero means DefaultMaxPushBytes (100 MiB).
	MaxPushBytes int64
}

// Gate is a smart-HTTP git server that fronts upstream repositories
// through local mirrors, secret-scanning every push before forwarding it
// with credentials the sandbox never sees. A Gate is safe for concurrent use.
type Gate struct {
	git             string
	baseEnv         []string
	remotes         map[string]*remote
	order           []string
	log             *slog.Logger
	scanner         *scanner
	upstreamTimeout time.Duration
	maxPushBytes    int64
}

// remote is one fronted upstream and its mirror.
type remote struct {
	plan.GitRemote
	transport string // "file", "ssh", "https" or "http"
	dir       string // the bare mirror repository
	// mu serialises everything that changes the mirror: the initial clone,
	// refreshes and pushes. Serving fetches from the mirror does not take it.
	mu sync.Mutex
}

// remoteNameRE is checked with a length limit of 100 beside it: a counted
// repetition would compile into a program a hundred copies long at start-up.
var remoteNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// New checks cfg and returns a Gate. It reads no credential and contacts
// no upstream: mirrors are made on first use, and Preflight checks that
// every remote's credential is usable.
func New(cfg Config) (*Gate, error) {
	if cfg.StateDir == "" || !filepath.IsAbs(cfg.StateDir) {
		return nil, fmt.Errorf("git gate: state directory %q must be an absolute path", cfg.StateDir)
	}
	if len(cfg.Remotes) == 0 {
		return nil, errors.New("git gate: no remotes configured")
	}
	bin := cfg.Git
	if bin == "" {
		p, err := exec.LookPath("git")
		if err != nil {
			return nil, fmt.Errorf("git gate: find git: %w; install git or put it on PATH", err)
		}
		bin = p
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	sc, err := newScanner()
	if err != nil {
		return nil, fmt.Errorf("git gate: %w", err)
	}
	home := filepath.Join(cfg.StateDir, "git-gate", "home")
	g := &Gate{
		git:             bin,
		baseEnv:         baseEnv(home),
		remotes:         make(map[string]*remote),
		log:             slog.New(slog.NewJSONHandler(withholdWriter{w: logw, sc: sc}, &slog.HandlerOptions{ReplaceAttr: sc.withholdAttr})),
		scanner:         sc,
		upstreamTimeout: cfg.UpstreamTimeout,
		maxPushBytes:    cfg.MaxPushBytes,
	}
	if g.upstreamTimeout <= 0 {
		g.upstreamTimeout = DefaultUpstreamTimeout
	}
	if g.maxPushBytes <= 0 {
		g.maxPushBytes = DefaultMaxPushBytes
	}
	for _, rc := range cfg.Remotes {
		if len(rc.Name) > 100 || !remoteNameRE.MatchString(rc.Name) || strings.HasSuffix(rc.Name, ".git") || strings.Contains(rc.Name, "..") {
			return nil, fmt.Errorf("git gate: remote name %q: use letters, digits, '.', '_' and '-', not ending in \".git\"", rc.Name)
		}
		if _, dup := g.remotes[rc.Name]; dup {
			return nil, fmt.Errorf("git gate: remote %q is declared twice", rc.Name)
		}
		t, err := transportOf(rc.URL)
		if err != nil {
			return nil, fmt.Errorf("git gate: remote %q: %w", rc.Name, err)
		}
		if rc.ProtectedTags == nil {
			rc.ProtectedTags = []string{"*"} // unset: every tag is protected
		}
		g.remotes[rc.Name] = &remote{
			GitRemote: rc,
			transport: t,
			dir:       filepath.Join(cfg.StateDir, "git-gate", rc.Name+".git"),
		}
		g.order = append(g.order, rc.Name)
	}
	for _, d := range []string{filepath.Join(cfg.StateDir, "git-gate"), home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("git gate: create %s: %w", d, err)
		}
	}
	return g, nil
}

// RemotePath returns the URL path at which the gate serves the remote
// named name: "/<name>.git". The sandbox's git config maps the upstream URL
// onto it with url.<gate URL><path>.insteadOf.
func RemotePath(name string) string {
	return "/" + name + ".git"
}

// Serve accepts connections on l and serves them until l is closed or ctx
// ends; it returns nil after ctx ends.
func (g *Gate) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) && ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("git gate: serve on %s: %w", l.Addr(), err)
}

// ServeHTTP serves git's smart HTTP protocol:
//
//	GET  /<name>.git/info/refs?service=git-upload-pack   (refreshes the mirror first)
//	POST /<name>.git/git-upload-pack
//	GET  /<name>.git/info/refs?service=git-receive-pack  (refreshes the mirror first)
//	POST /<name>.git/git-receive-pack                    (scan, then forward upstream)
func (g *Gate) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	name, rest, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), ".git/")
	r := g.remotes[name]
	if !ok || r == nil {
		httpError(w, http.StatusNotFound, fmt.Sprintf("git gate: no remote at %q; the gate serves %s", req.URL.Path, g.served()))
		return
	}
	switch {
	case rest == "info/refs" && req.Method == http.MethodGet:
		switch svc := req.URL.Query().Get("service"); svc {
		case "git-upload-pack", "git-receive-pack":
			g.infoRefs(w, req, r, svc)
		default:
			httpError(w, http.StatusForbidden, "git gate: only git's smart HTTP protocol is served; upgrade git")
		}
	case rest == "git-upload-pack" && req.Method == http.MethodPost:
		g.uploadPack(w, req, r)
	case rest == "git-receive-pack" && req.Method == http.MethodPost:
		g.receivePack(w, req, r)
	default:
		httpError(w, http.StatusNotFound, fmt.Sprintf("git gate: %s %s is not part of git's smart HTTP protocol", req.Method, req.URL.Path))
	}
}

func (g *Gate) served() string {
	var s []string
	for _, n := range g.order {
		s = append(s, RemotePath(n))
	}
	return strings.Join(s, ", ")
}

// httpError answers with a text/plain body, which git prints line by line
// as "remote: <line>" before its own error.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}
