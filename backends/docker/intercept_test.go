package docker_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const interceptProfile = `
docker(image = "AGENT_IMAGE")
allow("api.bound.test", ports = [8443], allow_private = True)
allow("gh.rules.test", ports = [8443], allow_private = True, methods = ["GET"], paths = ["/repos/acme/app/**"])
secret("API_KEY", from_env = "TEST_API_KEY", hosts = ["api.bound.test"])
`

// upstreamCert writes a self-signed certificate for names, which is its
// own root, and its key, to dir.
func upstreamCert(t testing.TB, dir string, names ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "interception test upstream"},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o644)
	return certFile, keyFile
}

// TestInterceptionInDocker: a secret bound to a host never enters the
// agent container (docker inspect of both containers, and every process's
// environment inside), while the agent's request to that host, with the
// placeholder, arrives authenticated with the real value; a host with
// method and path rules lets GET under its path through and refuses a POST
// and another path. The destination is an HTTPS server of the test's own,
// on a network only the bundle joins, whose certificate the bundle trusts
// through the host's SSL_CERT_FILE.
func TestInterceptionInDocker(t *testing.T) {
	e := newEnv(t)
	profile := e.profile("icpt.star", interceptProfile)
	slug := e.slugOf(profile)
	real := "sk-test-" + strings.Repeat("q7Zx", 12)

	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	certFile, _ := upstreamCert(t, dir, "api.bound.test", "gh.rules.test")
	if err := os.WriteFile(filepath.Join(dir, "auth"), []byte("Bearer "+real+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	netName := "bottle-test-icpt-" + slug
	exec.Command("docker", "network", "rm", netName).Run()
	dockerOut(t, "network", "create", netName)
	defer exec.Command("docker", "network", "rm", netName).Run()
	server := "bottle-test-icpt-" + slug
	exec.Command("docker", "rm", "-f", server).Run()
	dockerOut(t, "run", "-d", "--name", server, "--network", netName, "--network-alias", "api.bound.test", "--network-alias", "gh.rules.test",
		"--mount", "type=bind,src="+dir+",dst=/srv,readonly", fixture.image,
		"/bin/tlsupstream", "-addr", ":8443", "-cert", "/srv/cert.pem", "-key", "/srv/key.pem", "-auth-file", "/srv/auth")
	defer exec.Command("docker", "rm", "-f", server).Run()
	e.extra = append(e.extra, "BOTTLE_BUNDLE_NETWORK="+netName, "SSL_CERT_FILE="+certFile, "TEST_API_KEY="+real)

	script := `for i in $(seq 1 100); do /bin/probe request GET https://api.bound.test:8443/v1/messages "Authorization: Bearer $API_KEY" && break; sleep 0.2; done
echo ---; /bin/probe request GET https://gh.rules.test:8443/repos/acme/app/pulls
echo ---; /bin/probe request POST https://gh.rules.test:8443/repos/acme/app/pulls
echo ---; /bin/probe request GET https://gh.rules.test:8443/repos/acme/other
echo ---; cat /proc/[0-9]*/environ | tr '\0' '\n'
echo ---; touch /tmp/ready; sleep 30; true`
	cmd := e.command("start", "--yes", profile, "--", "sh", "-c", script)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	agent, bundle := "bottle-"+slug+"-agent", "bottle-"+slug+"-sidecars"
	waitFor(t, "the agent's probes", 90*time.Second, func() bool {
		return exec.Command("docker", "exec", agent, "test", "-e", "/tmp/ready").Run() == nil
	})
	for _, c := range []string{agent, bundle} {
		insp := dockerOut(t, "inspect", c)
		if strings.Contains(insp, real) {
			t.Errorf("docker inspect %s shows the secret's value", c)
		}
	}
	if env := dockerOut(t, "exec", agent, "sh", "-c", "cat /proc/[0-9]*/environ | tr '\\0' '\\n'"); strings.Contains(env, real) {
		t.Error("a process in the agent container has the secret's value in its environment")
	} else if !strings.Contains(env, "API_KEY=sk-test-BOTTLEPH") {
		t.Errorf("the agent does not hold the placeholder:\n%s", env)
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if strings.Contains(out.String(), real) || strings.Contains(stderr.String(), real) {
		t.Error("bottle's output shows the secret's value")
	}
	parts := strings.Split(out.String(), "---")
	if len(parts) < 5 {
		t.Fatalf("unexpected output:\n%s\n%s", out.String(), stderr.String())
	}
	if !strings.Contains(parts[0], "status 200") || !strings.Contains(parts[0], "ok GET /v1/messages") {
		t.Errorf("the authenticated request did not succeed:\n%s\n%s", parts[0], stderr.String())
	}
	if !strings.Contains(parts[1], "status 200") || !strings.Contains(parts[1], "ok GET /repos/acme/app/pulls") {
		t.Errorf("GET under the allowed path:\n%s", parts[1])
	}
	if !strings.Contains(parts[2], "status 403") || !strings.Contains(parts[2], `methods = ["GET", "POST"]`) {
		t.Errorf("POST was not refused with the rule that would allow it:\n%s", parts[2])
	}
	if !strings.Contains(parts[3], "status 403") || !strings.Contains(parts[3], "not among the rule's paths") {
		t.Errorf("another path was not refused:\n%s", parts[3])
	}
	logs, _ := exec.Command("docker", "logs", server).CombinedOutput()
	if !strings.Contains(string(logs), "GET /v1/messages authorized=true") || strings.Contains(string(logs), "POST") {
		t.Errorf("the upstream's log:\n%s", logs)
	}
	// The decision log names the secret it substituted.
	hist, err := os.ReadFile(filepath.Join(e.dir, "state", "bottle", ".history", slug, "egress.jsonl"))
	if err != nil || !strings.Contains(string(hist), `"substituted":["API_KEY"]`) || strings.Contains(string(hist), real) {
		t.Errorf("the egress log (%v):\n%s", err, hist)
	}
	// A refusal shows with --denied, and names the rule, not a value.
	denied, _, _ := e.run("logs", "--denied", slug)
	if !strings.Contains(denied, `"method":"POST"`) || !strings.Contains(denied, "not among the rule's methods") {
		t.Errorf("bottle logs --denied:\n%s", denied)
	}
}
