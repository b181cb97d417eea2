package egress

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"
)

// CA is a bottle's interception certificate authority: the egress sidecar
// generates one at start, for the hosts whose TLS it terminates, and signs
// a leaf certificate for each such host on demand. Its private key exists
// only in the sidecar's memory; the sandbox gets the certificate (CertPEM)
// to trust.
//
// The certificate carries critical X.509 name constraints (RFC 5280
// section 4.2.1.10): it may sign only the names it was made for, and no IP
// address. A client that checks name constraints (Go's crypto/x509,
// OpenSSL, and so curl, git, Python and Node.js) refuses any other
// certificate it signs, so even a leaked key cannot impersonate another
// host to the sandbox.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	names   []string

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
}

// maxLeaves bounds the leaf certificates a CA keeps.
const maxLeaves = 1024

// CAValidity is how long a bottle's CA and its leaves are valid, from an
// hour before they are made (clock skew with the sandbox).
const CAValidity = 30 * 24 * time.Hour

// NewCA makes a CA for names: exact host names ("api.example.com") or
// wildcard patterns for the subdomains of one ("*.example.com"), as allow
// rules write them. Names are compared case-insensitively; IP addresses,
// empty names and wildcards other than a leading "*." are refused.
func NewCA(names []string) (*CA, error) {
	if len(names) == 0 {
		return nil, errors.New("interception CA: no host names to constrain it to")
	}
	var permitted []string
	for _, n := range names {
		c, err := constraintFor(n)
		if err != nil {
			return nil, err
		}
		permitted = append(permitted, c)
	}
	key, serial, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "bottle egress interception CA", Organization: []string{"bottle"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		// RFC 5280 4.2.1.10: only these DNS names; no IP address at all
		// (the whole IPv4 and IPv6 spaces excluded).
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         permitted,
		ExcludedIPRanges: []*net.IPNet{
			{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("interception CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("interception CA: %w", err)
	}
	return &CA{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
		names:   permitted,
		leaves:  map[string]*tls.Certificate{},
	}, nil
}

// constraintFor turns an allow rule's host into a DNS name constraint:
// "api.example.com" as is (which, by RFC 5280, also permits its
// subdomains), "*.example.com" as ".example.com" (its subdomains only).
func constraintFor(name string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	wild := strings.HasPrefix(n, "*.")
	if wild {
		n = n[2:]
	}
	switch {
	case n == "":
		return "", fmt.Errorf("interception CA: empty host name %q", name)
	case net.ParseIP(strings.Trim(n, "[]")) != nil:
		return "", fmt.Errorf("interception CA: %q is an IP address; the CA signs host names only", name)
	case strings.ContainsAny(n, "*/: "):
		return "", fmt.Errorf("interception CA: %q is not a host name or a *.domain pattern", name)
	}
	if wild {
		return "." + n, nil
	}
	return n, nil
}

// newKey makes a certificate's ECDSA P-256 key and random serial number.
func newKey() (*ecdsa.PrivateKey, *big.Int, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("interception CA: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	return key, serial, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("interception CA: serial number: %w", err)
	}
	return serial, nil
}

// Certificate is the CA's certificate, for tests and for the sandbox's
// trust store.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// CertPEM is the CA's certificate in PEM form, the bundle the sandbox
// trusts. It holds no key.
func (c *CA) CertPEM() []byte { return append([]byte(nil), c.certPEM...) }

// Permits reports whether the CA may sign a certificate for host, by its
// name constraints.
func (c *CA) Permits(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "" || net.ParseIP(h) != nil {
		return false
	}
	for _, p := range c.names {
		if strings.HasPrefix(p, ".") {
			if strings.HasSuffix(h, p) {
				return true
			}
		} else if h == p || strings.HasSuffix(h, "."+p) {
			return true
		}
	}
	return false
}

// Leaf returns a TLS certificate for host signed by the CA, made on first
// use and then reused: a fresh ECDSA P-256 key, host as its only DNS name,
// server authentication only, valid as long as the CA. A host outside the
// CA's constraints is an error.
func (c *CA) Leaf(host string) (*tls.Certificate, error) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if !c.Permits(h) {
		return nil, fmt.Errorf("interception CA: %q is not among the intercepted names", host)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if leaf, ok := c.leaves[h]; ok {
		return leaf, nil
	}
	key, serial, err := newKey()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: h},
		DNSNames:     []string{h},
		NotBefore:    c.cert.NotBefore,
		NotAfter:     c.cert.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return nil, fmt.Errorf("interception CA: sign %s: %w", h, err)
	}
	leaf := &tls.Certificate{Certificate: [][]byte{der, c.cert.Raw}, PrivateKey: key}
	if leaf.Leaf, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("interception CA: %w", err)
	}
	if len(c.leaves) >= maxLeaves {
		// A wildcard rule lets the sandbox ask for endless names: forget
		// them all rather than grow (they are made again on demand).
		c.leaves = make(map[string]*tls.Certificate)
	}
	c.leaves[h] = leaf
	return leaf, nil
}

// GetCertificate is a tls.Config.GetCertificate that answers each
// handshake with the leaf for its server name.
func (c *CA) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		return nil, errors.New("interception CA: the client sent no server name")
	}
	return c.Leaf(hello.ServerName)
}
