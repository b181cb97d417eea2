package backends

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/bottle-dev/bottle/plan"
)

// PlaceholdersFile records, in a bottle's state directory, the
// placeholders Protect created on the host (JSON, []Placeholder), so that
// RemovePlaceholders can take them away after the bottle, even one whose
// controller was killed.
const PlaceholdersFile = "placeholders.json"

// ProtectOp is one mount that keeps a protected path from the agent.
type ProtectOp struct {
	// Host is the absolute host path, mounted onto itself.
	Host string `json:"host"`
	// Target is where Host is in the sandbox.
	Target string `json:"target"`
	// ReadOnly is true for a protected path. False means a directory above
	// one, mounted writable onto itself: a mount point cannot be renamed
	// or removed, so the agent cannot replace the directory with one of
	// its own (mv .git .git.old; mkdir .git; ...).
	ReadOnly bool `json:"readonly"`
}

// Placeholder is a protected path that did not exist: Protect created it
// on the host, empty (or with Content), so that it can be mounted
// read-only and the agent cannot create it.
type Placeholder struct {
	Path    string `json:"path"`
	Dir     bool   `json:"dir,omitempty"`
	Content string `json:"content,omitempty"`
}

// placeholderContent is what a missing protected file holds while the
// bottle runs, where empty would change what host tools do: git treats an
// existing .git/commondir as the place its config lives, and an empty one
// is an error; "." names the git directory itself, which changes nothing.
var placeholderContent = map[string]string{
	".git/commondir": ".\n",
	".mcp.json":      "{}\n",
}

// ErrProtectSymlink is wrapped by Protect's error when a protected path,
// or a directory above one, is a symbolic link: the agent could replace
// the link, so bottle refuses to start rather than protect half of it.
var ErrProtectSymlink = errors.New("is a symbolic link")

