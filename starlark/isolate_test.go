package starlark

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/profiles"
)

// childEnv makes the test binary act as bottle's hidden evaluation mode
// ("serve"), or as a child that crashes for another reason ("crash").
const childEnv = "BOTTLE_STARLARK_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "serve":
		os.Exit(ServeIsolated(os.Stdin, os.Stdout, profiles.FS))
	case "hang":
		time.Sleep(time.Hour)
	case "crash":
		fmt.Fprint(os.Stderr, "panic: something broke\n\ngoroutine 1 [running]:\nmain.main()\n")
		os.Exit(2)
	case "allocate":
		// What the kernel lets the child have: one allocation of
		// AddressLimit bytes must fail.
		if err := limitChild(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		b := make([]byte, AddressLimit)
		b[len(b)-1] = 1
		fmt.Println("allocated", len(b))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testIsolation runs children of the test binary in mode; peaks records
// the peak memory of each.
type testIsolation struct {
	*Isolation
	mu    sync.Mutex
	peaks []int64
}

func newTestIsolation(t testing.TB, mode string) *testIsolation {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ti := &testIsolation{}
	ti.Isolation = &Isolation{
		Command: func() (*exec.Cmd, error) {
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), childEnv+"="+mode)
			return cmd, nil
		},
		Exited: func(ps *os.ProcessState) {
			n, ok := PeakMemory(ps)
			if !ok {
				n = -1
			}
			ti.mu.Lock()
			ti.peaks = append(ti.peaks, n)
			ti.mu.Unlock()
		},
	}
	return ti
}

// dirProfile writes files under a new directory and opens its
// bottle.star, in this process and through iso.
func dirProfile(t *testing.T, iso *Isolation, files map[string]string) (inProcess, isolated *Source, errIn, errIso error) {
	dir := t.TempDir()
	for name, body := range files {
		writeTestFile(t, filepath.Join(dir, name), body)
	}
	inProcess, errIn = Open(filepath.Join(dir, "bottle.star"))
	isolated, errIso = iso.Open(filepath.Join(dir, "bottle.star"))
	return inProcess, isolated, errIn, errIso
}

// TestIsolatedSameAsInProcess evaluates profiles in this process and in
// the child and compares everything a caller sees: the source that Open
// returns, the plan, print() output and errors.
func TestIsolatedSameAsInProcess(t *testing.T) {
	iso := newTestIsolation(t, "serve")
	team := map[string]string{
		"bottle.root": `print("root \x1b[2J", "é"[:1])
repo(name = "lib", path = "lib")
`,
		"bottle.star": `load("//local.star", "local")
load("@lib//x.star", "shared")
docker(image = "node:22", cpus = 1.5, memory = "2GiB")
print("hello", "é"[:1], "\x1b[8m")
local()
shared()
env("ODD", "é"[:1] + "\t")
mount("src", "/workspace/src", readonly = True)
secret("TOKEN", from_file = "~/token")
sidecar("supervise")
`,
		"local.star": `def local():
    allow("api.example.com", ports = [443, 8443])
    print("from local", [1, 2])
`,
		"lib/x.star": `def shared():
    allow("*.example.org")
`,
	}
	cases := map[string]map[string]string{
		"team":         team,
		"syntax error": {"bottle.star": "docker(image = \"node:22\"\n"},
		"nested failure": {
			"bottle.star": "load(\"//lib.star\", \"f\")\ndocker(image = \"node:22\")\nf()\n",
			"lib.star":    "def g():\n    fail(\"bad \\x1b\", \"é\"[:1])\n\ndef f():\n    g()\n",
		},
		"missing load": {"bottle.star": "load(\"//nope.star\", \"f\")\n"},
		"no backend":   {"bottle.star": "allow(\"api.example.com\")\n"},
		"bad root":     {"bottle.root": "repo(name = 1)\n", "bottle.star": "docker(image = \"node:22\")\n"},
		"steps": {"bottle.star": `def spin():
    n = 0
    for i in range(1 << 40):
        n += i
docker(image = "node:22")
spin()
`},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			a, b, errA, errB := dirProfile(t, iso.Isolation, files)
			if fmt.Sprint(errA) != fmt.Sprint(errB) {
				t.Fatalf("Open: %v in this process, %v in the child", errA, errB)
			}
			if errA != nil {
				if !reflect.DeepEqual(AsError(errA), AsError(errB)) {
					t.Errorf("Open: %#v in this process, %#v in the child", AsError(errA), AsError(errB))
				}
				return
			}
			sameSource(t, a, b)
			compareLoads(t, iso.Isolation, a, b, "")
		})
	}
	t.Run("shipped", func(t *testing.T) {
		src := Embedded(profiles.FS, profiles.Default, "/w")
		compareLoads(t, iso.Isolation, src, src, "")
	})
	t.Run("example", func(t *testing.T) {
		a, errA := Open("../profiles/examples/team/app/bottle.star")
		b, errB := iso.Open("../profiles/examples/team/app/bottle.star")
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		sameSource(t, a, b)
		compareLoads(t, iso.Isolation, a, b, "")
	})
	t.Run("fetched repositories", func(t *testing.T) {
		a, cache := twoRepoProfile(t, 10)
		b, err := iso.Open(a.Path)
		if err != nil {
			t.Fatal(err)
		}
		sameSource(t, a, b)
		compareLoads(t, iso.Isolation, a, b, cache)
	})
}

