package pipelock

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	dir := filepath.Dir(fakeBin)
	t.Setenv("PATH", dir)
	t.Setenv(Env, "")
	if got, err := Find(); err != nil || got != fakeBin {
		t.Errorf("Find() from PATH = %q, %v; want %q", got, err, fakeBin)
	}
	t.Setenv(Env, fakeBin)
	if got, err := Find(); err != nil || got != fakeBin {
		t.Errorf("Find() with %s a path = %q, %v", Env, got, err)
	}
	t.Setenv(Env, "pipelock")
	if got, err := Find(); err != nil || got != fakeBin {
		t.Errorf("Find() with %s a name = %q, %v", Env, got, err)
	}
	t.Setenv(Env, filepath.Join(dir, "nope"))
	if _, err := Find(); err == nil || !strings.Contains(err.Error(), Env+"=") || !strings.Contains(err.Error(), "set "+Env+" to the path") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Find() with a missing %s = %v", Env, err)
	}
	t.Setenv(Env, "")
	t.Setenv("PATH", t.TempDir())
	if _, err := Find(); err == nil || !strings.Contains(err.Error(), "pipelock is not on PATH") || !strings.Contains(err.Error(), "set "+Env) {
		t.Errorf("Find() without pipelock = %v", err)
	}
}

func TestCheckVersion(t *testing.T) {
	ctx := context.Background()
	if err := CheckVersion(ctx, fakeBin); err != nil {
		t.Errorf("CheckVersion of the 2.3.0 stand-in: %v", err)
	}
	for version, want := range map[string]string{
		"3.5.0":     "is pipelock 3.5.0, but bottle renders its configuration for pipelock 2.3.0 only",
		"2.3.0-rc1": "is pipelock 2.3.0-rc1, but",
		"0.1.0-dev": "0.1.0-dev is what a pipelock built without release flags reports",
		"v2.3.0":    "",
	} {
		t.Setenv("FAKE_PIPELOCK_VERSION", version)
		err := CheckVersion(ctx, fakeBin)
		if want == "" {
			if err != nil {
				t.Errorf("version %s: %v", version, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fakeBin) {
			t.Errorf("version %s: %v; want it to contain %q", version, err, want)
		}
	}
	t.Setenv("FAKE_PIPELOCK_VERSION", "")
	script := filepath.Join(t.TempDir(), "notpipelock")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'git version 2.50.0'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckVersion(ctx, script); err == nil || !strings.Contains(err.Error(), `printed "git version 2.50.0", not pipelock's "pipelock version 2.3.0"`) {
		t.Errorf("CheckVersion of another program: %v", err)
	}
	if err := CheckVersion(ctx, filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "--version") {
		t.Errorf("CheckVersion of a missing binary: %v", err)
	}
}

func TestCheckConfig(t *testing.T) {
	ctx := context.Background()
	if err := CheckConfig(ctx, fakeBin, renderFile(t, rule("api.anthropic.com", false))); err != nil {
		t.Errorf("CheckConfig of a rendered config: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "pipelock.yaml")
	if err := os.WriteFile(bad, []byte("mode: strict\nforward_proxy:\n  sni_verify: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := CheckConfig(ctx, fakeBin, bad)
	want := "pipelock 2.3.0 rejects the rendered pipelock.yaml: parsing config the rendered pipelock.yaml: yaml: unmarshal errors:\n" +
		"  line 3: field sni_verify not found in type config.ForwardProxy"
	if err == nil || err.Error() != want {
		t.Errorf("CheckConfig of a bad config = %v\nwant %s", err, want)
	}
	if err := os.WriteFile(bad, []byte("mode: strict\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = CheckConfig(ctx, fakeBin, bad)
	want = "pipelock 2.3.0 rejects the rendered pipelock.yaml: invalid config: strict mode requires at least one domain in api_allowlist"
	if err == nil || err.Error() != want {
		t.Errorf("CheckConfig of strict without allowlist = %v\nwant %s", err, want)
	}
}