// Protect returns the mounts that keep every writable mount's protected
// paths (plan.Mount.Protect, the profile's files under it, and the hooks
// directory git's core.hooksPath names when it is inside it) from the agent, parents before
// children. A missing path is created on the host as an empty placeholder
// first (a directory when the entry ends in "/") and recorded in st's
// PlaceholdersFile; a missing directory above a protected path becomes the
// placeholder instead, read-only, which covers everything under it (so a
// workspace that is not a git repository cannot become one inside the
// bottle). Paths under a read-only mount need nothing.
func Protect(p *plan.Plan, st *State) ([]ProtectOp, error) {
	var ops []ProtectOp
	var made []Placeholder
	seen := map[string]bool{}
	covered := func(target string) bool {
		for _, op := range ops {
			if op.ReadOnly && strings.HasPrefix(target, op.Target+"/") {
				return true
			}
		}
		return false
	}
	add := func(op ProtectOp) {
		if seen[op.Target] {
			// A path both pinned and protected is protected.
			if op.ReadOnly {
				for i := range ops {
					if ops[i].Target == op.Target {
						ops[i].ReadOnly = true
					}
				}
			}
			return
		}
		seen[op.Target] = true
		ops = append(ops, op)
	}
	var writable []plan.Mount
	for _, m := range p.Mounts {
		if !m.ReadOnly {
			writable = append(writable, m)
		}
	}
	err := checkSources(p.Mounts, writable)
	for _, m := range writable {
		if err == nil {
			err = checkSetID(m)
		}
	}
	// Each protected path as a host path: a path one mount protects is
	// read-only through every writable mount that holds it (a mount of
	// the workspace's parent, or of a directory inside it), not only at
	// the mount that named it.
	var hosts []string
	for _, m := range writable {
		if err != nil {
			break
		}
		list := append(slices.Clone(m.Protect), hooksPath(m.HostPath)...)
		list = append(list, submodulePaths(m.HostPath)...)
		nested, nerr := nestedRepos(m.HostPath)
		if nerr != nil {
			err = nerr
			break
		}
		for _, r := range nested {
			list = append(list, gitPaths(r.rel, r.gitDir)...)
		}
		list = append(list, under(m.HostPath, p.Profile.Files)...)
		for _, rel := range list {
			if err = plan.CheckProtect(rel); err != nil {
				err = fmt.Errorf("mount %s: %w", m.Target, err)
				break
			}
			h := filepath.Join(m.HostPath, filepath.FromSlash(strings.TrimSuffix(rel, "/")))
			if strings.HasSuffix(rel, "/") {
				h += "/"
			}
			hosts = append(hosts, h)
		}
	}
	// Shorter paths first, so that a placeholder directory is made
	// before anything under it would be.
	slices.SortFunc(hosts, func(a, b string) int {
		if d := len(a) - len(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	hosts = slices.Compact(hosts)
	mine := map[string]bool{} // placeholders made here
	for _, h := range hosts {
		if err != nil {
			break
		}
		for _, m := range writable {
			rel, ok := within(m.HostPath, strings.TrimSuffix(h, "/"))
			if !ok {
				continue
			}
			if strings.HasSuffix(h, "/") {
				rel += "/"
			}
			var ph *Placeholder
			ph, err = protectOne(m, rel, mine, covered, add)
			if ph != nil {
				made = append(made, *ph)
				mine[ph.Path] = true
			}
			if err != nil {
				break
			}
		}
	}
	if len(made) > 0 && st != nil {
		if werr := recordPlaceholders(st.Dir, made); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return nil, err
	}
	// Parents before children: a mount on a path inside a pinned
	// directory must be made after the pin, or the pin hides it.
	slices.SortStableFunc(ops, func(a, b ProtectOp) int {
		return strings.Count(a.Target, "/") - strings.Count(b.Target, "/")
	})
	return ops, nil
}

// protectOne protects rel under m: it pins each existing directory above
// it, and mounts rel (or the first missing or non-directory component
// above it) read-only, creating a placeholder when it is missing.
func protectOne(m plan.Mount, rel string, mine map[string]bool, covered func(string) bool, add func(ProtectOp)) (*Placeholder, error) {
	wantDir := strings.HasSuffix(rel, "/")
	parts := strings.Split(strings.TrimSuffix(rel, "/"), "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		host := filepath.Join(m.HostPath, filepath.FromSlash(sub))
		target := path.Join(m.Target, sub)
		last := i == len(parts)-1
		if covered(target) {
			return nil, nil // under a path already read-only
		}
		fi, err := os.Lstat(host)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			dir := !last || wantDir
			content := ""
			if !dir {
				content = placeholderContent[sub]
			}
			if err := makePlaceholder(host, dir, content); err != nil {
				return nil, fmt.Errorf("protect %s under %s: %w", rel, m.HostPath, err)
			}
			add(ProtectOp{Host: host, Target: target, ReadOnly: true})
			return &Placeholder{Path: host, Dir: dir, Content: content}, nil
		case err != nil:
			return nil, fmt.Errorf("protect %s under %s: %w", rel, m.HostPath, err)
		case mine[host]:
			// A placeholder made for another mount: read-only here too.
			add(ProtectOp{Host: host, Target: target, ReadOnly: true})
			return nil, nil
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("protect %s under %s: %s %w; the agent could replace it. Replace the link with the file or directory it points to, or mount that separately", rel, m.HostPath, host, ErrProtectSymlink)
		case last || !fi.IsDir():
			// The protected path itself, or a file where a directory
			// above it would be (a .git file naming the git directory
			// elsewhere): read-only.
			add(ProtectOp{Host: host, Target: target, ReadOnly: true})
			return nil, nil
		default:
			add(ProtectOp{Host: host, Target: target})
		}
	}
	return nil, nil
}

// within returns p relative to dir, slash-separated, when p is dir or
// under it.
func within(dir, p string) (string, bool) {
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// checkSources refuses a mount whose source is under a writable mount and
// is, or passes through, a symbolic link there: the agent could have put
// the link there in an earlier run, and the next run would then bind
// whatever it names (any host directory) into the sandbox.
func checkSources(mounts, writable []plan.Mount) error {
	for _, m := range mounts {
		for _, w := range writable {
			rel, ok := within(w.HostPath, m.HostPath)
			if !ok || rel == "." {
				continue
			}
			cur := w.HostPath
			for _, part := range strings.Split(rel, "/") {
				cur = filepath.Join(cur, part)
				fi, err := os.Lstat(cur)
				if err != nil {
					break // docker reports a missing source
				}
				if fi.Mode()&fs.ModeSymlink != 0 {
					return fmt.Errorf("mount %s: its source %s passes through %s, which %w inside the writable mount %s; the agent could have replaced it. Replace the link with the directory it points to, or mount that directory by its own path", m.Target, m.HostPath, cur, ErrProtectSymlink, w.Target)
				}
			}
		}
	}
	return nil
}

// SourceIdentities returns, for each mount of p whose source lies inside
// another, writable mount, its target and the source's identity
// ("DEV:INO", as stat(2) gives them): the agent of another bottle on the
// same workspace could swap the source for a symbolic link between
// bottle's check and the mount, so bottle guest compares what it sees at
// the target before it runs the agent (docker shares the host's inodes;
// see sidecars/guest.CheckMounts).
func SourceIdentities(p *plan.Plan) (map[string]string, error) {
	ids := map[string]string{}
	for _, m := range p.Mounts {
		for _, w := range p.Mounts {
			if w.ReadOnly || w.Target == m.Target {
				continue
			}
			if rel, ok := within(w.HostPath, m.HostPath); !ok || rel == "." {
				continue
			}
			fi, err := os.Lstat(m.HostPath)
			if err != nil {
				return nil, fmt.Errorf("mount %s: %w", m.Target, err)
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok || fi.Mode()&fs.ModeSymlink != 0 {
				return nil, fmt.Errorf("mount %s: its source %s %w", m.Target, m.HostPath, ErrProtectSymlink)
			}
			ids[m.Target] = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
			break
		}
	}
	return ids, nil
}

// ErrSetIDFile is wrapped by Protect's error when a writable mount holds
// a setuid or setgid file the agent could write.
var ErrSetIDFile = errors.New("holds setuid or setgid files the agent could rewrite")

// checkSetID refuses a writable mount holding a regular file with the
// setuid or setgid bit that the agent's user owns (any such file when
// bottle runs as root). The seccomp rules keep the agent from setting the
// bits, but a store through a shared mapping rewrites a file without the
// kernel clearing them, so such a file would run the agent's code with
// its owner's rights on the host.
func checkSetID(m plan.Mount) error {
	uid := uint32(os.Getuid())
	var found []string
	filepath.WalkDir(m.HostPath, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) == 0 {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && uid != 0 && st.Uid != uid {
			return nil
		}
		found = append(found, strconv.Quote(p))
		if len(found) == 5 {
			return filepath.SkipAll
		}
		return nil
	})
	if len(found) == 0 {
		return nil
	}
	return fmt.Errorf("mount %s %w: %s; remove the bits (chmod u-s,g-s FILE) or mount the directory read-only", m.Target, ErrSetIDFile, strings.Join(found, ", "))
}

// NestedRepos lists the repositories (directories holding .git) up to
// three directories below dir, relative to it; nil when there are more
// directories than the search reads.
func NestedRepos(dir string) []string {
	repos, err := nestedRepos(dir)
	if err != nil {
		return nil
	}
	var dirs []string
	for _, r := range repos {
		dirs = append(dirs, r.rel)
	}
	return dirs
}

// gitDirPaths are what to protect of a git directory, relative to it.
var gitDirPaths = []string{"config", "commondir", "config.worktree", "hooks/", "modules/", "worktrees/"}

// gitPaths returns what to protect of the repository at rel (relative,
// slash-separated): its .git file whole, or gitDirPaths in its .git
// directory. A .git that is a link is protected as a file, where
// protectOne refuses it.
func gitPaths(rel string, gitDir bool) []string {
	if !gitDir {
		return []string{rel + "/.git"}
	}
	var list []string
	for _, g := range gitDirPaths {
		list = append(list, rel+"/.git/"+g)
	}
	return list
}

// foundRepo is a repository nestedRepos found: its directory relative to
// the mount, and whether its .git is a directory.
type foundRepo struct {
	rel    string
	gitDir bool
}

// maxRepoScan bounds the directories nestedRepos reads (a variable
// for tests).
var maxRepoScan = 50000

// ErrTooManyDirs is wrapped by Protect's error when a writable mount has
// more directories in its top levels than nestedRepos reads: stopping
// early would leave the repositories after them unprotected, and the agent
// can make directories.
var ErrTooManyDirs = errors.New("too many directories to search for repositories")

// nestedRepos finds the repositories under dir, down to three
// directories below it (a mount of a directory of projects). It does not
// follow symbolic links, skips node_modules and the .git directories
// themselves, and fails with ErrTooManyDirs rather than read more than
// maxRepoScan directories.
func nestedRepos(dir string) ([]foundRepo, error) {
	var repos []foundRepo
	seen := 0
	var walk func(rel string, depth int)
	walk = func(rel string, depth int) {
		if depth > 4 || seen > maxRepoScan {
			return
		}
		seen++
		des, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return
		}
		for _, de := range des {
			name := de.Name()
			switch {
			case name == ".git" && rel != ".":
				repos = append(repos, foundRepo{rel: rel, gitDir: de.IsDir()})
			case name == ".git" || name == "node_modules" || !de.IsDir():
			default:
				walk(path.Join(rel, name), depth+1)
			}
		}
	}
	walk(".", 1)
	if seen > maxRepoScan {
		return nil, fmt.Errorf("%s: more than %d directories within three levels: %w; mount a narrower directory, or mount this one read-only", dir, maxRepoScan, ErrTooManyDirs)
	}
	return repos, nil
}

// makePlaceholder creates path, a directory or a file holding content,
// failing if anything is there already.
func makePlaceholder(p string, dir bool, content string) error {
	if dir {
		return os.Mkdir(p, 0o755)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// hooksPath returns git's core.hooksPath for the repository at dir, as a
// path relative to dir, when it names a directory inside dir (husky and
// similar tools keep hooks in the worktree, where the agent could change
// them). It asks the host's git, reading config only; without git, or
// outside a repository, it returns nothing.
func hooksPath(dir string) []string {
	if _, err := os.Lstat(filepath.Join(dir, ".git")); err != nil {
		return nil
	}
	git, err := exec.LookPath("git")
	if err != nil {
		return nil
	}
	out, err := exec.Command(git, "-C", dir, "config", "--get", "core.hooksPath").Output()
	if err != nil {
		return nil
	}
	hp := strings.TrimSpace(string(out))
	if hp == "" {
		return nil
	}
	if strings.HasPrefix(hp, "~/") {
		return nil // in the user's home, not the workspace
	}
	if !filepath.IsAbs(hp) {
		hp = filepath.Join(dir, hp) // relative to the top of the worktree
	}
	rel, ok := within(dir, filepath.Clean(hp))
	if !ok || rel == "." {
		return nil
	}
	return []string{rel + "/"}
}

// under returns the paths of files that are under dir, relative to it
// and slash-separated. The files are real paths (the profile's symbolic
// links resolved), so dir is compared resolved too.
func under(dir string, files []string) []string {
	bases := []string{dir}
	if real, err := filepath.EvalSymlinks(dir); err == nil && real != dir {
		bases = append(bases, real)
	}
	var list []string
	for _, f := range files {
		for _, base := range bases {
			if rel, ok := within(base, f); ok && rel != "." {
				list = append(list, rel)
				break
			}
		}
	}
	return list
}

// Gitlinks returns the paths of the submodules (gitlinks, mode 160000) in
// the index of the repository at dir, slash-separated and relative to it;
// nothing without git or outside a repository. It reads the index only
// (git ls-files), which runs no hook.
func Gitlinks(dir string) []string {
	if fi, err := os.Lstat(filepath.Join(dir, ".git")); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	git, err := exec.LookPath("git")
	if err != nil {
		return nil
	}
	out, err := exec.Command(git, "-C", dir, "-c", "core.fsmonitor=false", "ls-files", "--stage", "-z").Output()
	if err != nil {
		return nil
	}
	var links []string
	for _, rec := range strings.Split(string(out), "\x00") {
		meta, name, ok := strings.Cut(rec, "\t")
		if ok && strings.HasPrefix(meta, "160000 ") {
			links = append(links, name)
		}
	}
	return links
}

// submodulePaths returns what to protect of the submodules checked out
// under dir: git status on the host looks into each one, reading the git
// directory its .git names. A .git file (the usual pointer into
// .git/modules/) is protected whole; a .git directory like a
// repository's own.
func submodulePaths(dir string) []string {
	var list []string
	for _, link := range Gitlinks(dir) {
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(link), ".git"))
		if err != nil {
			continue // not checked out
		}
		list = append(list, gitPaths(link, fi.IsDir())...)
	}
	return list
}

func recordPlaceholders(dir string, list []Placeholder) error {
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, PlaceholdersFile), append(b, '\n'))
}

