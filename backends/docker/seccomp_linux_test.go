package docker

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/moby/profiles/seccomp"
)

// TestSeccompDefaultIsTheModules: the embedded default is the one
// DefaultProfile() of the required module version makes (built on Linux
// only, hence this file), so that an upgrade of the module cannot leave a
// stale copy behind.
func TestSeccompDefaultIsTheModules(t *testing.T) {
	b, err := json.MarshalIndent(seccomp.DefaultProfile(), "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, defaultSeccomp) {
		t.Errorf("seccomp_default.json is not github.com/moby/profiles/seccomp's DefaultProfile(): run go generate ./backends/docker")
	}
}
