package gitgate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// command is one ref update a client asked for.
type command struct {
	old, new, ref string
	n             int // 1-based position in the push
	// reason is empty while the command may still be forwarded, and the
	// "ng" reason reported to the client once it is refused.
	reason string
}

func (c *command) isDelete() bool { return isZeroOID(c.new) }
func (c *command) isCreate() bool { return isZeroOID(c.old) }

// capabilities the gate advertises for pushes. It leaves out atomic,
// push-options and push-cert, which it does not implement; a client that
// needs one of them stops with a clear message of its own.
const receiveCaps = "report-status delete-refs side-band-64k quiet ofs-delta agent=bottle-git-gate"

// receiveAdvertisement lists the mirror's branches and tags in the
// receive-pack advertisement format.
func (g *Gate) receiveAdvertisement(ctx context.Context, r *remote) ([]byte, error) {
	refs, err := g.mirrorRefs(ctx, r)
	if err != nil {
		return nil, err
	}
	format, err := g.objectFormat(ctx, r.dir)
	if err != nil {
		return nil, err
	}
	caps := receiveCaps + " object-format=" + format
	var b bytes.Buffer
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range refs {
			if !yield(n) {
				return
			}
		}
	})
	if len(names) == 0 {
		b.Write(pktLine([]byte(zeroOID(format) + " capabilities^{}\x00" + caps + "\n")))
	}
	for i, n := range names {
		line := refs[n] + " " + n
		if i == 0 {
			line += "\x00" + caps
		}
		b.Write(pktLine([]byte(line + "\n")))
	}
	b.Write(pktFlush)
	return b.Bytes(), nil
}

// mirrorRefs returns the mirror's branches and tags and the objects they name.
func (g *Gate) mirrorRefs(ctx context.Context, r *remote) (map[string]string, error) {
	out, err := g.run(ctx, gitCmd{dir: r.dir, args: []string{
		"for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/", "refs/tags/",
	}}, credential{})
	if err != nil {
		return nil, err
	}
	refs := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if oid, ref, ok := strings.Cut(line, " "); ok {
			refs[ref] = oid
		}
	}
	return refs, nil
}