// RemovePlaceholders removes the placeholders recorded in state directory
// dir: a directory only while it is empty, a file only while it is a
// regular file that still holds what bottle wrote, so that nothing anyone
// put there since is lost. A placeholder under a writable mount of another
// running bottle of the same state home is handed to that bottle's record
// instead: removing it would lift that bottle's read-only mount of it (the
// kernel detaches mounts on a path unlinked elsewhere) and let its agent
// create the path.
func RemovePlaceholders(dir string) {
	list := readPlaceholders(dir)
	if len(list) == 0 {
		os.Remove(filepath.Join(dir, PlaceholdersFile))
		return
	}
	others := otherMounts(dir)
	handed := map[string][]Placeholder{}
	// Deepest first, so that an emptied directory can go too.
	slices.SortFunc(list, func(a, b Placeholder) int { return len(b.Path) - len(a.Path) })
	for _, ph := range list {
		if other := mountedBy(others, ph.Path); other != "" {
			handed[other] = append(handed[other], ph)
			continue
		}
		removePlaceholder(ph)
	}
	for other, phs := range handed {
		recordPlaceholders(other, append(readPlaceholders(other), phs...))
	}
	os.Remove(filepath.Join(dir, PlaceholdersFile))
}

func readPlaceholders(dir string) []Placeholder {
	b, err := os.ReadFile(filepath.Join(dir, PlaceholdersFile))
	if err != nil {
		return nil
	}
	var list []Placeholder
	if json.Unmarshal(b, &list) != nil {
		return nil
	}
	return list
}

