package egress

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// forceCountedCopy makes tunnels use the portable counted copy on Linux
// too; tests set it to cover that path.
var forceCountedCopy = false

// kernelProgress returns a function reporting the bytes c has received plus
// the bytes of c's sent data its peer acknowledged, from TCP_INFO, or nil
// when c is not a TCP connection or the kernel does not report these
// counters (before Linux 4.1).
func kernelProgress(c net.Conn) func() uint64 {
	if forceCountedCopy {
		return nil
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	const need = unsafe.Offsetof(unix.TCPInfo{}.Bytes_received) + unsafe.Sizeof(unix.TCPInfo{}.Bytes_received)
	read := func() (uint64, bool) {
		var info unix.TCPInfo
		size := uint32(unsafe.Sizeof(info))
		var errno unix.Errno
		if err := rc.Control(func(fd uintptr) {
			_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.IPPROTO_TCP, unix.TCP_INFO,
				uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
		}); err != nil || errno != 0 || uintptr(size) < need {
			return 0, false
		}
		return info.Bytes_acked + info.Bytes_received, true
	}
	if _, ok := read(); !ok {
		return nil
	}
	return func() uint64 {
		v, _ := read()
		return v
	}
}
