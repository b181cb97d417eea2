// Package starlark evaluates bottle profiles: it finds a profile's root,
// runs the profile in the strict Starlark dialect with bottle's builtins,
// resolves load() inside the root and inside the shared repositories the
// root declares, and builds the plan from what the profile declared.
//
// Evaluation has no side effects: it reads the profile, bottle.root, the
// files it loads and the repository cache, and nothing else; it never
// runs git and never touches the network. File names are root-relative
// labels ("//lib/claude.star", "@acme//lib/base.star") so that positions
// and backtraces are the same on every machine.
package starlark

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/starlark/builtins"
)

// RootMarker is the file whose directory `//` labels resolve from.
const RootMarker = "bottle.root"

// DefaultMaxSteps bounds the Starlark steps one file's execution may take.
const DefaultMaxSteps = 10_000_000

// fileOptions is the dialect: strict Starlark (no top-level if/for, no
// while, no recursion, no global reassignment).
var fileOptions = &syntax.FileOptions{}

// Source is a profile and the root its labels resolve against.
type Source struct {
	// FS holds the root's files; every load is read through it, which
	// confines loads to the root, symlinks included.
	FS fs.FS
	// Label is the profile's root-relative label, "//bottle.star".
	Label string
	// Path is the profile's absolute host path, or "embedded:<name>".
	Path string
	// Root is the root's absolute host path, or "embedded:" for shipped profiles.
	Root string
	// Dir is the host directory the profile's relative paths resolve from.
	Dir string
	// Repos are the shared repositories bottle.root declares, sorted by
	// name, with overrides applied.
	Repos []plan.Repo

	// origin is where FS comes from, for evaluation in a child process,
	// which opens it again.
	origin origin
}

type origin int

const (
	originUnknown  origin = iota // built by hand: only evaluated in this process
	originRoot                   // the directory Root (Open)
	originEmbedded               // the profiles shipped in the executable (Embedded)
)

// Open finds the root of the profile at file (the nearest directory at or
// above it holding bottle.root, else the profile's own directory). A
// symbolic link is followed first: the root, the loads and the relative
// paths are those of the file it points to.
func Open(file string) (*Source, error) {
	return open(file, func(fsys fs.FS, root string) ([]plan.Repo, error) {
		return readRepos(context.Background(), fsys, root, nil, nil)
	})
}

