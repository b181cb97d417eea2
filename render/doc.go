// Package render turns a validated plan into smolvm's Smolfile (TOML), the
// smolmachines backend's one rendered file. (pipelock's configuration is
// rendered by its sidecar unit, package sidecars/pipelock.)
//
// Every renderer is a pure function: it reads the plan and its arguments,
// touches no file, process or network, and returns the bytes to write or an
// error. Output is marshalled from dedicated structs whose field order fixes
// the key order, never assembled from string templates, so a hostile value
// in a profile can only ever become a quoted scalar, never a new key. Each
// renderer targets one pinned version of its tool (SmolvmVersion); a rule the tool cannot express exactly is an error, never
// a silent widening.
package render
