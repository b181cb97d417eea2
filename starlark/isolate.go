package starlark

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/starlark/builtins"
)

// Memory limits of an isolated evaluation. The step limit bounds time but
// not memory: one step ([1] * 1000000000, x + x, "".join, str.replace)
// can ask the Go runtime for gigabytes, inside Go code that never looks
// at the thread's cancellation, and a Go program that cannot get memory
// dies with a fatal error, not an error it can report.
const (
	// MemoryLimit is the most memory a profile's evaluation may use for
	// its values. Past it, the evaluating thread is cancelled, which ends
	// the evaluation with a profile error at the step that was running.
	MemoryLimit = 256 << 20
	// hardMemoryLimit is where the child stops itself even though the
	// thread has not seen the cancellation: a builtin that grows one value
	// never returns to the interpreter to see it. It leaves room for one
	// step that doubles a value just under MemoryLimit (x + x), with its
	// garbage, to finish and be reported with its position.
	hardMemoryLimit = 3 * MemoryLimit
	// AddressLimit is how far the child's address space may grow past
	// what the Go runtime reserved at its start (RLIMIT_AS, on Linux):
	// heap, runtime structures and thread stacks together. It is what
	// stops a single allocation too large for the watchdog to see in
	// time; the Go runtime then dies with "out of memory" and bottle
	// reports that the profile needed more than MemoryLimit.
	AddressLimit = 1 << 30
	// maxResult bounds the message that carries what a profile declared
	// (or its error) back to bottle; a real profile's is a few KiB.
	maxResult = 16 << 20
	// printChunk bounds one piece of print() output on the wire.
	printChunk = 64 << 10
	// childProcs is GOMAXPROCS in the child: evaluation runs on one
	// thread; each more thread costs a stack inside AddressLimit.
	childProcs = "2"
	// killDelay is how long a cancelled child may take to report its
	// cancellation before it is killed.
	killDelay = 2 * time.Second
)

// DebugEnv names the environment variable that, set to 1, makes bottle
// show what the evaluating child process wrote to its standard error
// (a Go runtime crash report) and its exit status and peak memory.
const DebugEnv = "BOTTLE_EVAL_DEBUG"

// Isolation evaluates profiles in a child process, bottle's own
// executable in its hidden evaluation mode (which calls ServeIsolated),
// so that a profile that asks for too much memory ends in a profile error
// instead of taking bottle, or the host, down with it. The child runs
// under MemoryLimit, enforced by a watchdog that cancels the evaluation,
// and under AddressLimit, enforced by the kernel (Linux only: elsewhere the
// watchdog alone stops a profile, and a single allocation larger than
// the machine's memory is refused only by the operating system).
//
// The child reads the profile, the files it loads and bottle.root itself,
// and sends back what the profile declared, its print() output and its
// errors, exactly as an evaluation in bottle's own process makes them.
type Isolation struct {
	// Command returns the child command, unstarted, with no standard
	// input, output or error set.
	Command func() (*exec.Cmd, error)
	// Debug, when set, receives the child's standard error and a line
	// with its exit status and peak memory; otherwise they are discarded.
	Debug io.Writer
	// Exited, when set, is called with the state of each child that exited.
	Exited func(*os.ProcessState)
}

// Open is Open with bottle.root evaluated in the child process.
func (iso *Isolation) Open(file string) (*Source, error) {
	return open(file, func(fsys fs.FS, root string) ([]plan.Repo, error) {
		// An absent or empty bottle.root declares nothing: no need for a child.
		if fi, err := fs.Stat(fsys, RootMarker); errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Mode().IsRegular() && fi.Size() == 0) {
			return nil, nil
		}
		resp, err := iso.run(context.Background(), &request{Op: opRoot, Root: root}, rootLabel, os.Stderr)
		if err != nil {
			return nil, err
		}
		if resp.Err != nil {
			return nil, resp.Err
		}
		return resp.Repos, nil
	})
}

