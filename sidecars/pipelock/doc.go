// Package pipelock runs pipelock (github.com/luckyPipewrench/pipelock), a
// third-party egress proxy with DLP, as a bottle's egress sidecar: it
// renders pipelock's configuration from a plan (Render, CheckRules), finds
// and checks the pipelock binary on the host (Find, CheckVersion,
// CheckConfig), runs it on a loopback TCP port (Start, Process) and relays
// the sandbox's unix socket onto that port (Bridge).
//
// Everything here targets one pipelock release, Version. Its source was
// read at tag v2.3.0 (commit 7a3b7de4a555); comments cite it as
// path:line@v2.3.0. pipelock rejects unknown configuration keys
// (internal/config/load.go:33-37@v2.3.0), so moving to another release
// means re-checking every key Render writes and every command line this
// package runs.
package pipelock

// Version is the pipelock release bottle renders for and runs. It is the
// string a release build prints for --version (release builds set it from
// the tag without its "v": .goreleaser.yaml:24-30@v2.3.0). CheckVersion
// refuses any other.
const Version = "2.3.0"
