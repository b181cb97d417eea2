// Package gitgate is bottle's git gate: a smart-HTTP git server that fronts
// each upstream repository of a bottle through a local mirror, holds the
// upstream credentials, and forwards a push only after a gitleaks scan of
// everything it would add upstream finds nothing (DESIGN.md §2 invariants 3
// and 4).
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
//  3. everything the push would add upstream is scanned with gitleaks
//     (see "The scan");
//  4. only if nothing was found, the commands are pushed upstream with the
//     gate's credential, each with --force-with-lease on the value checked in
//     step 2, and upstream's verdict per ref is reported back; the quarantined
//     pack then moves into the mirror.
//
// Before step 1 the pack is read on its way to a file (checkPack): every
// object's size, and every delta's result size, counts against
// Config.MaxPushBytes, so index-pack never inflates more than that. A
// request of one flush packet is git's probe before a large push and is
// answered 200, as git-http-backend does. Protected tags (every tag by
// default) may be created but not moved or deleted; ref names git refuses
// or that confuse tools (HEAD, invisible characters, …) are refused.
//
// Findings are reported as "remote:" lines and "ng <ref> <reason>" statuses
// naming rule, place, line and commit — never the secret — and upstream is
// left unchanged. Every log line and every message of the gate passes
// through the detector, and what matches is withheld: git's own errors
// quote what a client sent.
//
// # The scan
//
// gitleaks (github.com/zricethezav/gitleaks/v8) runs as a library with the
// gate's own configuration: the built-in default rules, read by the gate,
// never a .gitleaks.toml or GITLEAKS_CONFIG from anywhere; inline
// "gitleaks:allow" comments are ignored (Detector.IgnoreGitleaksAllow), no
// .gitleaksignore or baseline is loaded, and allowlist conditions the
// pushed content chooses (paths, whole lines) are removed.
//
// It reads every object the push makes reachable that no upstream branch
// or tag reaches (git rev-list --objects), as stored, not as a diff: each
// commit and annotated tag object whole (headers, identities, signatures,
// message, also decoded from a commit's encoding header), through tags of
// tags; each tree's entry names; each blob's bytes in full, binary or not,
// with its decoded views (UTF-16 with a byte-order mark, NUL bytes
// removed, gzip and zip members and names); and every pushed ref name.
// Large texts are scanned in overlapping pieces on every CPU. A finding in
// a file whose same path in the upstream commit the push builds on already
// held the same secret is an edit of that file and is not reported.
// Anything that cannot be read or decoded refuses the push.
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