// eval is Eval in the child process.
func (iso *Isolation) eval(ctx context.Context, src *Source, opts Options) (*builtins.State, error) {
	if src.origin == originUnknown {
		return nil, fmt.Errorf("%s: cannot evaluate in a child process a profile that was not opened with Open or Embedded", src.Label)
	}
	req := &request{Op: opEval, Label: src.Label, Path: src.Path, Root: src.Root, Dir: src.Dir,
		Embedded: src.origin == originEmbedded, Repos: src.Repos,
		Home: opts.Home, MaxSteps: opts.MaxSteps, RepoCache: opts.RepoCache}
	resp, err := iso.run(ctx, req, src.Label, opts.Stderr)
	if err != nil {
		return nil, err
	}
	if resp.Err != nil {
		return nil, resp.Err
	}
	if resp.State == nil {
		return nil, errWire
	}
	return resp.State, nil
}

// Operations of the child.
const (
	opRoot = "root" // evaluate bottle.root in Root
	opEval = "eval" // evaluate the profile
)

// request is what bottle asks of the child.
type request struct {
	Op string
	// The profile's Source, less its file system: Root is reopened, or
	// the executable's embedded profiles used.
	Label, Path, Root, Dir string
	Embedded               bool
	Repos                  []plan.Repo
	// The Options.
	Home, RepoCache string
	MaxSteps        uint64
}

// label is the file req evaluates, for errors without a position.
func (req *request) label() string {
	if req.Op == opRoot {
		return rootLabel
	}
	return req.Label
}

// response is what the child found: Repos (opRoot) or State (opEval),
// or Err.
type response struct {
	Repos []plan.Repo
	State *builtins.State
	Err   *Error
}

// Frames on the child's standard output: a kind byte, a big-endian
// 32-bit length and that many bytes.
const (
	framePrint    = 'p' // a piece of print() output
	frameResponse = 'r' // the response, last
	frameMemory   = 'm' // the watchdog stopped the child: it needed more than MemoryLimit
)

// run starts the child, sends it req and returns its response. print()
// output goes to prints as it comes. A child that ends without a
// response is an *Error naming label: the profile needed too much
// memory, or the child crashed.
func (iso *Isolation) run(ctx context.Context, req *request, label string, prints io.Writer) (*response, error) {
	if prints == nil {
		prints = io.Discard
	}
	cmd, err := iso.Command()
	if err != nil {
		return nil, err
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env[:len(env):len(env)], "GOMAXPROCS="+childProcs)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The child's standard error holds Go runtime crash reports, which
	// are for debugging, not for the user's terminal.
	crash := &headBuffer{max: 64 << 10}
	cmd.Stderr = crash
	if iso.Debug != nil {
		cmd.Stderr = io.MultiWriter(crash, iso.Debug)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the process that evaluates %s: %w", label, err)
	}
	exited := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		// Closing its input cancels the child's evaluation, which it
		// reports as an error at the step it stopped at.
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(killDelay):
			cmd.Process.Kill()
		}
	})
	// A child that dies before reading the request is reported below.
	_ = writeFrame(stdin, 0, marshalWire(req))
	resp, memory, readErr := readFrames(bufio.NewReader(stdout), prints)
	if readErr != nil {
		// It sent something else than frames, or died: it must not block
		// on a full pipe while it is waited for.
		cmd.Process.Kill()
	}
	stdin.Close()
	waitErr := cmd.Wait()
	close(exited)
	stop()
	if iso.Debug != nil {
		fmt.Fprintf(iso.Debug, "bottle: the process that evaluated %s ended: %v, peak memory %s\n", label, cmd.ProcessState, peak(cmd.ProcessState))
	}
	if iso.Exited != nil {
		iso.Exited(cmd.ProcessState)
	}
	switch {
	case resp != nil && readErr == nil:
		return resp, nil
	case memory:
		return nil, &Error{Pos: label, Msg: memoryMsg}
	case ctx.Err() != nil:
		// Killed after it did not report its cancellation in time.
		return nil, &Error{Pos: label, Msg: "Starlark computation cancelled: evaluation cancelled"}
	case outOfMemory(cmd.ProcessState, crash.String()):
		return nil, &Error{Pos: label, Msg: memoryMsg}
	}
	why := fmt.Sprint(waitErr)
	if waitErr == nil && readErr != nil {
		why = readErr.Error()
	}
	if line := firstLine(crash.String()); line != "" {
		why += ": " + line
	}
	return nil, &Error{Pos: label, Msg: fmt.Sprintf("the process evaluating the profile failed (%s); set %s=1 to see its output", why, DebugEnv)}
}

