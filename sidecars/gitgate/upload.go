package gitgate

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// gitProtocolRE accepts the Git-Protocol header values git sends
// ("version=2", colon-separated key=value pairs) and nothing that could
// smuggle anything else into git's environment.
var gitProtocolRE = regexp.MustCompile(`^[A-Za-z0-9._=:-]+$`)

// infoRefs answers the first request of every fetch and push: it refreshes
// the mirror from upstream (failing closed) and advertises the mirror's refs.
func (g *Gate) infoRefs(w http.ResponseWriter, req *http.Request, r *remote, service string) {
	r.mu.Lock()
	err := g.refresh(req.Context(), r)
	r.mu.Unlock()
	if err != nil {
		httpError(w, http.StatusBadGateway, fmt.Sprintf(
			"git gate: upstream of %q cannot be reached, so the gate refuses to serve a possibly stale copy:\n%s",
			r.Name, indent(err.Error())))
		return
	}
	var body []byte
	if service == "git-upload-pack" {
		body, err = g.run(req.Context(), gitCmd{
			dir:  r.dir,
			env:  protocolEnv(req),
			args: []string{"upload-pack", "--stateless-rpc", "--advertise-refs", "."},
		}, credential{})
	} else {
		body, err = g.receiveAdvertisement(req.Context(), r)
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, "git gate: advertise refs: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-"+service+"-advertisement")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(pktLine([]byte("# service=" + service + "\n")))
	_, _ = w.Write(pktFlush)
	_, _ = w.Write(body)
}

// uploadPack serves a fetch from the mirror, which infoRefs refreshed.
func (g *Gate) uploadPack(w http.ResponseWriter, req *http.Request, r *remote) {
	body, err := requestBody(req)
	if err != nil {
		httpError(w, http.StatusBadRequest, "git gate: "+err.Error())
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
	w.Header().Set("Cache-Control", "no-cache")
	_, err = g.run(req.Context(), gitCmd{
		dir:    r.dir,
		env:    protocolEnv(req),
		stdin:  body,
		stdout: w,
		args:   []string{"upload-pack", "--stateless-rpc", "."},
	}, credential{})
	if err != nil {
		g.log.Error("upload-pack failed", "remote", r.Name, "error", err.Error())
	}
}

// protocolEnv passes the client's protocol version request on to git.
func protocolEnv(req *http.Request) []string {
	if p := req.Header.Get("Git-Protocol"); len(p) <= 256 && gitProtocolRE.MatchString(p) {
		return []string{"GIT_PROTOCOL=" + p}
	}
	return nil
}

// requestBody returns the request body, decompressed when git sent it gzipped.
func requestBody(req *http.Request) (io.ReadCloser, error) {
	switch enc := req.Header.Get("Content-Encoding"); enc {
	case "", "identity":
		return req.Body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			return nil, fmt.Errorf("read gzipped request: %w", err)
		}
		return zr, nil
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
}

// indent prefixes every line of s with two spaces.
func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
