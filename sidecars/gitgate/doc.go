// Package gitgate is bottle's git gate: a smart-HTTP git server that fronts
// each upstream repository of a bottle through a local mirror, holds the
// upstream credentials, and forwards a push only after a gitleaks scan of
// exactly the new commits finds nothing (DESIGN.md §2 invariants 3 and 4).
//
// # URLs and the sandbox's git config
//
// Remote <name> is served at <gate URL>/<name>.git (RemotePath), for example
// http://git-gate:8080/origin.git in docker or http://127.0.0.1:<port>/origin.git
// through the smolmachines relay. The sandbox's git config rewrites the
// upstream URL onto it, for fetches and pushes alike:
//
//	[url "http://git-gate:8080/origin.git"]
//		insteadOf = git@github.com:acme/app.git
//
// # What happens on fetch and push
//
// Every fetch and push starts with GET info/refs; the gate first brings the
// mirror up to date from upstream (a bare clone the first time, then a
// pruning fetch of branches and tags) and answers 502 with a text body, which
// git prints as "remote:" lines, when upstream cannot be reached: it never
// serves a possibly stale mirror. Fetches are then served by git upload-pack
// from the mirror.
//
// A push (POST git-receive-pack) is handled by the gate itself:
//
//  1. the ref commands are parsed and the pack is indexed with
//     `git index-pack --strict --fix-thin` into a quarantine directory, so
//     nothing pushed is visible in the mirror until upstream has accepted it;
//  2. under the remote's lock, each command is checked: only refs/heads/ and
//     refs/tags/; the old value must equal the mirror's (else "fetch first");
//     every new object must be complete; deleting a protected branch, or a
//     non-fast-forward update of one, is refused (Protected entries are
//     branch names or path.Match patterns);
//  3. the commits not reachable from any mirror ref (for an existing branch,
//     old..new less what upstream already has) are scanned with gitleaks:
//     each commit's diff to its parent, a merge's lines that are new against
//     every parent, every commit message and new annotated tag;
//  4. only if nothing was found, the commands are pushed upstream with the
//     gate's credential, each with --force-with-lease on the value checked in
//     step 2, and upstream's verdict per ref is reported back; the quarantined
//     pack then moves into the mirror.
//
// Findings are reported as "remote:" lines and "ng <ref> <reason>" statuses
// naming rule, file, line and commit — never the secret — and upstream is
// left unchanged.
//
// # The scan
//
// gitleaks (github.com/zricethezav/gitleaks/v8) runs as a library on patches
// the gate produces with git itself, with the gate's own configuration: the
// built-in default rules, read by the gate, never a .gitleaks.toml or
// GITLEAKS_CONFIG from anywhere; inline "gitleaks:allow" comments are ignored
// (Detector.IgnoreGitleaksAllow) and no .gitleaksignore or baseline is
// loaded; allowlist entries that skip whole paths (images, lock files,
// vendor/ and node_modules/ in the default rules) are removed, since a
// pushed repository chooses its own file names. Diffs are made without
// textconv, external diff drivers or the pushed trees' .gitattributes (a
// "-diff" attribute would hide a file's text). Each added run of lines is
// scanned as one fragment that starts at its line number in the file, so
// findings carry real paths and line numbers; the number of added lines
// parsed is checked against git's own count, and any shortfall refuses the
// push. Binary files are checked against gitleaks' path rules only, as
// gitleaks itself does.
//
// # Why the git binary
//
// The gate runs the real git (upload-pack, index-pack, rev-list, log, push)
// rather than a pure-Go implementation. go-git's receive-pack has no
// quarantine, hooks or --strict object checks, and reimplementing pack
// indexing, thin-pack completion, connectivity checks, protocol v2 fetches
// and OpenSSH/libcurl transports with their host-key and proxy behaviour in
// the one component that must fail closed would trade a heavier image for
// a larger, less tested attack surface. The gate parses only the small,
// fixed part of the push protocol it must control (the ref commands and the
// report), and leaves every pack and transport to git. The cost is that the
// docker bundle image needs git and OpenSSH, so CI builds it on a Debian
// base made with debootstrap rather than FROM scratch.
//
// # Credentials
//
// An ssh upstream is reached with GIT_SSH_COMMAND naming only the gate's key
// and known_hosts file (StrictHostKeyChecking=yes, BatchMode, no agent, no
// user ssh config). An https upstream gets the token of the host environment
// variable TokenEnv as an http.<url>.extraHeader passed through GIT_CONFIG_*
// variables, never on a command line; it is redacted from any git output the
// gate relays. Every git the gate runs gets a clean environment: no system or
// global config, no credential helpers, no prompts.
package gitgate
