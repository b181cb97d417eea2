package guest

// SetIDBits are S_ISUID and S_ISGID. A file the agent makes setuid or
// setgid in a shared workspace keeps the bit on the host, where running
// it gains the file owner's uid (root when bottle runs as root): a chmod
// of one's own file needs no capability, so dropping every capability
// does not stop it. Both backends refuse these bits with seccomp: the
// docker backend in the agent's profile, bottle guest in the microVM.
const SetIDBits = 0o6000

// ModeArg is, for each syscall that sets a file's mode from an argument,
// the index of that argument, from the kernel's signatures
// (include/linux/syscalls.h, the same for x86_64, x86, x32, arm64 and
// arm). arm64 has no chmod, creat, open or mknod.
var ModeArg = map[string]uint{
	"chmod":     1, // chmod(filename, mode)
	"fchmod":    1, // fchmod(fd, mode)
	"fchmodat":  2, // fchmodat(dfd, filename, mode)
	"fchmodat2": 2, // fchmodat2(dfd, filename, mode, flags)
	"creat":     1, // creat(pathname, mode)
	"open":      2, // open(filename, flags, mode)
	"openat":    3, // openat(dfd, filename, flags, mode)
	"mknod":     1, // mknod(filename, mode, dev)
	"mknodat":   2, // mknodat(dfd, filename, mode, dev)
}
