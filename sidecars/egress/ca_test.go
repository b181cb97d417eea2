package egress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mintOutside signs, with the CA's own key, a certificate for names or ip
// that the CA's name constraints do not permit: what a leaked key could do.
func mintOutside(t *testing.T, ca *CA, dns string, ip net.IP) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: dns},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if dns != "" {
		tmpl.DNSNames = []string{dns}
	}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// TestCANameConstraints: the CA's certificate carries critical name
// constraints; Go's verifier accepts its leaves for the intercepted names
// and refuses a certificate the same key signs for any other name or for
// an IP address.
func TestCANameConstraints(t *testing.T) {
	ca, err := NewCA([]string{"api.bottle.test", "*.models.bottle.test"})
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate()
	if !c.PermittedDNSDomainsCritical || len(c.PermittedDNSDomains) != 2 || !c.IsCA || !c.MaxPathLenZero {
		t.Fatalf("CA certificate: constraints %v critical %v, CA %v, path length zero %v", c.PermittedDNSDomains, c.PermittedDNSDomainsCritical, c.IsCA, c.MaxPathLenZero)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c)
	verify := func(cert *tls.Certificate, name string) error {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name})
		return err
	}
	for _, h := range []string{"api.bottle.test", "API.bottle.test.", "eu.models.bottle.test"} {
		leaf, err := ca.Leaf(h)
		if err != nil {
			t.Fatalf("Leaf(%s): %v", h, err)
		}
		if err := verify(leaf, strings.TrimSuffix(strings.ToLower(h), ".")); err != nil {
			t.Errorf("leaf for %s: %v", h, err)
		}
	}
	for _, h := range []string{"evil.test", "models.bottle.test", "bottle.test", "api.bottle.test.evil.test", "127.0.0.1"} {
		if _, err := ca.Leaf(h); err == nil {
			t.Errorf("Leaf(%s) signed a name outside the constraints", h)
		}
	}
	var cie x509.CertificateInvalidError
	if err := verify(mintOutside(t, ca, "evil.test", nil), "evil.test"); !errors.As(err, &cie) || cie.Reason != x509.CANotAuthorizedForThisName {
		t.Errorf("a certificate the key signed for evil.test verified: %v", err)
	}
	if err := verify(mintOutside(t, ca, "models.bottle.test", nil), "models.bottle.test"); !errors.As(err, &cie) || cie.Reason != x509.CANotAuthorizedForThisName {
		t.Errorf("a certificate for the bare domain of a *. pattern verified: %v", err)
	}
	if err := verify(mintOutside(t, ca, "", net.ParseIP("127.0.0.1")), "127.0.0.1"); err == nil {
		t.Errorf("a certificate the key signed for an IP address verified")
	}
	for _, bad := range []string{"", "10.0.0.1", "[::1]", "a*b.test", "host:443"} {
		if _, err := NewCA([]string{bad}); err == nil {
			t.Errorf("NewCA(%q) accepted it", bad)
		}
	}
}

// TestCAWithCurl: OpenSSL, through the real curl, trusts the CA for an
// intercepted name and refuses a certificate its key signed for another
// name, over real TLS on loopback.
func TestCAWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("BOTTLE_CI") != "" {
			t.Fatalf("CI must run this: %v", err)
		}
		t.Skip("skipping: needs curl")
	}
	ca, err := NewCA([]string{"api.bottle.test"})
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := mintOutside(t, ca, "evil.bottle.test", nil)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if h.ServerName == "evil.bottle.test" {
			return outside, nil
		}
		return ca.GetCertificate(h)
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("upstream " + r.Host)) })}
	go srv.Serve(ln)
	defer srv.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	get := func(name string) (string, error) {
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "--cacert", caFile, "--resolve", name+":"+port+":127.0.0.1", "https://"+name+":"+port+"/").CombinedOutput()
		return string(out), err
	}
	if out, err := get("api.bottle.test"); err != nil || !strings.Contains(out, "upstream api.bottle.test") {
		t.Errorf("curl to the intercepted name: %v\n%s", err, out)
	}
	if out, err := get("evil.bottle.test"); err == nil {
		t.Errorf("curl trusted a certificate for a name outside the CA's constraints:\n%s", out)
	} else {
		t.Logf("curl refused evil.bottle.test: %s", strings.TrimSpace(out))
	}
}

// TestCALeavesBounded: a wildcard lets the sandbox ask for endless names;
// the CA keeps at most maxLeaves of their certificates.
func TestCALeavesBounded(t *testing.T) {
	ca, err := NewCA([]string{"*.bottle.test"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxLeaves + 10 {
		if _, err := ca.Leaf(fmt.Sprintf("h%d.bottle.test", i)); err != nil {
			t.Fatal(err)
		}
	}
	ca.mu.Lock()
	n := len(ca.leaves)
	ca.mu.Unlock()
	if n > maxLeaves {
		t.Errorf("the CA keeps %d leaves; want at most %d", n, maxLeaves)
	}
}
