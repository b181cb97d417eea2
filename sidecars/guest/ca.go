package guest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/bottle-dev/bottle/sidecars"
)

// InstallCA makes the sandbox trust the egress sidecar's CA, whose
// certificate (PEM) is at caPath: it writes sidecars.SandboxCADir with the
// CA alone (sidecars.CACertName) and the image's roots followed by the CA
// (sidecars.CABundleName), the files sidecars.CAEnv names. The directory
// is made afresh; something already at its path that is not a directory
// of this user's is an error, as is a file that holds no certificate.
func InstallCA(caPath string) error {
	ca, err := os.ReadFile(caPath)
	if err != nil {
		return fmt.Errorf("the egress CA: %w", err)
	}
	if !pemHoldsCert(ca) {
		return fmt.Errorf("the egress CA: %s holds no certificate", caPath)
	}
	var roots []byte
	for _, p := range sidecars.SystemRootFiles {
		if b, err := os.ReadFile(p); err == nil {
			roots = b
			break
		}
	}
	dir := sidecars.SandboxCADir
	if err := os.MkdirAll(filepath.Dir(dir), 0o1777); err != nil {
		return fmt.Errorf("the CA bundle: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("the CA bundle: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("the CA bundle: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("the CA bundle: %s exists and is not a directory of this user's", dir)
	}
	bundle := append(append([]byte(nil), roots...), '\n')
	bundle = append(bundle, ca...)
	for name, data := range map[string][]byte{sidecars.CACertName: ca, sidecars.CABundleName: bundle} {
		if err := sidecars.WriteFileAtomic(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("the CA bundle: %w", err)
		}
	}
	return nil
}

func pemHoldsCert(b []byte) bool {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return false
		}
		if blk.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(blk.Bytes); err == nil {
				return true
			}
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return false
		}
	}
}
