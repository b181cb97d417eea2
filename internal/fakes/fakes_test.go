package fakes

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestLogLine(t *testing.T) {
	got := LogLine("smolvm", []string{"machine", "create", "--name", "bottle-x", "-e", "A=b c", "", "it's", "--label", "dev.bottle.slug=x"})
	want := `smolvm machine create --name bottle-x -e 'A=b c' '' 'it'\''s' --label dev.bottle.slug=x`
	if got != want {
		t.Errorf("LogLine = %s\nwant      %s", got, want)
	}
}

// TestLogLineShellRoundTrip feeds LogLine's output to a real shell and
// checks that every argument comes back unchanged.
func TestLogLineShellRoundTrip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH: ", err)
	}
	args := []string{"a b", "", "x'y", "new\nline", `back\slash`, "$HOME", "*", "-c"}
	line := LogLine("printf '%s\\0'", args)
	out, err := exec.Command(sh, "-c", line).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", line, err)
	}
	var got []string
	start := 0
	for i, c := range out {
		if c == 0 {
			got = append(got, string(out[start:i]))
			start = i + 1
		}
	}
	if len(got) != len(args) {
		t.Fatalf("shell read %q, want %q", got, args)
	}
	for i := range args {
		if got[i] != args[i] {
			t.Errorf("argument %d = %q, want %q", i, got[i], args[i])
		}
	}
}

func TestAppendLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "argv.log")
	if err := AppendLog(path, "docker", []string{"version"}); err != nil {
		t.Fatal(err)
	}
	if err := AppendLog(path, "smolvm", []string{"machine", "ls", "--json"}); err != nil {
		t.Fatal(err)
	}
	if err := AppendLog("", "x", nil); err != nil {
		t.Errorf("AppendLog with no path: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "docker version\nsmolvm machine ls --json\n"; string(b) != want {
		t.Errorf("log = %q, want %q", b, want)
	}
}