func sameSource(t *testing.T, a, b *Source) {
	t.Helper()
	a2, b2 := *a, *b
	a2.FS, b2.FS = nil, nil
	if !reflect.DeepEqual(a2, b2) {
		t.Errorf("Open returned %+v in this process, %+v in the child", a2, b2)
	}
}

// compareLoads loads a in this process and b in the child.
func compareLoads(t *testing.T, iso *Isolation, a, b *Source, cache string) {
	t.Helper()
	var outA, outB bytes.Buffer
	pa, errA := Load(context.Background(), a, Options{Stderr: &outA, Home: "/home/u", RepoCache: cache}, testEnv)
	pb, errB := Load(context.Background(), b, Options{Stderr: &outB, Home: "/home/u", RepoCache: cache, Isolation: iso}, testEnv)
	if (errA == nil) != (errB == nil) {
		t.Fatalf("error %v in this process, %v in the child", errA, errB)
	}
	if errA != nil {
		if ea, eb := AsError(errA), AsError(errB); !reflect.DeepEqual(ea, eb) {
			t.Errorf("error\n%#v in this process,\n%#v in the child", ea, eb)
		}
	} else if !reflect.DeepEqual(pa, pb) {
		t.Errorf("plan\n%+v in this process,\n%+v in the child", pa, pb)
	}
	if outA.String() != outB.String() {
		t.Errorf("print() wrote %q in this process, %q in the child", outA.String(), outB.String())
	}
}

// bombs are profiles that ask for more memory than MemoryLimit, each in
// its own way. pos is the position the error must name: line:col where
// the evaluating thread stopped itself, or only the file where the child
// had to stop (one allocation too large for the address space limit, or
// a builtin that grows a value without returning to the interpreter);
// "*" takes either (the last step allocates, and the evaluation may end
// before anything looks at the heap again).
var bombs = []struct {
	name, profile, pos string
}{
	{"repeat list", "x = [1] * 1000000000\ndocker(image = \"node:22\")\n", "//bottle.star"},
	{"repeat string", "x = \"x\" * 1000000000\ndocker(image = \"node:22\")\n", "//bottle.star"},
	{"list of range", "x = list(range(1000000000))\ndocker(image = \"node:22\")\n", "//bottle.star"},
	{"replace", "x = (\"x\" * 1000000).replace(\"x\", \"y\" * 1000)\ndocker(image = \"node:22\")\n", "//bottle.star"},
	{"join", "x = \",\".join([\"x\" * 1000000] * 1000)\ndocker(image = \"node:22\")\n", "//bottle.star"},
	{"last step", "docker(image = \"node:22\")\nx = \"x\" * 400000000\n", "*"},
	{"doubling", `def grow():
    x = "x"
    for i in range(40):
        x = x + x
    return x
docker(image = "node:22")
grow()
`, "//bottle.star:4:15"},
	{"extend", `def grow():
    x = [1, 2, 3]
    for i in range(40):
        x.extend(x)
docker(image = "node:22")
grow()
`, "//bottle.star:4:17"},
}