// open is Open with bottle.root read by repos.
func open(file string, repos func(fsys fs.FS, root string) ([]plan.Repo, error)) (*Source, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("profile %q: %w", file, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("profile %q: %w", file, errors.Unwrap(err))
	}
	// A profile reached through a symbolic link is the file it points to:
	// its root, its loads and its relative paths are the real file's.
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, fmt.Errorf("profile %q: %w", file, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("profile %q is a directory; give a .star file", file)
	}
	dir := filepath.Dir(abs)
	root, ok := FindRoot(dir)
	if !ok {
		root = dir
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		return nil, fmt.Errorf("profile %q: %w", file, err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open profile root %q: %w", root, err)
	}
	src := &Source{FS: r.FS(), Label: "//" + filepath.ToSlash(rel), Path: abs, Root: root, Dir: dir, origin: originRoot}
	if src.Repos, err = repos(r.FS(), root); err != nil {
		return nil, err
	}
	return src, nil
}

// FindRoot returns the nearest directory at or above the absolute
// directory dir that holds bottle.root.
func FindRoot(dir string) (string, bool) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, RootMarker)); err == nil {
			return d, true
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// Embedded returns a profile shipped inside the binary, whose relative
// paths resolve from workspace.
func Embedded(fsys fs.FS, name, workspace string) *Source {
	return &Source{FS: fsys, Label: "//" + name, Path: "embedded:profiles/" + name, Root: "embedded:profiles", Dir: workspace, origin: originEmbedded}
}

// Options control one evaluation.
type Options struct {
	// Stderr receives print() output as "//file.star:line:col: message".
	Stderr io.Writer
	// Home resolves "~/" paths.
	Home string
	// MaxSteps bounds each file's execution; 0 means DefaultMaxSteps.
	MaxSteps uint64
	// RepoCache is the directory `bottle fetch` stores git repositories
	// in (see package repocache); evaluation only reads it.
	RepoCache string
	// Isolation, when set, evaluates in a child process under a memory
	// limit; src must then come from Open or Embedded (or Isolation.Open).
	Isolation *Isolation

	// guard keeps the evaluation under MemoryLimit (in the child).
	guard *memoryGuard
}

// Eval runs the profile and returns what it declared.
func Eval(ctx context.Context, src *Source, opts Options) (*builtins.State, error) {
	if opts.Isolation != nil {
		return opts.Isolation.eval(ctx, src, opts)
	}
	return eval(ctx, src, opts)
}

// eval is Eval in this process.
func eval(ctx context.Context, src *Source, opts Options) (*builtins.State, error) {
	if opts.MaxSteps == 0 {
		opts.MaxSteps = DefaultMaxSteps
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	l := &loader{ctx: ctx, src: src, opts: opts, cache: map[string]*module{}, roots: map[string]fs.FS{"": src.FS}}
	defer func() {
		for _, r := range l.opened {
			r.Close()
		}
	}()
	state := &builtins.State{ProfileDir: src.Dir, Home: opts.Home}
	if _, err := l.exec(src.Label, state); err != nil {
		return nil, err
	}
	if filepath.IsAbs(src.Root) {
		if _, err := os.Stat(filepath.Join(src.Root, RootMarker)); err == nil {
			l.files = append(l.files, filepath.Join(src.Root, RootMarker))
		}
	}
	slices.Sort(l.files)
	state.Files = slices.Compact(l.files)
	return state, nil
}

type module struct {
	globals starlark.StringDict
	err     error
}

type loader struct {
	ctx    context.Context
	src    *Source
	opts   Options
	cache  map[string]*module // nil entry: being loaded
	stack  []string           // labels being loaded, for cycle messages
	roots  map[string]fs.FS   // by repository name; "" is the profile root
	opened []*os.Root         // repository roots to close after evaluation
	files  []string           // host paths of the files read
}

func (l *loader) newThread(label string, state *builtins.State) *starlark.Thread {
	th := &starlark.Thread{
		Name: label,
		Print: func(th *starlark.Thread, msg string) {
			fmt.Fprintf(l.opts.Stderr, "%s: %s\n", th.CallFrame(1).Pos, msg)
		},
		Load: l.load,
	}
	th.SetMaxExecutionSteps(l.opts.MaxSteps)
	l.opts.guard.attach(th, l.opts.MaxSteps)
	if state != nil {
		builtins.Attach(th, state)
	}
	return th
}

// exec runs the file at label; state is nil for loaded files, whose top
// level may define functions but not make declarations.
func (l *loader) exec(label string, state *builtins.State) (starlark.StringDict, error) {
	repo, p := splitLabel(label)
	fsys, err := l.root(repo)
	if err != nil {
		return nil, err
	}
	data, err := fs.ReadFile(fsys, p)
	if err != nil {
		if state != nil {
			return nil, fmt.Errorf("%s: %w", label, describeFSError(err, repo))
		}
		return nil, describeFSError(err, repo)
	}
	if host := l.hostPath(repo, p); host != "" {
		l.files = append(l.files, host)
	}
	th := l.newThread(label, state)
	if l.ctx != nil {
		stop := context.AfterFunc(l.ctx, func() { th.Cancel(cancelReason(l.ctx)) })
		defer stop()
	}
	l.stack = append(l.stack, label)
	defer func() { l.stack = l.stack[:len(l.stack)-1] }()
	return starlark.ExecFileOptions(fileOptions, th, label, data, builtins.Predeclared())
}

// hostPath is where the file p of repository repo ("" for the profile
// root) is on the host, or "" when it is embedded or in the cache.
func (l *loader) hostPath(repo, p string) string {
	dir := l.src.Root
	if repo != "" {
		r := l.declared(repo)
		if r == nil || r.Path == "" {
			return ""
		}
		dir = r.Path
	}
	if !filepath.IsAbs(dir) {
		return ""
	}
	return filepath.Join(dir, filepath.FromSlash(p))
}

// load implements load(): "//x.star" from the loading file's root (the
// profile root, or the repository the file is in), "@name//x.star" from
// repository name, "./x.star" and "../x.star" from the loading file;
// nothing may leave its root.
func (l *loader) load(th *starlark.Thread, name string) (starlark.StringDict, error) {
	label, err := l.resolve(th, name)
	if err != nil {
		return nil, err
	}
	if m, ok := l.cache[label]; ok {
		if m == nil {
			i := 0
			for i < len(l.stack) && l.stack[i] != label {
				i++
			}
			cycle := append(append([]string{}, l.stack[i:]...), label)
			return nil, fmt.Errorf("load cycle: %s", strings.Join(cycle, " loads "))
		}
		return m.globals, m.err
	}
	l.cache[label] = nil
	g, err := l.exec(label, nil)
	l.cache[label] = &module{g, err}
	return g, err
}

func (l *loader) resolve(th *starlark.Thread, module string) (string, error) {
	if !strings.HasSuffix(module, ".star") {
		return "", errors.New("profiles load only .star files")
	}
	repo, from := splitLabel(th.Name)
	var p string
	switch {
	case strings.HasPrefix(module, "@"):
		name, rest, ok := strings.Cut(module[1:], "//")
		if !ok || name == "" {
			return "", errors.New("a repository label reads @name//path/file.star")
		}
		if l.declared(name) == nil {
			return "", l.unknownRepo(name)
		}
		repo, p = name, rest
	case strings.HasPrefix(module, "//"):
		p = module[2:]
	case strings.HasPrefix(module, "./"), strings.HasPrefix(module, "../"):
		p = path.Join(path.Dir(from), module)
	default:
		return "", errors.New("start the path with // (from the root), @name// (from a repository bottle.root declares) or ./ (from this file)")
	}
	p = path.Clean(p)
	if p == ".." || strings.HasPrefix(p, "../") || strings.HasPrefix(p, "/") || !fs.ValidPath(p) {
		if repo != "" {
			return "", fmt.Errorf("the path leaves repository @%s; files in a repository load only files under its root", repo)
		}
		return "", fmt.Errorf("the path leaves the profile root; profiles load only files under the root (the directory holding %s, else the profile's own directory)", RootMarker)
	}
	if repo != "" {
		return "@" + repo + "//" + p, nil
	}
	return "//" + p, nil
}

// splitLabel splits "@name//p" into ("name", "p") and "//p" into ("", "p").
func splitLabel(label string) (repo, p string) {
	if strings.HasPrefix(label, "@") {
		repo, p, _ = strings.Cut(label[1:], "//")
		return repo, p
	}
	return "", strings.TrimPrefix(label, "//")
}

func describeFSError(err error, repo string) error {
	where, rule := "under the profile root", "profiles load only files under the root"
	if repo != "" {
		where, rule = "in repository @"+repo, "files in a repository load only files under its root"
	}
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no such file %s", where)
	case errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes"):
		return fmt.Errorf("the path leaves %s through a symbolic link; %s", strings.TrimPrefix(strings.TrimPrefix(where, "under "), "in "), rule)
	case errors.As(err, &pe):
		return pe.Err
	}
	return err
}

// Error is a profile error: a one-line cause with the position that made
// it, and the Starlark backtrace when the error happened in a nested call.
type Error struct {
	Pos       string
	Msg       string
	Backtrace string
}

func (e *Error) Error() string {
	if e.Pos == "" {
		return e.Msg
	}
	return e.Pos + ": " + e.Msg
}

// AsError turns an evaluation error into an *Error: the innermost
// Starlark error gives the cause and its position; a backtrace is kept
// when the call stack is deeper than the profile's top level or the error
// happened in a loaded file.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	var evals []*starlark.EvalError
	for e := err; e != nil; e = errors.Unwrap(e) {
		if ee, ok := e.(*starlark.EvalError); ok {
			evals = append(evals, ee)
		}
	}
	if len(evals) == 0 {
		var se syntax.Error
		if errors.As(err, &se) {
			return &Error{Pos: se.Pos.String(), Msg: se.Msg}
		}
		var rl resolve.ErrorList
		if errors.As(err, &rl) && len(rl) > 0 {
			return &Error{Pos: rl[0].Pos.String(), Msg: rl[0].Msg}
		}
		return &Error{Msg: err.Error()}
	}
	inner := evals[len(evals)-1]
	stack := inner.CallStack
	if n := len(stack); n > 0 && stack[n-1].Pos.Filename() == "<builtin>" {
		stack = stack[:n-1]
	}
	out := &Error{Msg: innerMsg(inner)}
	if n := len(stack); n > 0 {
		out.Pos = stack[n-1].Pos.String()
	}
	if len(stack) > 1 || len(evals) > 1 {
		var b strings.Builder
		b.WriteString("Traceback (most recent call last):\n")
		for i := 0; i < len(evals)-1; i++ {
			for _, fr := range evals[i].CallStack {
				fmt.Fprintf(&b, "  %s: in %s\n", fr.Pos, fr.Name)
			}
		}
		for _, fr := range stack {
			fmt.Fprintf(&b, "  %s: in %s\n", fr.Pos, fr.Name)
		}
		out.Backtrace = strings.TrimSuffix(b.String(), "\n")
	}
	return out
}

// innerMsg is the message of the innermost cause, without the "cannot
// load x: " prefixes starlark adds at each level.
func innerMsg(e *starlark.EvalError) string {
	msg := e.Msg
	if c := errors.Unwrap(e); c != nil {
		var ee *starlark.EvalError
		if !errors.As(c, &ee) {
			msg = c.Error()
		}
	}
	return msg
}