func removePlaceholder(ph Placeholder) {
	fi, err := os.Lstat(ph.Path)
	if err != nil {
		return
	}
	if ph.Dir {
		if fi.IsDir() {
			os.Remove(ph.Path) // fails unless empty
		}
		return
	}
	if !fi.Mode().IsRegular() || fi.Size() != int64(len(ph.Content)) {
		return
	}
	if got, err := os.ReadFile(ph.Path); err == nil && string(got) == ph.Content {
		os.Remove(ph.Path)
	}
}

// otherMounts maps the state directories of the other running bottles
// beside dir to the host paths of their writable mounts.
func otherMounts(dir string) map[string][]string {
	entries, _ := Scan(filepath.Dir(dir))
	m := map[string][]string{}
	for _, e := range entries {
		if e.Dir == dir || !Locked(e.Dir) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.Dir, PlanFile))
		if err != nil {
			continue
		}
		var p plan.Plan
		if json.Unmarshal(b, &p) != nil {
			continue
		}
		for _, mt := range p.Mounts {
			if !mt.ReadOnly {
				m[e.Dir] = append(m[e.Dir], mt.HostPath)
			}
		}
	}
	return m
}

// mountedBy returns the state directory of a bottle in others with a
// mount holding p, or "".
func mountedBy(others map[string][]string, p string) string {
	for dir, mounts := range others {
		for _, h := range mounts {
			if _, ok := within(h, p); ok {
				return dir
			}
		}
	}
	return ""
}