// memoryMsg says that the profile needed more than MemoryLimit.
var memoryMsg = fmt.Sprintf("evaluation stopped: the profile needs more than %d MiB of memory, the most a profile may use", MemoryLimit>>20)

// outOfMemory reports whether a child that ended without a response ran
// out of memory: the Go runtime's fatal error when the kernel refused it
// memory (AddressLimit), a thread it could not start for the same reason,
// a fault inside the runtime itself, or the kernel's out-of-memory
// killer. The runtime does not check every allocation of its own: Go
// 1.26's collector dereferences a failed one (newSpanSPMC), which shows as
// a SIGSEGV in the runtime rather than as a panic of Go code.
func outOfMemory(ps *os.ProcessState, stderr string) bool {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return true
	}
	s := strings.ToLower(stderr)
	return strings.Contains(s, "out of memory") || strings.Contains(s, "cannot allocate memory") ||
		strings.Contains(s, "pthread_create failed") ||
		strings.HasPrefix(s, "sigsegv: segmentation violation") || strings.HasPrefix(s, "fatal error: unexpected signal during runtime execution")
}

// peak is the child's peak resident memory, where the system says.
func peak(ps *os.ProcessState) string {
	if n, ok := PeakMemory(ps); ok {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return "unknown"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return line
}

// headBuffer keeps the first max bytes written to it and drops the rest.
type headBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (h *headBuffer) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.String()
}

// readFrames reads the child's frames until it closes its output, writing
// print() output to prints. It returns the response, if one came, and
// whether the watchdog stopped the child.
func readFrames(r io.Reader, prints io.Writer) (resp *response, memory bool, err error) {
	var head [5]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			if err == io.EOF {
				err = nil
				if resp == nil {
					err = io.ErrUnexpectedEOF
				}
			}
			return resp, memory, err
		}
		n := binary.BigEndian.Uint32(head[1:])
		switch head[0] {
		case framePrint:
			if n > printChunk {
				return nil, memory, errWire
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, memory, err
			}
			prints.Write(buf)
		case frameResponse:
			if n > maxResult || resp != nil {
				return nil, memory, errWire
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, memory, err
			}
			resp = &response{}
			if err := unmarshalWire(buf, resp); err != nil {
				return nil, memory, err
			}
		case frameMemory:
			memory = true
		default:
			return nil, memory, errWire
		}
	}
}

func writeFrame(w io.Writer, kind byte, payload []byte) error {
	head := [5]byte{kind}
	binary.BigEndian.PutUint32(head[1:], uint32(len(payload)))
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// frameWriter writes frames to the child's standard output, from the
// evaluation and from the watchdog.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *frameWriter) frame(kind byte, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return writeFrame(f.w, kind, payload)
}

// printWriter sends print() output to bottle in pieces of at most
// printChunk bytes, each cut where decoding the whole as UTF-8 puts a
// boundary, so that bottle's escaping of each piece is the escaping of
// the whole, invalid sequences included.
type printWriter struct{ f *frameWriter }

func (p printWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		cut := len(b)
		if cut > printChunk {
			cut = 0
			for {
				_, size := utf8.DecodeRune(b[cut:])
				if cut+size > printChunk {
					break
				}
				cut += size
			}
		}
		if err := p.f.frame(framePrint, b[:cut]); err != nil {
			return 0, err
		}
		b = b[cut:]
	}
	return n, nil
}

