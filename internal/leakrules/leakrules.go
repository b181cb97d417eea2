// Package leakrules builds the secret detector that bottle's sidecars own:
// gitleaks' built-in default rules, and nothing the scanned content or the
// machine it runs on controls. The git gate scans pushes with it, and the
// egress proxy the requests it decrypts, so both refuse the same secrets.
package leakrules

import (
	"fmt"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"github.com/spf13/viper"
	"github.com/zricethezav/gitleaks/v8/config"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
)

// Detector returns the process's gitleaks detector, built on the first
// call; every later call returns the same detector and the same error.
// It is built from gitleaks' embedded default config and nothing else:
//   - its own viper instance reads the embedded config, so no
//     .gitleaks.toml, GITLEAKS_CONFIG or global viper state is involved;
//   - allowlist entries that skip text by its path alone are removed (see
//     withoutPathAllowlists): a secret in "x.png", "node_modules/…" or
//     "go.sum" is still a secret; allowlists of known false-positive
//     values stay;
//   - IgnoreGitleaksAllow makes it report findings on lines that carry an
//     inline "gitleaks:allow" comment;
//   - MaxDecodeDepth is 5, gitleaks' CLI default: it also looks inside
//     base64, hex and percent encodings;
//   - no .gitleaksignore or baseline is ever loaded;
//   - gitleaks' package-level logger is silenced: at trace level it logs
//     secret values.
//
// The detector is shared: callers use only Detect and DetectContext, which
// are safe for concurrent use, and change none of its fields. In gitleaks
// v8.30.1, DetectContext (detect/detect.go:276-367) reads the detector's
// Config, prefilter and MaxDecodeDepth and writes only TotalBytes, an
// atomic.Uint64 (detect.go:278, :280); its decoder is made per call
// (detect.go:311); the aho-corasick prefilter's MatchString and the
// compiled regexps only read; the allowlists were compiled by Validate
// when the config was translated, and are only read by their *Allowed
// methods (config/allowlist.go:117-179); findings are returned, never
// stored on the detector (AddFinding, detect.go:711, is for DetectSource
// only). The one append onto shared data, a finding's Tags
// (detect.go:501), copies: the config's tag slices have no spare
// capacity. The race detector checks this in the package's tests.
//
// The error, which the embedded config makes unlikely, says the default
// config could not be read or translated.
func Detector() (*detect.Detector, error) { return shared() }

var shared = sync.OnceValues(build)

func build() (*detect.Detector, error) {
	logging.Logger = zerolog.Nop()
	v := viper.New()
	v.SetConfigType("toml")
	if err := v.ReadConfig(strings.NewReader(config.DefaultConfig)); err != nil {
		return nil, fmt.Errorf("read gitleaks default config: %w", err)
	}
	var vc config.ViperConfig
	if err := v.Unmarshal(&vc); err != nil {
		return nil, fmt.Errorf("read gitleaks default config: %w", err)
	}
	cfg, err := vc.Translate()
	if err != nil {
		return nil, fmt.Errorf("load gitleaks default config: %w", err)
	}
	cfg.Path = ""
	cfg.Allowlists = withoutPathAllowlists(cfg.Allowlists)
	for id, r := range cfg.Rules {
		r.Allowlists = withoutPathAllowlists(r.Allowlists)
		cfg.Rules[id] = r
	}
	det := detect.NewDetector(cfg)
	det.IgnoreGitleaksAllow = true
	det.MaxDecodeDepth = 5
	return det, nil
}

// withoutPathAllowlists drops what the scanned content chooses freely
// from the allowlists: the regexes of every allowlist that tests the whole
// line (generic-api-key's "--mount=type=secret," would otherwise work as
// an inline allow comment), and the path condition of every allowlist
// that matches on any one condition ("OR"); then the allowlists left
// empty. Allowlists that need all conditions ("AND") only get narrower
// with a path, so their paths stay.
func withoutPathAllowlists(in []*config.Allowlist) []*config.Allowlist {
	var out []*config.Allowlist
	for _, a := range in {
		if a.RegexTarget == "line" && len(a.Regexes) > 0 {
			// A fresh value: a copy would carry the original's
			// "validated" mark, and Validate would pass it empty.
			na := &config.Allowlist{
				Description:    a.Description,
				MatchCondition: a.MatchCondition,
				Commits:        a.Commits,
				Paths:          a.Paths,
				StopWords:      a.StopWords,
			}
			if na.MatchCondition == config.AllowlistMatchAnd {
				na.Paths = nil // the path alone would now allow everything in it
			}
			if na.Validate() != nil {
				continue
			}
			a = na
		}
		if a.MatchCondition == config.AllowlistMatchAnd || len(a.Paths) == 0 {
			out = append(out, a)
			continue
		}
		na := &config.Allowlist{
			Description:    a.Description,
			MatchCondition: a.MatchCondition,
			Commits:        a.Commits,
			RegexTarget:    a.RegexTarget,
			Regexes:        a.Regexes,
			StopWords:      a.StopWords,
		}
		if na.Validate() == nil { // an error means nothing but paths was left
			out = append(out, na)
		}
	}
	return out
}
