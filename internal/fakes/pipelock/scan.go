package pipelock

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/bottle-dev/bottle/internal/fakes/pipelock/config"
)

// verdict is the stand-in's part of a scanner.Result
// (internal/scanner/scanner.go:583-720@v2.3.0).
type verdict struct {
	// decided is false when every emulated stage passed: pipelock would
	// go on to checks the stand-in does not emulate (core SSRF, DLP,
	// entropy, DNS and SSRF, rate and length limits, data budget).
	decided bool
	reason  string
	hint    string
}

// Block hints, keyed by the scanner that blocked
// (internal/scanner/scanner.go:530-548@v2.3.0); Scan attaches them to
// every block (scanner.go:573-576).
var scannerHints = map[string]string{
	"parser":         "The URL could not be parsed.",
	"scheme":         "Only http and https schemes are allowed.",
	"crlf_injection": "CRLF injection sequence detected in URL. This is never legitimate in normal traffic.",
	"path_traversal": "Path traversal sequence detected. Review the URL for directory escape attempts.",
	"allowlist":      "Domain not on the allowlist. In strict mode, only allowlisted domains are reachable.",
	"blocklist":      "Domain is on the blocklist. Remove from fetch_proxy.monitoring.blocklist if legitimate.",
}

func blocked(scanner, reason string) verdict {
	return verdict{decided: true, reason: reason, hint: scannerHints[scanner]}
}

// scanURL runs the stages of pipelock's URL scanner that come before any
// network I/O or content matching, in pipelock's order
// (internal/scanner/scanner.go:583-637@v2.3.0): parse, alternative IP
// notation, scheme, CRLF, path traversal, the strict-mode allowlist and the
// blocklist. The allowlist is enforced in strict mode only
// (internal/scanner/scanner.go:222-228@v2.3.0).
func scanURL(cfg *config.Config, rawURL string) verdict {
	parsed, err := url.Parse(rawURL)
	if err != nil { // scanner.go:584-587
		return blocked("parser", "invalid URL")
	}
	hostname := strings.ToLower(parsed.Hostname())       // scanner.go:590
	if alt := parseAlternativeIP(hostname); alt != nil { // scanner.go:597-605
		hostname = alt.String()
		if port := parsed.Port(); port != "" {
			parsed.Host = hostname + ":" + port
		} else {
			parsed.Host = hostname
		}
	}
	if parsed.Scheme != "http" && parsed.Scheme != "https" { // scanner.go:608-615
		return blocked("scheme", fmt.Sprintf("scheme %q not allowed: only http and https", parsed.Scheme))
	}
	if v := checkCRLF(rawURL); v.decided { // scanner.go:619-621
		return v
	}
	if v := checkPathTraversal(parsed); v.decided { // scanner.go:624-626
		return v
	}
	if cfg.Mode == config.ModeStrict && len(cfg.APIAllowlist) > 0 { // scanner.go:630-632, 916-931
		ok := false
		for _, pattern := range cfg.APIAllowlist {
			if matchDomain(hostname, pattern) {
				ok = true
				break
			}
		}
		if !ok {
			return blocked("allowlist", fmt.Sprintf("domain not in allowlist: %s", hostname))
		}
	}
	for _, pattern := range cfg.FetchProxy.Monitoring.Blocklist { // scanner.go:635-637, 934-946
		if matchDomain(hostname, pattern) {
			return blocked("blocklist", fmt.Sprintf("domain blocked: %s matches %s", hostname, pattern))
		}
	}
	return verdict{}
}

// matchDomain: internal/scanner/scanner.go:2127-2143@v2.3.0.
func matchDomain(hostname, pattern string) bool {
	hostname = strings.ToLower(strings.TrimSuffix(hostname, "."))
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	if net.ParseIP(hostname) != nil {
		return hostname == pattern
	}
	if strings.HasPrefix(pattern, "*.") {
		return hostname == pattern[2:] || strings.HasSuffix(hostname, pattern[1:])
	}
	return hostname == pattern
}

// parseAlternativeIP: internal/scanner/scanner.go:727-770@v2.3.0.
func parseAlternativeIP(hostname string) net.IP {
	hostname = strings.TrimSpace(hostname)
	if hostname == "" {
		return nil
	}
	if strings.Contains(hostname, ".") {
		parts := strings.Split(hostname, ".")
		if len(parts) != 4 {
			return nil
		}
		octets := make([]byte, 4)
		for i, part := range parts {
			val, err := strconv.ParseUint(part, 0, 16)
			if err != nil || val > 255 {
				return nil
			}
			octets[i] = byte(val)
		}
		nonStandard := false
		for _, part := range parts {
			if strings.HasPrefix(part, "0x") || strings.HasPrefix(part, "0X") || (len(part) > 1 && part[0] == '0' && part != "0") {
				nonStandard = true
				break
			}
		}
		if !nonStandard {
			return nil
		}
		return net.IPv4(octets[0], octets[1], octets[2], octets[3])
	}
	val, err := strconv.ParseUint(hostname, 0, 32)
	if err != nil {
		return nil
	}
	return net.IPv4(byte(val>>24), byte(val>>16&0xFF), byte(val>>8&0xFF), byte(val&0xFF))
}

// checkCRLF: internal/scanner/scanner.go:955-1015@v2.3.0.
func checkCRLF(rawURL string) verdict {
	if i := strings.IndexByte(rawURL, '#'); i != -1 {
		rawURL = rawURL[:i]
	}
	lower := strings.ToLower(rawURL)
	switch {
	case strings.Contains(lower, "%0d%0a"):
		return blocked("crlf_injection", "CRLF injection sequence in URL")
	case strings.Contains(lower, "%250d%250a"):
		return blocked("crlf_injection", "double-encoded CRLF injection sequence in URL")
	case strings.Contains(lower, "%0a") || strings.Contains(lower, "%0d"):
		return blocked("crlf_injection", "encoded CR or LF in URL")
	case strings.Contains(lower, "%250a") || strings.Contains(lower, "%250d"):
		return blocked("crlf_injection", "double-encoded CR or LF in URL")
	case strings.ContainsAny(rawURL, "\r\n"):
		return blocked("crlf_injection", "raw CRLF bytes in URL")
	}
	return verdict{}
}

// checkPathTraversal: internal/scanner/scanner.go:1020-1062@v2.3.0.
func checkPathTraversal(parsed *url.URL) verdict {
	rawPath := parsed.RawPath
	if rawPath == "" {
		rawPath = parsed.Path
	}
	lowerPath := strings.ToLower(rawPath)
	for _, dd := range []string{"..", "%2e.", ".%2e", "%2e%2e"} {
		seps := []string{"/", "\\", "%2f", "%5c"}
		for _, left := range seps {
			for _, right := range seps {
				if strings.Contains(lowerPath, left+dd+right) {
					return blocked("path_traversal", "path traversal sequence in URL")
				}
			}
			if strings.HasSuffix(lowerPath, left+dd) {
				return blocked("path_traversal", "path traversal sequence in URL")
			}
		}
	}
	if strings.Contains(lowerPath, "/%252e%252e/") || strings.Contains(lowerPath, "/%252e%252e%252f") || strings.HasSuffix(lowerPath, "/%252e%252e") {
		return blocked("path_traversal", "double-encoded path traversal in URL")
	}
	return verdict{}
}
