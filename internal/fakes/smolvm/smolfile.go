//go:build linux

package smolvm

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"
)

// smolfileSchema mirrors smolvm 1.8.1's Smolfile (crate smolfile 1.8.1,
// crates/smolvm-smolfile/src/lib.rs@v1.8.1, unchanged since v1.8.0): every table is
// #[serde(deny_unknown_fields)], optional scalars are Option<T> and lists
// default to empty. Integer widths follow the Rust types, so an
// out-of-range value is a parse error as it is for serde.
type smolfileSchema struct {
	Image        *string              `toml:"image"`
	Entrypoint   []string             `toml:"entrypoint"`
	Cmd          []string             `toml:"cmd"`
	Env          []string             `toml:"env"`
	Secrets      map[string]secretRef `toml:"secrets"`
	Workdir      *string              `toml:"workdir"`
	CPUs         *uint8               `toml:"cpus"`
	Memory       *uint32              `toml:"memory"`
	Net          *bool                `toml:"net"`
	GPU          *bool                `toml:"gpu"`
	GPUVram      *uint32              `toml:"gpu_vram"`
	Rosetta      *bool                `toml:"rosetta"`
	CUDA         *bool                `toml:"cuda"`
	AutoGraph    *bool                `toml:"auto_graph"`
	DockerSocket *bool                `toml:"docker_socket"`
	Storage      *uint64              `toml:"storage"`
	Overlay      *uint64              `toml:"overlay"`
	Ports        []string             `toml:"ports"`
	Volumes      []string             `toml:"volumes"`
	Init         []string             `toml:"init"`
	Artifact     *artifactConfig      `toml:"artifact"`
	Pack         *artifactConfig      `toml:"pack"`
	Dev          *devConfig           `toml:"dev"`
	Network      *networkConfig       `toml:"network"`
	Health       *healthConfig        `toml:"health"`
	Restart      *restartConfig       `toml:"restart"`
	Auth         *authConfig          `toml:"auth"`
	Service      *serviceConfig       `toml:"service"`
	Fork         *forkConfig          `toml:"fork"`
}

// secretRef is smolvm_protocol::SecretRef: exactly one source, checked at
// create time.
type secretRef struct {
	FromEnv  *string `toml:"from_env"`
	FromFile *string `toml:"from_file"`
}

type artifactConfig struct {
	CPUs        *uint8   `toml:"cpus"`
	Memory      *uint32  `toml:"memory"`
	Entrypoint  []string `toml:"entrypoint"`
	Cmd         []string `toml:"cmd"`
	OCIPlatform *string  `toml:"oci_platform"`
}

type devConfig struct {
	Volumes []string `toml:"volumes"`
	Env     []string `toml:"env"`
	Init    []string `toml:"init"`
	Workdir *string  `toml:"workdir"`
	Ports   []string `toml:"ports"`
}

type networkConfig struct {
	AllowHosts []string `toml:"allow_hosts"`
	AllowCIDRs []string `toml:"allow_cidrs"`
}

type healthConfig struct {
	Exec         []string `toml:"exec"`
	Interval     *string  `toml:"interval"`
	Timeout      *string  `toml:"timeout"`
	Retries      *uint32  `toml:"retries"`
	StartupGrace *string  `toml:"startup_grace"`
}

type restartConfig struct {
	Policy     *string `toml:"policy"`
	MaxRetries *uint32 `toml:"max_retries"`
	MaxBackoff *string `toml:"max_backoff"`
}

type authConfig struct {
	SSHAgent *bool `toml:"ssh_agent"`
}

type serviceConfig struct {
	Port     *uint16 `toml:"port"`
	Protocol *string `toml:"protocol"`
	Listen   *uint16 `toml:"listen"`
}

type forkConfig struct {
	Enabled          *bool   `toml:"enabled"`
	PoolSize         *uint32 `toml:"pool_size"`
	CUDAVramLimitMiB *uint64 `toml:"cuda_vram_limit_mib"`
}

// parseSmolfile decodes a Smolfile strictly: unknown keys in any table,
// values of the wrong type and integers out of range are errors, as they
// are for smolvm's serde/toml parser. path only labels the error.
func parseSmolfile(path string, data []byte) (*smolfileSchema, error) {
	var sf smolfileSchema
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("failed to parse %s: %s", path, describeTOMLError(err))
	}
	if err := checkSmolfileSemantics(&sf); err != nil {
		return nil, err
	}
	return &sf, nil
}

// describeTOMLError renders a go-toml error in the shape of the toml
// crate's: "TOML parse error at line L, column C: <what>", with serde's
// "unknown field `x`" for a key the schema does not know.
func describeTOMLError(err error) string {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 && len(strict.Errors[0].Key()) > 0 {
		e := strict.Errors[0]
		row, col := e.Position()
		key := e.Key()
		return fmt.Sprintf("TOML parse error at line %d, column %d: unknown field `%s`", row, col, key[len(key)-1])
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Sprintf("TOML parse error at line %d, column %d: %s", row, col, de.Error())
	}
	return "TOML parse error: " + err.Error()
}

// checkSmolfileSemantics applies the checks smolvm 1.8.1 makes on a parsed
// Smolfile while building the machine: the [fork] rules of
// src/cli/smolfile.rs:108-133@v1.8.1 (with its messages) and the structure of secret
// references enforced by smolvm::secrets::validate_ref (in this
// stand-in's own words).
func checkSmolfileSemantics(sf *smolfileSchema) error {
	if f := sf.Fork; f != nil {
		cuda := sf.CUDA != nil && *sf.CUDA || sf.AutoGraph != nil && *sf.AutoGraph
		switch {
		case f.PoolSize != nil && *f.PoolSize == 0:
			return errors.New("config operation failed: smolfile [fork] pool_size: must be greater than zero")
		case f.CUDAVramLimitMiB != nil && *f.CUDAVramLimitMiB == 0:
			return errors.New("config operation failed: smolfile [fork] cuda_vram_limit_mib: must be greater than zero")
		case f.PoolSize != nil && !cuda:
			return errors.New("config operation failed: smolfile [fork] pool_size: requires cuda = true (or auto_graph = true)")
		case f.CUDAVramLimitMiB != nil && f.PoolSize == nil:
			return errors.New("config operation failed: smolfile [fork] cuda_vram_limit_mib: requires pool_size")
		}
	}
	for name, ref := range sf.Secrets {
		switch {
		case (ref.FromEnv == nil) == (ref.FromFile == nil):
			return fmt.Errorf("config operation failed: smolfile [secrets]: secret '%s': exactly one of from_env or from_file must be set", name)
		case ref.FromFile != nil && !filepath.IsAbs(*ref.FromFile):
			return fmt.Errorf("config operation failed: smolfile [secrets]: secret '%s': from_file must be an absolute path", name)
		}
	}
	return nil
}