// TestIsolatedMemoryLimit checks that each bomb ends in a profile error
// naming the profile (and the position, where the thread stopped itself),
// never in a crash report, and that the child's peak memory stayed under
// AddressLimit.
func TestIsolatedMemoryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates up to 1 GiB per case")
	}
	for _, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			iso := newTestIsolation(t, "serve")
			dir := t.TempDir()
			writeTestFile(t, filepath.Join(dir, "bottle.star"), b.profile)
			src, err := iso.Open(filepath.Join(dir, "bottle.star"))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = Load(context.Background(), src, Options{Isolation: iso.Isolation}, testEnv)
			checkMemoryError(t, err, b.pos)
			checkPeak(t, iso)
			t.Logf("%s: %v in %v, peak %d MiB", b.name, err, time.Since(start).Round(time.Millisecond), iso.peaks[0]>>20)
		})
	}
}

func checkMemoryError(t *testing.T, err error, pos string) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T), want a profile error", err, err)
	}
	if pos == "*" && strings.HasPrefix(pe.Pos, "//bottle.star") {
		pos = pe.Pos
	}
	if pe.Pos != pos {
		t.Errorf("error at %q, want %q: %v", pe.Pos, pos, pe)
	}
	want := memoryMsg
	if strings.Count(pos, ":") == 2 {
		want = "Starlark computation cancelled: " + memoryError{}.Error()
	}
	if pe.Msg != want {
		t.Errorf("message %q, want %q", pe.Msg, want)
	}
	if !strings.Contains(pe.Msg, fmt.Sprintf("%d MiB", MemoryLimit>>20)) {
		t.Errorf("message %q does not name the limit", pe.Msg)
	}
	if regexp.MustCompile(`goroutine|fatal error|runtime\.`).MatchString(pe.Error() + pe.Backtrace) {
		t.Errorf("the error shows the Go runtime: %s\n%s", pe, pe.Backtrace)
	}
}

func checkPeak(t *testing.T, iso *testIsolation) {
	t.Helper()
	iso.mu.Lock()
	defer iso.mu.Unlock()
	if len(iso.peaks) != 1 {
		t.Fatalf("%d children exited, want 1", len(iso.peaks))
	}
	const slack = 64 << 20
	if p := iso.peaks[0]; p < 0 {
		t.Logf("this system does not report peak memory")
	} else if p > AddressLimit+slack {
		t.Errorf("the child's peak memory was %d MiB, over the %d MiB limit", p>>20, AddressLimit>>20)
	}
}

// TestIsolatedRootMemoryLimit checks that bottle.root, which is Starlark
// too, is bounded the same way.
func TestIsolatedRootMemoryLimit(t *testing.T) {
	iso := newTestIsolation(t, "serve")
	dir := t.TempDir()
	// Only the child may evaluate this bottle.root.
	writeTestFile(t, filepath.Join(dir, RootMarker), "x = [1] * 1000000000\n")
	writeTestFile(t, filepath.Join(dir, "bottle.star"), "docker(image = \"node:22\")\n")
	_, err := iso.Open(filepath.Join(dir, "bottle.star"))
	checkMemoryError(t, err, rootLabel)
	checkPeak(t, iso)
}

// TestIsolatedGarbage checks that a profile that allocates much more
// than MemoryLimit in all, but little at a time, is not stopped.
func TestIsolatedGarbage(t *testing.T) {
	iso := newTestIsolation(t, "serve")
	_, src, _, err := dirProfile(t, iso.Isolation, map[string]string{"bottle.star": `def churn():
    n = 0
    for i in range(200):
        s = "x" * 2000000 + str(i)
        n += len(s)
    return n
docker(image = "node:22")
print(churn())
`})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Load(context.Background(), src, Options{Stderr: &out, Isolation: iso.Isolation}, testEnv); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "//bottle.star:8:6: 400000490\n" {
		t.Errorf("print() wrote %q", got)
	}
}

// TestIsolatedCancel checks that cancelling the context stops the child
// with the same error as an evaluation in this process.
func TestIsolatedCancel(t *testing.T) {
	iso := newTestIsolation(t, "serve")
	a, b, _, err := dirProfile(t, iso.Isolation, map[string]string{"bottle.star": `def spin():
    n = 0
    for i in range(1 << 40):
        n += i
docker(image = "node:22")
spin()
`})
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 2)
	for i, opts := range []Options{{MaxSteps: 1 << 62}, {MaxSteps: 1 << 62, Isolation: iso.Isolation}} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		_, errs[i] = Eval(ctx, []*Source{a, b}[i], opts)
		cancel()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("cancelled after %v", d)
		}
	}
	// Where the loop was when cancelled differs from run to run.
	inLoop := regexp.MustCompile(`^//bottle.star:[34]:[0-9]+$`)
	for i, err := range errs {
		e := AsError(err)
		if e.Msg != "Starlark computation cancelled: evaluation cancelled" || !inLoop.MatchString(e.Pos) ||
			!strings.HasPrefix(e.Backtrace, "Traceback (most recent call last):\n  //bottle.star:6:5: in <toplevel>\n  "+e.Pos+": in spin") {
			t.Errorf("error %#v %s", e, []string{"in this process", "in the child"}[i])
		}
	}
}

