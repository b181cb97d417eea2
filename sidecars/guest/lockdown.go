package guest

import (
	"encoding/json"
	"fmt"
)

// LockdownFlag is the hidden `bottle guest` flag that makes it apply a
// Lockdown (given as JSON) to itself, as pid 1 of a PID namespace, and run
// the command given after "--" as its child (see ExecLocked): Run starts
// the command this way when its Lockdown is not empty.
const LockdownFlag = "--lockdown-exec"

// Lockdown is what bottle guest does to the command's view of the file
// system, and to its privileges, before the command runs. It is for a
// sandbox where bottle guest starts as root with every capability (a
// smolvm workload); the docker backend does the same with the container's
// own options instead.
//
// The command gets a mount namespace and a PID namespace of its own (with
// a /proc of it), under bottle guest as pid 1, and starts in its working
// directory as seen through the mounts below, with no descriptor but its
// stdio. In the mount namespace:
//   - each of NoSuid (the mount points of the profile's mounts) is
//     remounted nosuid and nodev, keeping its other flags;
//   - each of Binds, in order (parents first, see backends.Protect), is
//     bound onto itself: read-only, nosuid and nodev for a protected path;
//     as it is for a directory above one, which only pins it (a mount
//     point cannot be renamed or removed, so .git cannot be replaced).
//
// With DropCaps the command then runs with no_new_privs and no
// capabilities in its bounding, inheritable or ambient sets, so that it
// cannot undo the mounts, regain a capability through a file, or gain one
// through a setuid file; a seccomp filter refuses setuid and setgid modes
// on any file it writes (they would stay on the host's side of a shared
// directory); and the kernel's interfaces that root may write
// without a capability are closed to it: /proc/sys and the other
// /proc files docker makes read-only are read-only, the sensitive ones
// docker masks are masked, and /dev is a fresh one with only null, zero,
// full, random, urandom, tty, pts and shm (no disks).
//
// With User ("UID:GID") the command runs as that user and group, with a
// passwd and group entry named bottle (bound over the image's) and a
// private tmpfs HOME at Home.
type Lockdown struct {
	NoSuid   []string `json:"nosuid,omitempty"`
	Binds    []Bind   `json:"binds,omitempty"`
	DropCaps bool     `json:"drop_caps,omitempty"`
	User     string   `json:"user,omitempty"`
	Home     string   `json:"home,omitempty"`
	// HomeSeed is copied into HOME as the command's user (SeedHome), once
	// it has become that user.
	HomeSeed string `json:"home_seed,omitempty"`
}

// Bind is one path of a Lockdown, bound onto itself.
type Bind struct {
	Path     string `json:"path"`
	ReadOnly bool   `json:"readonly,omitempty"`
}

// Empty reports whether l asks for nothing.
func (l Lockdown) Empty() bool {
	return len(l.NoSuid) == 0 && len(l.Binds) == 0 && !l.DropCaps && l.User == ""
}

// ParseLockdown reads a Lockdown written by String.
func ParseLockdown(s string) (Lockdown, error) {
	var l Lockdown
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return Lockdown{}, fmt.Errorf("lockdown %q: %w", s, err)
	}
	return l, nil
}

// String returns l as the JSON ParseLockdown reads.
func (l Lockdown) String() string {
	b, _ := json.Marshal(l)
	return string(b)
}
