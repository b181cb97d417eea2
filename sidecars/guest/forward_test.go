package guest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseForward(t *testing.T) {
	for _, spec := range []string{
		"127.0.0.1:3128=/run/bottle/egress.sock",
		"127.0.0.2:9418=/run/bottle/git gate=1.sock",
		"[::1]:8080=/s",
	} {
		f, err := ParseForward(spec)
		if err != nil {
			t.Errorf("ParseForward(%q): %v", spec, err)
			continue
		}
		if got := f.String(); got != spec {
			t.Errorf("ParseForward(%q).String() = %q", spec, got)
		}
		var g Forward
		if err := g.UnmarshalText([]byte(spec)); err != nil || g != f {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", spec, g, err, f)
		}
	}
	f, _ := ParseForward("127.0.0.1:3128=/run/bottle/git gate=1.sock")
	if f.Socket != "/run/bottle/git gate=1.sock" || f.Listen.Port() != 3128 {
		t.Errorf("the first = splits LISTEN from SOCKET: got %#v", f)
	}
}

func TestParseForwardErrors(t *testing.T) {
	long := "/" + strings.Repeat("x", 107)
	for _, tc := range []struct{ spec, want string }{
		{"", "want LISTEN=SOCKET"},
		{"127.0.0.1:3128", "want LISTEN=SOCKET"},
		{"localhost:3128=/s", "not IP:PORT"},
		{"127.0.0.1=/s", "not IP:PORT"},
		{":3128=/s", "not IP:PORT"},
		{"0.0.0.0:3128=/s", "not loopback"},
		{"10.0.0.1:3128=/s", "not loopback"},
		{"[::]:3128=/s", "not loopback"},
		{"[::ffff:127.0.0.1]:3128=/s", "IPv4-mapped"},
		{"[::1%lo]:3128=/s", "zone"},
		{"127.0.0.1:0=/s", "non-zero port"},
		{"127.0.0.1:99999=/s", "not IP:PORT"},
		{"127.0.0.1:3128=", "socket path is empty"},
		{"127.0.0.1:3128=run/egress.sock", "not absolute"},
		{"127.0.0.1:3128=" + long, "at most 107"},
	} {
		_, err := ParseForward(tc.spec)
		if err == nil {
			t.Errorf("ParseForward(%q) succeeded, want an error containing %q", tc.spec, tc.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.spec) {
			t.Errorf("ParseForward(%q) error %q: want one line naming the spec and containing %q", tc.spec, msg, tc.want)
		}
	}
}

func TestValidateForwardsDuplicate(t *testing.T) {
	a, _ := ParseForward("127.0.0.1:3128=/a.sock")
	b, _ := ParseForward("127.0.0.1:3128=/b.sock")
	c, _ := ParseForward("127.0.0.1:3129=/a.sock")
	if err := validateForwards([]Forward{a, c}); err != nil {
		t.Errorf("two listeners on one socket: %v", err)
	}
	err := validateForwards([]Forward{a, c, b})
	if err == nil || !strings.Contains(err.Error(), "used by another forward") {
		t.Errorf("duplicate listen address: got %v", err)
	}
}

func TestCheckSocket(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := CheckSocket(live); err != nil {
		t.Errorf("live socket: %v", err)
	}

	stale := filepath.Join(dir, "stale.sock")
	sln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	sln.SetUnlinkOnClose(false)
	sln.Close()

	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.sock"), "sidecar socket missing"},
		{regular, "is a regular file, not a unix socket"},
		{dir, "is a directory, not a unix socket"},
		{stale, "nothing accepts connections"},
	} {
		err := CheckSocket(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("CheckSocket(%q) = %v; want an error naming the path and containing %q", tc.path, err, tc.want)
		}
	}
}
