package docker

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bottle-dev/bottle/backends"
)

// modeIndex is, independently of guest.ModeArg, where each syscall takes the
// mode: the kernel's SYSCALL_DEFINEs (fs/open.c, fs/namei.c).
var modeIndex = map[string]uint{
	"chmod": 1, "fchmod": 1, "creat": 1, "mknod": 1,
	"fchmodat": 2, "fchmodat2": 2, "open": 2, "mknodat": 2,
	"openat": 3,
}

func parseProfile(t *testing.T, b []byte) *seccomp.Seccomp {
	t.Helper()
	var p seccomp.Seccomp
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// rulesFor returns every rule that names name.
func rulesFor(p *seccomp.Seccomp, name string) []*seccomp.Syscall {
	var out []*seccomp.Syscall
	for _, s := range p.Syscalls {
		if s.Name == name || slices.Contains(s.Names, name) {
			out = append(out, s)
		}
	}
	return out
}

func TestAgentSeccompRules(t *testing.T) {
	b, err := AgentSeccomp()
	if err != nil {
		t.Fatal(err)
	}
	got := parseProfile(t, b)
	def := parseProfile(t, defaultSeccomp)

	for name, idx := range modeIndex {
		rules := rulesFor(got, name)
		if len(rules) != 1 {
			t.Errorf("%s: %d rules, want exactly the conditional one", name, len(rules))
			continue
		}
		r := rules[0]
		want := []specs.LinuxSeccompArg{{Index: idx, Value: 0o6000, ValueTwo: 0, Op: specs.OpMaskedEqual}}
		if r.Action != specs.ActAllow || !reflect.DeepEqual(r.Args, want) || r.Includes != nil || r.Excludes != nil {
			t.Errorf("%s: rule %+v, want allow only when (arg%d & 06000) == 0", name, r.LinuxSyscall, idx)
		}
		// The default allows it unconditionally: that is the rule that
		// must have gone.
		if len(rulesFor(def, name)) == 0 {
			t.Errorf("%s is not in the default profile: check the name", name)
		}
	}
	for name, errno := range map[string]uint{"openat2": 38, "io_uring_setup": 1, "io_uring_enter": 1, "io_uring_register": 1} {
		rules := rulesFor(got, name)
		if len(rules) != 1 || rules[0].Action != specs.ActErrno || rules[0].ErrnoRet == nil || *rules[0].ErrnoRet != errno || len(rules[0].Args) != 0 {
			t.Errorf("%s: rules %+v, want one errno %d rule", name, rules, errno)
		}
	}

	// Everything else is the default, rule for rule.
	ours := map[string]bool{"openat2": true, "io_uring_setup": true, "io_uring_enter": true, "io_uring_register": true}
	for n := range modeIndex {
		ours[n] = true
	}
	strip := func(p *seccomp.Seccomp) []*seccomp.Syscall {
		var out []*seccomp.Syscall
		for _, s := range p.Syscalls {
			c := *s
			c.Names = slices.DeleteFunc(slices.Clone(s.Names), func(n string) bool { return ours[n] })
			if len(c.Names) > 0 {
				out = append(out, &c)
			}
		}
		return out
	}
	if g, d := strip(got), strip(def); !reflect.DeepEqual(g, d) {
		t.Errorf("the profile changed other rules of the default (%d rules, default %d)", len(g), len(d))
	}
	if got.DefaultAction != specs.ActErrno || !reflect.DeepEqual(got.ArchMap, def.ArchMap) {
		t.Errorf("default action %s, arch map %v: want the default's", got.DefaultAction, got.ArchMap)
	}
	for _, a := range []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64} {
		if !slices.ContainsFunc(got.ArchMap, func(m seccomp.Architecture) bool { return m.Arch == a }) {
			t.Errorf("the profile does not cover %s", a)
		}
	}
}

// TestAgentSeccompFile: the profile is written into the state directory,
// readable by its owner only, and is what AgentSeccomp returns.
func TestAgentSeccompFile(t *testing.T) {
	st, err := backends.Claim(filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Release()
	path, err := writeAgentSeccomp(st)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != st.Dir {
		t.Errorf("profile at %s, want it in %s", path, st.Dir)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := AgentSeccomp()
	if string(b) != string(want) {
		t.Errorf("the file is not the profile")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
}

// BenchmarkAgentSeccomp: what making the profile adds to each launch.
func BenchmarkAgentSeccomp(b *testing.B) {
	for b.Loop() {
		if _, err := AgentSeccomp(); err != nil {
			b.Fatal(err)
		}
	}
}