// ServeIsolated is the child's side of Isolation, run by bottle's hidden
// evaluation mode with its standard input and output: it limits its own
// memory, reads one request from in, evaluates, and writes print()
// output and the response to out. embedded holds the profiles shipped in
// the executable. It returns the process's exit code.
func ServeIsolated(in io.Reader, out io.Writer, embedded fs.FS) int {
	if err := limitChild(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	req, err := readRequest(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		// bottle closes the child's input to cancel the evaluation.
		io.Copy(io.Discard, in)
		cancel(nil)
	}()
	f := &frameWriter{w: out}
	guard := &memoryGuard{}
	stop := guard.watch(cancel, func() {
		f.frame(frameMemory, nil)
		os.Exit(1)
	})
	resp := serve(ctx, req, embedded, printWriter{f}, guard)
	stop()
	b := marshalWire(resp)
	if len(b) > maxResult {
		b = marshalWire(&response{Err: &Error{Pos: req.label(), Msg: fmt.Sprintf("the profile's declarations take more than %d MiB; a profile may declare at most that much", maxResult>>20)}})
	}
	if err := f.frame(frameResponse, b); err != nil {
		return 1
	}
	return 0
}

// limitChild sets the child's own limits, before it reads anything.
func limitChild() error {
	if err := limitAddressSpace(AddressLimit); err != nil {
		return fmt.Errorf("limit the address space: %w", err)
	}
	// The collector works harder as the heap nears the limit, so that
	// garbage does not count against a profile.
	debug.SetMemoryLimit(MemoryLimit * 3 / 4)
	return nil
}

func readRequest(in io.Reader) (*request, error) {
	var head [5]byte
	if _, err := io.ReadFull(in, head[:]); err != nil {
		return nil, fmt.Errorf("read the request: %w", err)
	}
	n := binary.BigEndian.Uint32(head[1:])
	if head[0] != 0 || n > maxResult {
		return nil, errWire
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(in, buf); err != nil {
		return nil, fmt.Errorf("read the request: %w", err)
	}
	req := &request{}
	if err := unmarshalWire(buf, req); err != nil {
		return nil, err
	}
	return req, nil
}

// serve carries out req.
func serve(ctx context.Context, req *request, embedded fs.FS, prints io.Writer, guard *memoryGuard) *response {
	resp := &response{}
	var err error
	switch req.Op {
	case opRoot:
		var r *os.Root
		if r, err = os.OpenRoot(req.Root); err == nil {
			defer r.Close()
			resp.Repos, err = readRepos(ctx, r.FS(), req.Root, prints, guard)
		}
	case opEval:
		src := &Source{Label: req.Label, Path: req.Path, Root: req.Root, Dir: req.Dir, Repos: req.Repos}
		if req.Embedded {
			src.FS = embedded
		} else {
			var r *os.Root
			if r, err = os.OpenRoot(req.Root); err != nil {
				err = fmt.Errorf("open profile root %q: %w", req.Root, err)
				break
			}
			defer r.Close()
			src.FS = r.FS()
		}
		resp.State, err = eval(ctx, src, Options{Stderr: prints, Home: req.Home, MaxSteps: req.MaxSteps, RepoCache: req.RepoCache, guard: guard})
	default:
		err = fmt.Errorf("unknown request %q", req.Op)
	}
	if err == nil && guard.exceeded() {
		err = &Error{Pos: req.label(), Msg: memoryMsg}
	}
	if err != nil {
		resp.Repos, resp.State, resp.Err = nil, nil, AsError(err)
	}
	// Long messages (fail() of a huge string) are cut so the response fits.
	if e := resp.Err; e != nil {
		e.Msg, e.Backtrace = cut(e.Msg), cut(e.Backtrace)
	}
	return resp
}

// cut shortens s to at most 1 MiB, saying so.
func cut(s string) string {
	const most = 1 << 20
	if len(s) <= most {
		return s
	}
	return fmt.Sprintf("%s... (%d more bytes)", s[:most], len(s)-most)
}

// memoryError is the cause the watchdog cancels the evaluation with.
type memoryError struct{}

func (memoryError) Error() string {
	return fmt.Sprintf("the profile needs more than %d MiB of memory, the most a profile may use", MemoryLimit>>20)
}

// cancelReason is what a cancelled thread reports: that the profile
// needed too much memory, or that the evaluation was cancelled.
func cancelReason(ctx context.Context) string {
	var me memoryError
	if errors.As(context.Cause(ctx), &me) {
		return me.Error()
	}
	return "evaluation cancelled"
}

// memoryGuard keeps an evaluation under MemoryLimit. A watchdog
// goroutine polls the heap every millisecond, and each evaluating thread
// looks at it too, at step boundaries.
//
// The watchdog alone would be late: a step that allocates hundreds of
// MiB (x + x) holds up the Go runtime's stop-the-world phases, and with
// them every other goroutine, until its copy ends, and the next such step
// can start before the watchdog runs again. So the threads check
// themselves: every guardSteps steps, and at every step once the heap has
// been seen past nearLimit (a check costs about a microsecond; a step,
// a few tens of nanoseconds).
type memoryGuard struct {
	near atomic.Bool // the heap has been past nearLimit
	over atomic.Bool // the heap has been past MemoryLimit
}

const (
	// guardSteps is how many steps a thread takes between two looks at
	// the heap while it is small.
	guardSteps = 1024
	// nearLimit is the heap past which threads look at every step.
	nearLimit = MemoryLimit / 4
	// heapMetric is the memory of the heap's objects, live or not yet swept.
	heapMetric = "/memory/classes/heap/objects:bytes"
)

// check reads the heap, notes whether it is near the limit, and returns it.
func (g *memoryGuard) check(sample []metrics.Sample) uint64 {
	metrics.Read(sample)
	heap := sample[0].Value.Uint64()
	if heap > nearLimit {
		g.near.Store(true)
	}
	if heap > MemoryLimit {
		g.over.Store(true)
	}
	return heap
}

// exceeded reports whether the heap is, or has been seen, past
// MemoryLimit: an evaluation can end before its thread or the watchdog
// looks again, the latter held up by the step that allocated.
//
// The heap alone can miss it: the last step's allocation may already be
// garbage, collected, when the evaluation ends. So the process's peak
// resident memory counts too, past MemoryLimit plus peakSlack for the
// runtime and the interpreter themselves (the child runs one evaluation).
func (g *memoryGuard) exceeded() bool {
	g.check([]metrics.Sample{{Name: heapMetric}})
	if peak, ok := selfPeak(); ok && peak > MemoryLimit+peakSlack {
		g.over.Store(true)
	}
	return g.over.Load()
}

// peakSlack is the resident memory of the evaluation process beyond its
// heap's objects: the runtime, the binary's pages, the interpreter.
const peakSlack = 48 << 20

// attach makes th cancel itself past MemoryLimit, at a step boundary. It
// keeps the step limit maxSteps, which th.OnMaxSteps takes over.
func (g *memoryGuard) attach(th *starlark.Thread, maxSteps uint64) {
	if g == nil {
		return
	}
	sample := []metrics.Sample{{Name: heapMetric}}
	th.SetMaxExecutionSteps(1)
	th.OnMaxSteps = func(th *starlark.Thread) {
		if th.Steps >= maxSteps {
			th.Cancel("too many steps")
			return
		}
		if (g.near.Load() || th.Steps%guardSteps == 0) && g.check(sample) > MemoryLimit {
			th.Cancel(memoryError{}.Error())
			return
		}
		th.SetMaxExecutionSteps(th.Steps + 1)
	}
}

// watch polls the heap every millisecond. Past MemoryLimit it cancels
// the evaluation; past hardMemoryLimit (a builtin that never returns to
// the interpreter) it calls exit. The returned function stops it.
func (g *memoryGuard) watch(cancel context.CancelCauseFunc, exit func()) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		sample := []metrics.Sample{{Name: heapMetric}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			heap := g.check(sample)
			if heap > MemoryLimit {
				cancel(memoryError{})
			}
			if heap > hardMemoryLimit {
				exit()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