func (g *Gate) objectFormat(ctx context.Context, dir string) (string, error) {
	out, err := g.run(ctx, gitCmd{dir: dir, args: []string{"rev-parse", "--show-object-format"}}, credential{})
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func zeroOID(format string) string {
	if format == "sha256" {
		return strings.Repeat("0", 64)
	}
	return strings.Repeat("0", 40)
}

func isZeroOID(s string) bool { return strings.Trim(s, "0") == "" }

func isOID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// readCommands reads the ref update commands and the client's
// capabilities. A request with no commands is git's probe (see
// receivePack): it returns none and no error.
// Shallow lines, which a client pushing from a shallow clone sends first,
// are skipped: the connectivity check against the full mirror stands in for
// receive-pack's shallow handling.
func readCommands(br *bufio.Reader) ([]*command, map[string]bool, error) {
	var cmds []*command
	caps := make(map[string]bool)
	var total int
	for {
		pkt, err := readPkt(br)
		if errors.Is(err, errFlush) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if total += len(pkt); total > maxCommandBytes {
			return nil, nil, fmt.Errorf("the ref updates take more than %s", formatBytes(maxCommandBytes))
		}
		line := strings.TrimSuffix(string(pkt), "\n")
		if strings.HasPrefix(line, "shallow ") {
			continue
		}
		if len(cmds) == 0 {
			var c string
			line, c, _ = strings.Cut(line, "\x00")
			for _, f := range strings.Fields(c) {
				caps[f] = true
			}
		}
		f := strings.Fields(line)
		if len(f) != 3 || !isOID(f[0]) || !isOID(f[1]) || len(f[0]) != len(f[1]) {
			return nil, nil, fmt.Errorf("malformed push command %d", len(cmds)+1)
		}
		if len(f[2]) > maxRefBytes {
			return nil, nil, fmt.Errorf("push command %d: ref name longer than %d bytes", len(cmds)+1, maxRefBytes)
		}
		cmds = append(cmds, &command{old: f[0], new: f[1], ref: f[2], n: len(cmds) + 1})
		if len(cmds) > 10000 {
			return nil, nil, errors.New("too many ref updates in one push")
		}
	}
	return cmds, caps, nil
}

// receivePack handles a push: it unpacks the objects into a quarantine
// directory, checks every ref update against the gate's rules, scans the new
// commits with gitleaks, and only if all of that passes pushes them upstream
// with the gate's credential. The client gets git's report-status, with the
// gate's explanations as "remote:" lines.
func (g *Gate) receivePack(w http.ResponseWriter, req *http.Request, r *remote) {
	start := time.Now()
	body, err := requestBody(req)
	if err != nil {
		httpError(w, http.StatusBadRequest, "git gate: "+err.Error())
		return
	}
	defer body.Close()
	// The commands come first, at most 10000 of them, then the pack,
	// which pushLimit bounds by itself.
	br := bufio.NewReaderSize(http.MaxBytesReader(w, body, g.maxPushBytes+maxCommandBytes), 64<<10)
	cmds, caps, err := readCommands(br)
	if err != nil {
		httpError(w, http.StatusBadRequest, "git gate: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-git-receive-pack-result")
	w.Header().Set("Cache-Control", "no-cache")
	if len(cmds) == 0 {
		// git's probe RPC: before it sends a request body larger than
		// http.postBuffer (1 MiB by default) in chunks, git POSTs a body
		// of one flush packet to learn whether the request will go
		// through (remote-curl.c, probe_rpc). receive-pack given no
		// commands writes nothing, so git-http-backend answers 200 with
		// an empty result, and so does the gate.
		return
	}
	sb := &sideband{w: w, enabled: caps["side-band-64k"], clean: g.scanner.withhold}

	pack := &pushLimit{r: br, limit: g.maxPushBytes}
	res := g.processPush(req.Context(), r, cmds, pack, sb)
	if res.tooLarge {
		// Let the client finish sending, so that it reads the refusal
		// instead of a broken connection; the request bound stops it.
		_, _ = io.Copy(io.Discard, br)
	}

	var rep bytes.Buffer
	if res.unpackErr != nil {
		rep.Write(pktLine([]byte("unpack " + oneLine(g.scanner.withhold(res.unpackErr.Error())) + "\n")))
	} else {
		rep.Write(pktLine([]byte("unpack ok\n")))
	}
	for _, c := range cmds {
		if c.reason == "" {
			rep.Write(pktLine([]byte("ok " + c.ref + "\n")))
		} else {
			rep.Write(pktLine([]byte("ng " + c.ref + " " + oneLine(g.scanner.withhold(c.reason)) + "\n")))
		}
	}
	rep.Write(pktFlush)
	sb.write(1, rep.Bytes())
	if err := sb.finish(); err != nil {
		g.log.Warn("write push report", "remote", r.Name, "error", err.Error())
	}
	g.logPush(r, cmds, res, start)
}

// maxCommandBytes bounds the ref commands before a push's pack, and
// maxRefBytes one ref name: a longer one is refused before it is echoed,
// scanned or logged anywhere.
const (
	maxCommandBytes = 2 << 20
	maxRefBytes     = 1024
)

// pushLimit reads a push's pack and fails once it has read more than
// limit bytes, remembering that it did.
type pushLimit struct {
	r        io.Reader
	n, limit int64
	exceeded bool
}

func (p *pushLimit) Read(b []byte) (int, error) {
	if p.n > p.limit {
		p.exceeded = true
		return 0, &PushTooLargeError{Size: p.n, Limit: p.limit, Pack: true}
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

// pushResult is what a push came to, beyond each command's reason.
type pushResult struct {
	unpackErr error     // the pack could not be stored
	findings  []Finding // the secret scan's
	upstream  string    // upstream's own messages
	tooLarge  bool      // refused for its size
}

// processPush does the work of receivePack and records each command's
// outcome in its reason field.
func (g *Gate) processPush(ctx context.Context, r *remote, cmds []*command, pack *pushLimit, sb *sideband) pushResult {
	refuseAll := func(reason string) {
		for _, c := range cmds {
			if c.reason == "" {
				c.reason = reason
			}
		}
	}
	format, err := g.objectFormat(ctx, r.dir)
	if err != nil {
		refuseAll("git gate: internal error")
		return pushResult{unpackErr: err}
	}
	if len(cmds[0].old) != len(zeroOID(format)) {
		refuseAll("object format mismatch")
		return pushResult{unpackErr: fmt.Errorf("the repository uses %s object names", format)}
	}
	q, err := os.MkdirTemp(filepath.Join(r.dir, "objects"), "incoming-")
	if err != nil {
		refuseAll("git gate: internal error")
		return pushResult{unpackErr: fmt.Errorf("create quarantine: %w", err)}
	}
	defer os.RemoveAll(q)
	qenv := []string{
		"GIT_OBJECT_DIRECTORY=" + q,
		"GIT_ALTERNATE_OBJECT_DIRECTORIES=" + filepath.Join(r.dir, "objects"),
	}
	if slices.ContainsFunc(cmds, func(c *command) bool { return !c.isDelete() }) {
		if err := os.Mkdir(filepath.Join(q, "pack"), 0o700); err != nil {
			refuseAll("git gate: internal error")
			return pushResult{unpackErr: fmt.Errorf("create quarantine: %w", err)}
		}
		// The pack is read and its sizes checked on its way to a file
		// in the quarantine, before index-pack inflates anything.
		f, err := os.CreateTemp(q, "push-*.pack")
		if err != nil {
			refuseAll("git gate: internal error")
			return pushResult{unpackErr: fmt.Errorf("create quarantine: %w", err)}
		}
		defer f.Close()
		err = checkPack(pack, f, hashLen(format), g.maxPushBytes)
		var tl *PushTooLargeError
		if pack.exceeded {
			tl = &PushTooLargeError{Size: pack.n, Limit: g.maxPushBytes, Pack: true}
		} else {
			errors.As(err, &tl)
		}
		if tl != nil {
			sb.message("git-gate: PUSH REFUSED: %s; nothing was forwarded.", tl)
			refuseAll("push too large for the gate's secret scan")
			return pushResult{tooLarge: true}
		}
		if err != nil {
			refuseAll("unpacker error")
			return pushResult{unpackErr: fmt.Errorf("unpack: malformed pack: %w", err)}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			refuseAll("git gate: internal error")
			return pushResult{unpackErr: err}
		}
		_, err = g.run(ctx, gitCmd{dir: r.dir, env: qenv, stdin: f, args: []string{
			"index-pack", "--stdin", "--fix-thin", "--strict", fmt.Sprintf("--max-input-size=%d", g.maxPushBytes+1),
		}}, credential{})
		if err != nil {
			refuseAll("unpacker error")
			return pushResult{unpackErr: fmt.Errorf("unpack: %w", err)}
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if err := g.checkCommands(ctx, r, cmds, qenv); err != nil {
		refuseAll("git gate: " + err.Error())
		return pushResult{}
	}
	for _, c := range cmds {
		if c.reason != "" {
			sb.message("git-gate: %s refused: %s", c.ref, c.reason)
		}
	}
	live := slices.DeleteFunc(slices.Clone(cmds), func(c *command) bool { return c.reason != "" })
	if len(live) == 0 {
		return pushResult{}
	}

	findings, stats, err := g.scanPush(ctx, r.dir, qenv, live, g.maxPushBytes)
	var tl *PushTooLargeError
	if errors.As(err, &tl) {
		sb.message("git-gate: PUSH REFUSED: %s; nothing was forwarded.", tl)
		refuseAll("push too large for the gate's secret scan")
		return pushResult{tooLarge: true}
	}
	if err != nil {
		sb.message("git-gate: the secret scan failed, so nothing was forwarded: %s", oneLine(err.Error()))
		refuseAll("secret scan failed; nothing was forwarded")
		return pushResult{}
	}
	if len(findings) > 0 {
		reportFindings(sb, findings)
		refuseAll(fmt.Sprintf("secret scan found %d leak(s); nothing was forwarded", len(findings)))
		return pushResult{findings: findings}
	}
	// Sent even to a client that asked for quiet (git does for a push
	// without a terminal): it is the one line that shows a push really
	// went through the gate's scan.
	sb.message("git-gate: secret scan clean (%d commit(s), %d new object(s), %s scanned)", stats.commits, stats.objects, formatBytes(stats.bytes))

	upstream, err := g.pushUpstream(ctx, r, live, qenv)
	if upstream != "" {
		for _, l := range strings.Split(strings.TrimSpace(upstream), "\n") {
			sb.message("upstream: %s", l)
		}
	}
	if err != nil {
		sb.message("git-gate: forwarding to upstream failed: %s", oneLine(err.Error()))
		refuseAll("upstream push failed")
		return pushResult{upstream: upstream}
	}
	if err := g.adoptPush(ctx, r, live, qenv); err != nil {
		// Upstream has the push; the mirror catches up on the next refresh.
		g.log.Warn("update mirror after push", "remote", r.Name, "error", err.Error())
	}
	return pushResult{upstream: upstream}
}

// checkCommands applies the gate's ref rules, setting the reason of every
// command they refuse. It returns an error only when the checks themselves
// could not run.
func (g *Gate) checkCommands(ctx context.Context, r *remote, cmds []*command, qenv []string) error {
	refs, err := g.mirrorRefs(ctx, r)
	if err != nil {
		return err
	}
	seen := make(map[string]bool)
	var checkObjs []string
	for _, c := range cmds {
		if seen[c.ref] {
			c.reason = "ref named twice in one push"
			continue
		}
		seen[c.ref] = true
		if err := checkRefName(c.ref); err != nil {
			c.reason = err.Error()
			continue
		}
		cur, exists := refs[c.ref]
		switch {
		case c.isCreate() && c.isDelete():
			c.reason = "nothing to do"
		case c.isCreate() && exists:
			c.reason = "already exists upstream; fetch first"
		case !c.isCreate() && !exists:
			c.reason = "no longer exists upstream; fetch first"
		case !c.isCreate() && cur != c.old:
			c.reason = "stale info: upstream has moved; fetch first"
		case c.isDelete() && r.protected(c.ref) != "":
			c.reason = "deleting protected " + r.protected(c.ref) + " " + shortRef(c.ref) + " is not allowed"
		case !c.isCreate() && !c.isDelete() && r.protected(c.ref) == "tag":
			c.reason = "moving protected tag " + shortRef(c.ref) + " is not allowed"
		}
		if c.reason == "" && !c.isDelete() {
			checkObjs = append(checkObjs, c.new)
		}
	}
	if len(checkObjs) == 0 {
		return nil
	}
	// Every new object must be complete: all it reaches is in the mirror or
	// in this push.
	args := append(append([]string{"rev-list", "--objects", "--quiet"}, checkObjs...), "--not", "--all")
	if _, err := g.run(ctx, gitCmd{dir: r.dir, env: qenv, args: args}, credential{}); err != nil {
		for _, c := range cmds {
			if c.reason == "" && !c.isDelete() {
				c.reason = "missing necessary objects"
			}
		}
		return nil
	}
	types, err := g.objectTypes(ctx, r.dir, qenv, checkObjs)
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if c.reason != "" || c.isDelete() {
			continue
		}
		t := types[c.new]
		switch {
		case strings.HasPrefix(c.ref, "refs/heads/") && t.kind != "commit":
			c.reason = "a branch must point to a commit, not a " + t.kind
			continue
		case !t.peelsToCommit:
			c.reason = "a tag must point to a commit or an annotated tag of one"
			continue
		}
		if c.isCreate() {
			continue
		}
		ff, err := g.isAncestor(ctx, r.dir, qenv, c.old, c.new)
		if err != nil {
			return err
		}
		if !ff && r.protected(c.ref) == "branch" {
			c.reason = "non-fast-forward (force) push to protected branch " + shortRef(c.ref) + " is not allowed"
		}
	}
	return nil
}

type objType struct {
	kind          string
	peelsToCommit bool
}

// objectTypes returns the type of each object and whether it peels to a commit.
func (g *Gate) objectTypes(ctx context.Context, dir string, qenv, oids []string) (map[string]objType, error) {
	var in strings.Builder
	for _, o := range oids {
		in.WriteString(o + "\n" + o + "^{commit}\n")
	}
	out, err := g.run(ctx, gitCmd{dir: dir, env: qenv, stdin: strings.NewReader(in.String()),
		args: []string{"cat-file", "--batch-check=%(objecttype)"}}, credential{})
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2*len(oids) {
		return nil, fmt.Errorf("cat-file: %d answers for %d questions", len(lines), 2*len(oids))
	}
	types := make(map[string]objType)
	for i, o := range oids {
		types[o] = objType{kind: lines[2*i], peelsToCommit: lines[2*i+1] == "commit"}
	}
	return types, nil
}

// isAncestor reports whether a is an ancestor of b.
func (g *Gate) isAncestor(ctx context.Context, dir string, qenv []string, a, b string) (bool, error) {
	_, err := g.run(ctx, gitCmd{dir: dir, env: qenv, args: []string{"merge-base", "--is-ancestor", a, b}}, credential{})
	if err == nil {
		return true, nil
	}
	if exitCode(err) == 1 {
		return false, nil
	}
	return false, err
}

// checkRefName accepts branches and tags whose names git itself accepts
// (refs.c, check_refname_component, and `git check-ref-format --branch`)
// and that confuse no tool that reads them. It refuses:
//   - anything but refs/heads/<name> and refs/tags/<name>;
//   - what git refuses: an empty component or one that starts with "." or
//     ends with ".lock", "..", "@{", a name that is "@" or ends with "/"
//     or ".", ASCII control characters, space and any of ~ ^ : ? * [ \;
//   - what confuses: a name that is HEAD or has a HEAD component
//     (refs/heads/HEAD shadows the symbolic HEAD), that starts with
//     "refs/" again or "-" (read as an option), or that looks like an
//     object name (40 or 64 hex digits);
//   - what misleads a reader: bytes that are not UTF-8, and Unicode
//     control and format characters (bidirectional overrides, zero-width
//     characters).
//
// Its error does not repeat the name: the client already has it, and the
// gate's log must not hold it (it may be a secret).
func checkRefName(ref string) error {
	var name string
	switch {
	case strings.HasPrefix(ref, "refs/heads/"):
		name = ref[len("refs/heads/"):]
	case strings.HasPrefix(ref, "refs/tags/"):
		name = ref[len("refs/tags/"):]
	default:
		return errors.New("the git gate only accepts pushes to branches (refs/heads/) and tags (refs/tags/)")
	}
	invalid := func(why string) error { return errors.New("invalid ref name: " + why) }
	switch {
	case name == "":
		return invalid("empty")
	case len(ref) > maxRefBytes:
		return invalid(fmt.Sprintf("longer than %d bytes", maxRefBytes))
	case !utf8.ValidString(ref):
		return invalid("not UTF-8")
	case strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, "."):
		return invalid(`ends with "/" or "."`)
	case strings.Contains(ref, ".."):
		return invalid(`contains ".."`)
	case strings.Contains(ref, "@{"):
		return invalid(`contains "@{"`)
	case name == "@":
		return invalid(`is "@"`)
	case strings.HasPrefix(name, "-"):
		return invalid(`starts with "-"`)
	case strings.HasPrefix(name, "refs/"):
		return invalid(`starts with "refs/" again`)
	case isOID(name):
		return invalid("looks like an object name")
	}
	for _, comp := range strings.Split(name, "/") {
		switch {
		case comp == "":
			return invalid("has an empty component")
		case strings.HasPrefix(comp, "."):
			return invalid(`has a component that starts with "."`)
		case strings.HasSuffix(comp, ".lock"):
			return invalid(`has a component that ends with ".lock"`)
		case comp == "HEAD":
			return invalid("HEAD is not a branch or tag name")
		}
	}
	for _, c := range ref {
		switch {
		case c < 0x20 || c == 0x7f || unicode.Is(unicode.Cc, c):
			return invalid("contains a control character")
		case unicode.Is(unicode.Cf, c):
			return invalid("contains an invisible formatting character")
		case strings.ContainsRune(" ~^:?*[\\", c):
			return invalid(fmt.Sprintf("contains %q", c))
		}
	}
	return nil
}

// protected says whether ref is a protected "branch" (one matching
// r.Protected) or "tag" (matching r.ProtectedTags), or "" for neither.
// Both lists hold names or path.Match patterns ("release/*", "v*").
func (r *remote) protected(ref string) string {
	match := func(patterns []string, name string) bool {
		for _, p := range patterns {
			if m, err := path.Match(p, name); p == name || err == nil && m {
				return true
			}
		}
		return false
	}
	if name, ok := strings.CutPrefix(ref, "refs/heads/"); ok && match(r.Protected, name) {
		return "branch"
	}
	if name, ok := strings.CutPrefix(ref, "refs/tags/"); ok && match(r.ProtectedTags, name) {
		return "tag"
	}
	return ""
}

func shortRef(ref string) string {
	if s, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return s
	}
	return strings.TrimPrefix(ref, "refs/tags/")
}

// oneLine makes s fit on one protocol line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

// reportFindings tells the client what the scan found: rule, file, line and
// commit, never the matched text.
func reportFindings(sb *sideband, findings []Finding) {
	sb.message("git-gate: PUSH REFUSED: gitleaks found %d leak(s) in the new commits; nothing was forwarded upstream.", len(findings))
	for _, f := range findings {
		sb.message("git-gate:   %s", f)
	}
	sb.message("git-gate: remove the secrets from these commits (git commit --amend, git rebase -i), rotate any real")
	sb.message("git-gate: credential that was committed, and push again. gitleaks:allow comments and")
	sb.message("git-gate: .gitleaksignore files are not honoured by the gate.")
}

// pushUpstream forwards the commands upstream with the gate's credential,
// each guarded by a lease on the value the gate checked, and records
// upstream's per-ref verdict. It returns upstream's messages.
func (g *Gate) pushUpstream(ctx context.Context, r *remote, cmds []*command, qenv []string) (string, error) {
	cred, err := credentialFor(r)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, g.upstreamTimeout)
	defer cancel()
	args := []string{"push", "--porcelain", "--no-verify"}
	for _, c := range cmds {
		if c.isCreate() {
			args = append(args, "--force-with-lease="+c.ref+":")
		} else {
			args = append(args, "--force-with-lease="+c.ref+":"+c.old)
		}
	}
	args = append(args, "--", r.URL)
	for _, c := range cmds {
		if c.isDelete() {
			args = append(args, ":"+c.ref)
		} else {
			args = append(args, c.new+":"+c.ref)
		}
	}
	var out bytes.Buffer
	_, runErr := g.run(ctx, gitCmd{dir: r.dir, env: qenv, stdout: &out, args: args}, cred)
	verdicts := parsePorcelain(out.String())
	if runErr != nil && len(verdicts) == 0 {
		return "", runErr
	}
	for _, c := range cmds {
		v, ok := verdicts[c.ref]
		switch {
		case !ok && runErr != nil:
			c.reason = "upstream push failed"
		case !ok:
			c.reason = "upstream did not report on this ref"
		case v.flag == '!':
			c.reason = "upstream rejected: " + v.summary
		}
	}
	if runErr != nil {
		return runErr.Error(), nil
	}
	return "", nil
}

type verdict struct {
	flag    byte
	summary string
}

// parsePorcelain reads `git push --porcelain` output: one
// "<flag>\t<from>:<to>\t<summary>" line per ref.
func parsePorcelain(out string) map[string]verdict {
	v := make(map[string]verdict)
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 || len(f[0]) != 1 {
			continue
		}
		_, to, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		v[to] = verdict{flag: f[0][0], summary: f[2]}
	}
	return v
}

// adoptPush copies into the mirror what the accepted commands reach and
// it lacks, as one new pack made by `git pack-objects --revs`, and moves
// the mirror's refs the way upstream just accepted, so the next fetch
// through the gate needs nothing from upstream. Objects of the pushed pack
// that no accepted ref reaches are left in the quarantine, which is
// removed: a push cannot grow the mirror with objects nothing uses.
func (g *Gate) adoptPush(ctx context.Context, r *remote, cmds []*command, qenv []string) error {
	var upd, revs strings.Builder
	for _, c := range cmds {
		if c.reason != "" {
			continue
		}
		if c.isDelete() {
			fmt.Fprintf(&upd, "delete %s %s\n", c.ref, c.old)
		} else {
			fmt.Fprintf(&upd, "update %s %s %s\n", c.ref, c.new, c.old)
			revs.WriteString(c.new + "\n")
		}
	}
	if upd.Len() == 0 {
		return nil
	}
	if revs.Len() > 0 {
		refs, err := g.mirrorRefs(ctx, r)
		if err != nil {
			return err
		}
		for _, oid := range refs {
			revs.WriteString("^" + oid + "\n")
		}
		// Written straight into the mirror's pack directory (pack-objects
		// writes the index last), read from mirror and quarantine alike.
		if _, err := g.run(ctx, gitCmd{dir: r.dir, env: qenv, stdin: strings.NewReader(revs.String()), args: []string{
			"pack-objects", "--revs", "--quiet", filepath.Join(r.dir, "objects", "pack", "pack"),
		}}, credential{}); err != nil {
			return fmt.Errorf("copy pushed objects into the mirror: %w", err)
		}
	}
	_, err := g.run(ctx, gitCmd{dir: r.dir, stdin: strings.NewReader(upd.String()), args: []string{"update-ref", "--stdin"}}, credential{})
	return err
}

// logPush writes one log line for a push decision.
func (g *Gate) logPush(r *remote, cmds []*command, res pushResult, start time.Time) {
	var refs, refused []string
	for _, c := range cmds {
		refs = append(refs, c.ref)
		if c.reason != "" {
			refused = append(refused, c.ref+": "+c.reason)
		}
	}
	var fs []string
	for _, f := range res.findings {
		fs = append(fs, f.String())
	}
	attrs := []any{"remote", r.Name, "refs", refs, "ms", time.Since(start).Milliseconds()}
	if res.unpackErr != nil {
		attrs = append(attrs, "unpack_error", res.unpackErr.Error())
	}
	if len(fs) > 0 {
		attrs = append(attrs, "findings", fs)
	}
	if res.upstream != "" {
		attrs = append(attrs, "upstream", res.upstream)
	}
	if len(refused) > 0 {
		g.log.Warn("push refused", append(attrs, "refused", refused)...)
		return
	}
	g.log.Info("push forwarded", attrs...)
}