// TestIsolatedCancelHung checks that a child that does not answer its
// cancellation is killed.
func TestIsolatedCancelHung(t *testing.T) {
	iso := newTestIsolation(t, "hang")
	src := Embedded(profiles.FS, profiles.Default, "/w")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Eval(ctx, src, Options{Isolation: iso.Isolation})
	if d := time.Since(start); d > killDelay+3*time.Second {
		t.Errorf("returned after %v", d)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Error() != "//claude.star: Starlark computation cancelled: evaluation cancelled" {
		t.Errorf("error %#v", err)
	}
}

// TestIsolatedCrash checks that a child that dies for another reason is
// one line naming the profile, with the first line of its report and how
// to see the rest, and that Debug gets the whole report.
func TestIsolatedCrash(t *testing.T) {
	iso := newTestIsolation(t, "crash")
	var debug bytes.Buffer
	iso.Debug = &debug
	src := Embedded(profiles.FS, profiles.Default, "/w")
	_, err := Eval(context.Background(), src, Options{Isolation: iso.Isolation})
	var pe *Error
	if !errors.As(err, &pe) || pe.Pos != "//claude.star" ||
		!strings.Contains(pe.Msg, "panic: something broke") || !strings.Contains(pe.Msg, DebugEnv+"=1") ||
		strings.Contains(pe.Msg, "goroutine") || strings.Contains(pe.Msg, "\n") {
		t.Errorf("error %#v", err)
	}
	if !strings.Contains(debug.String(), "goroutine 1 [running]") || !strings.Contains(debug.String(), "peak memory") {
		t.Errorf("Debug got %q", debug.String())
	}
}

// TestIsolatedNeedsOpen checks that a source the child cannot open again
// is refused rather than evaluated in this process.
func TestIsolatedNeedsOpen(t *testing.T) {
	iso := newTestIsolation(t, "serve")
	src := mapSource(map[string]string{"bottle.star": "docker(image = \"node:22\")\n"})
	if _, err := Eval(context.Background(), src, Options{Isolation: iso.Isolation}); err == nil {
		t.Errorf("a source built by hand was evaluated")
	}
}

// TestIsolatedLongPrint checks that print() output crosses in pieces cut
// only where decoding the whole puts a boundary, so escaping each piece
// is escaping the whole.
func TestIsolatedLongPrint(t *testing.T) {
	iso := newTestIsolation(t, "serve")
	a, b, _, err := dirProfile(t, iso.Isolation, map[string]string{"bottle.star": `docker(image = "node:22")
print("a" + "é€😀" * 100000 + "é"[:1] + ("😀"[:1] + "😀"[1:] * 2) * 50000)
`})
	if err != nil {
		t.Fatal(err)
	}
	var inProcess bytes.Buffer
	if _, err := Eval(context.Background(), a, Options{Stderr: &inProcess}); err != nil {
		t.Fatal(err)
	}
	w := &writes{}
	if _, err := Eval(context.Background(), b, Options{Stderr: w, Isolation: iso.Isolation}); err != nil {
		t.Fatal(err)
	}
	if len(w.pieces) < 2 {
		t.Fatalf("%d pieces", len(w.pieces))
	}
	if got := strings.Join(w.pieces, ""); got != inProcess.String() {
		t.Errorf("the child printed %d bytes, this process %d", len(got), inProcess.Len())
	}
	var whole, pieces []rune
	for _, r := range inProcess.String() {
		whole = append(whole, r)
	}
	for i, p := range w.pieces {
		if len(p) > printChunk {
			t.Errorf("piece %d has %d bytes", i, len(p))
		}
		for _, r := range p {
			pieces = append(pieces, r)
		}
	}
	if !slices.Equal(whole, pieces) {
		t.Errorf("the pieces decode differently from the whole")
	}
}

type writes struct{ pieces []string }

func (w *writes) Write(p []byte) (int, error) {
	w.pieces = append(w.pieces, string(p))
	return len(p), nil
}
