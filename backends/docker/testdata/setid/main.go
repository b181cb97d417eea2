// setid runs in the agent container and tries, by raw syscalls, every way
// to leave a setuid or setgid file in a directory, and the ordinary mode
// changes that must keep working. It prints one line per attempt,
// "NAME ok" or "NAME ERRNO-NAME" (or "NAME skip" where the architecture
// lacks the syscall); the test reads the lines and, above all, the modes
// the files have on the host.
//
//	setid try DIR    every attempt, in DIR
//	setid euid       print the effective uid
//	setid open PATH  open PATH read-only
//	setid mknod PATH make a character device node (1:3) at PATH
//	setid mmapwrite PATH  overwrite PATH's first bytes through a shared
//	                      mapping (no write(2), no chmod)
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Syscall numbers that golang.org/x/sys would give, kept here so that the
// helper needs the standard library only. The same on amd64 and arm64.
const (
	sysOpenat2       = 437
	sysFchmodat2     = 452
	sysIOUringSetup  = 425
	sysIOUringEnter  = 426
	ioringOpOpenat   = 18
	ioringOffSQRing  = 0
	ioringOffCQRing  = 0x8000000
	ioringOffSQEs    = 0x10000000
	ioringEnterGetev = 1
	oTmpfile         = 0o20000000 | syscall.O_DIRECTORY
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: setid try DIR | euid | open PATH | mknod PATH")
	}
	switch os.Args[1] {
	case "try":
		try(os.Args[2])
	case "euid":
		fmt.Println("euid", os.Geteuid())
	case "open":
		fd, err := syscall.Open(os.Args[2], syscall.O_RDONLY, 0)
		report("open", err)
		if err == nil {
			syscall.Close(fd)
		}
	case "mknod":
		report("mknod-chr", syscall.Mknod(os.Args[2], syscall.S_IFCHR|0o666, 1<<8|3))
	case "mmapwrite":
		report("mmapwrite", mmapWrite(os.Args[2], []byte("AGENT")))
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "setid:", msg)
	os.Exit(2)
}

func report(name string, err error) {
	var errno syscall.Errno
	switch {
	case err == nil:
		fmt.Println(name, "ok")
	case errors.As(err, &errno):
		fmt.Println(name, errnoName(errno))
	default:
		fmt.Println(name, err)
	}
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EPERM:
		return "EPERM"
	case syscall.ENOSYS:
		return "ENOSYS"
	case syscall.EACCES:
		return "EACCES"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.EOPNOTSUPP:
		return "EOPNOTSUPP"
	}
	return fmt.Sprintf("errno-%d", int(e))
}

func sys(trap uintptr, a ...uintptr) error {
	var args [6]uintptr
	copy(args[:], a)
	_, _, e := syscall.Syscall6(trap, args[0], args[1], args[2], args[3], args[4], args[5])
	if e != 0 {
		return e
	}
	return nil
}

// pins keeps every string passed to a raw syscall reachable, so that the
// collector never frees one that only a uintptr still points to.
var pins []*byte

func cstr(s string) *byte {
	p, err := syscall.BytePtrFromString(s)
	if err != nil {
		fail(err.Error())
	}
	pins = append(pins, p)
	return p
}

// plain makes an ordinary file, mode 0644, to change the mode of.
func plain(path string) {
	if err := os.WriteFile(path, []byte("#!/bin/sh\nid\n"), 0o644); err != nil {
		fail(err.Error())
	}
}

func try(dir string) {
	at := func(name string) string { return filepath.Join(dir, name) }
	atFDCWD := ^uintptr(99) // AT_FDCWD, -100
	path := func(name string) uintptr { return uintptr(unsafe.Pointer(cstr(at(name)))) }

	// Changing the mode of an existing file.
	for _, c := range []struct {
		name string
		mode uint32
	}{{"chmod-suid", 0o4755}, {"chmod-sgid", 0o2755}, {"chmod-both", 0o6755}} {
		plain(at(c.name))
		report(c.name, syscall.Chmod(at(c.name), c.mode))
	}
	plain(at("fchmod-suid"))
	if f, err := os.OpenFile(at("fchmod-suid"), os.O_RDWR, 0); err == nil {
		report("fchmod-suid", syscall.Fchmod(int(f.Fd()), 0o4755))
		f.Close()
	} else {
		fail(err.Error())
	}
	plain(at("fchmodat-suid"))
	report("fchmodat-suid", sys(syscall.SYS_FCHMODAT, atFDCWD, path("fchmodat-suid"), 0o4755))
	plain(at("fchmodat-sgid"))
	report("fchmodat-sgid", sys(syscall.SYS_FCHMODAT, atFDCWD, path("fchmodat-sgid"), 0o2755))
	plain(at("fchmodat2-suid"))
	report("fchmodat2-suid", sys(sysFchmodat2, atFDCWD, path("fchmodat2-suid"), 0o4755, 0))

	// Creating a file with the bits.
	create := syscall.O_CREAT | syscall.O_WRONLY | syscall.O_EXCL | syscall.O_CLOEXEC
	closeFd := func(name string, fd uintptr, err error) {
		report(name, err)
		if err == nil {
			syscall.Close(int(fd))
		}
	}
	fdcall := func(trap uintptr, a ...uintptr) (uintptr, error) {
		var args [6]uintptr
		copy(args[:], a)
		r, _, e := syscall.Syscall6(trap, args[0], args[1], args[2], args[3], args[4], args[5])
		if e != 0 {
			return 0, e
		}
		return r, nil
	}
	fd, err := fdcall(syscall.SYS_OPENAT, atFDCWD, path("openat-suid"), uintptr(create), 0o4755)
	closeFd("openat-suid", fd, err)
	fd, err = fdcall(syscall.SYS_OPENAT, atFDCWD, path("openat-sgid"), uintptr(create), 0o2755)
	closeFd("openat-sgid", fd, err)
	// An unnamed file, linked in once it has its mode.
	fd, err = fdcall(syscall.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(cstr(dir))), uintptr(oTmpfile|syscall.O_WRONLY), 0o4755)
	report("openat-tmpfile-suid", err)
	if err == nil {
		// AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH; the /proc link does not.
		proc := uintptr(unsafe.Pointer(cstr(fmt.Sprintf("/proc/self/fd/%d", fd))))
		report("openat-tmpfile-link", sys(syscall.SYS_LINKAT, atFDCWD, proc, atFDCWD, path("openat-tmpfile-suid"), 0x400 /* AT_SYMLINK_FOLLOW */))
		syscall.Close(int(fd))
	}
	report("mknodat-suid", sys(syscall.SYS_MKNODAT, atFDCWD, path("mknodat-suid"), syscall.S_IFREG|0o4755, 0))
	report("mknodat-sgid", sys(syscall.SYS_MKNODAT, atFDCWD, path("mknodat-sgid"), syscall.S_IFREG|0o2755, 0))

	// The syscalls that amd64 has and arm64 does not; Go's own Chmod,
	// Open and Mknod use the *at ones.
	if runtime.GOARCH == "amd64" {
		const sysChmod, sysCreat, sysOpen, sysMknod = 90, 85, 2, 133
		plain(at("chmod-legacy-suid"))
		report("chmod-legacy-suid", sys(sysChmod, path("chmod-legacy-suid"), 0o4755))
		plain(at("chmod-legacy-sgid"))
		report("chmod-legacy-sgid", sys(sysChmod, path("chmod-legacy-sgid"), 0o2755))
		fd, err = fdcall(sysCreat, path("creat-suid"), 0o4755)
		closeFd("creat-suid", fd, err)
		fd, err = fdcall(sysOpen, path("open-suid"), uintptr(create), 0o4755)
		closeFd("open-suid", fd, err)
		fd, err = fdcall(sysOpen, path("open-sgid"), uintptr(create), 0o2755)
		closeFd("open-sgid", fd, err)
		report("mknod-suid", sys(sysMknod, path("mknod-suid"), syscall.S_IFREG|0o4755, 0))
		plain(at("ok-chmod-legacy-755"))
		report("ok-chmod-legacy-755", sys(sysChmod, path("ok-chmod-legacy-755"), 0o755))
		fd, err = fdcall(sysOpen, path("ok-open-644"), uintptr(create), 0o644)
		closeFd("ok-open-644", fd, err)
		fd, err = fdcall(sysCreat, path("ok-creat-600"), 0o600)
		closeFd("ok-creat-600", fd, err)
	} else {
		for _, n := range []string{"chmod-legacy-suid", "chmod-legacy-sgid", "creat-suid", "open-suid", "open-sgid", "mknod-suid", "ok-chmod-legacy-755", "ok-open-644", "ok-creat-600"} {
			fmt.Println(n, "skip")
		}
	}

	// openat2's mode is in a struct open_how {flags, mode, resolve}.
	how := [3]uint64{uint64(create), 0o4755, 0}
	fd, err = fdcall(sysOpenat2, atFDCWD, path("openat2-suid"), uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how))
	closeFd("openat2-suid", fd, err)
	runtime.KeepAlive(&how)

	ioURing(at("io_uring-suid"))

	// What must keep working.
	fd, err = fdcall(syscall.SYS_OPENAT, atFDCWD, path("ok-openat-644"), uintptr(create), 0o644)
	closeFd("ok-openat-644", fd, err)
	plain(at("ok-chmod-755"))
	report("ok-chmod-755", syscall.Chmod(at("ok-chmod-755"), 0o755))
	plain(at("ok-chmod-600"))
	report("ok-chmod-600", syscall.Chmod(at("ok-chmod-600"), 0o600))
	plain(at("ok-fchmodat-700"))
	report("ok-fchmodat-700", sys(syscall.SYS_FCHMODAT, atFDCWD, path("ok-fchmodat-700"), 0o700))
	plain(at("ok-fchmodat2-755"))
	report("ok-fchmodat2-755", sys(sysFchmodat2, atFDCWD, path("ok-fchmodat2-755"), 0o755, 0))
	report("ok-mknodat-640", sys(syscall.SYS_MKNODAT, atFDCWD, path("ok-mknodat-640"), syscall.S_IFREG|0o640, 0))
	report("ok-mkdir-1777", syscall.Mkdir(at("ok-mkdir-1777"), 0o777))
	report("ok-chmod-1777", syscall.Chmod(at("ok-mkdir-1777"), 0o1777))
}

// ioURing creates path with mode 04755 through an io_uring ring
// (IORING_OP_OPENAT), which no seccomp filter on openat sees.
func ioURing(path string) {
	var p struct {
		sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
		resv                                                                   [3]uint32
		sqOff                                                                  struct {
			head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
			userAddr                                                        uint64
		}
		cqOff struct {
			head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
			userAddr                                                        uint64
		}
	}
	r, _, e := syscall.Syscall(sysIOUringSetup, 1, uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		report("io_uring-suid", e)
		return
	}
	ring := int(r)
	defer syscall.Close(ring)
	sq, err := syscall.Mmap(ring, ioringOffSQRing, int(p.sqOff.array+p.sqEntries*4), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		report("io_uring-suid", err)
		return
	}
	cq, err := syscall.Mmap(ring, ioringOffCQRing, int(p.cqOff.cqes+p.cqEntries*16), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		report("io_uring-suid", err)
		return
	}
	sqes, err := syscall.Mmap(ring, ioringOffSQEs, int(p.sqEntries*64), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		report("io_uring-suid", err)
		return
	}
	name := cstr(path)
	// The submission queue entry: opcode, fd (dirfd), addr (path), len
	// (mode), open_flags.
	sqe := sqes[:64]
	clear(sqe)
	sqe[0] = ioringOpOpenat
	atFDCWD := int32(-100)
	*(*int32)(unsafe.Pointer(&sqe[4])) = atFDCWD
	*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(uintptr(unsafe.Pointer(name)))
	*(*uint32)(unsafe.Pointer(&sqe[24])) = 0o4755
	*(*uint32)(unsafe.Pointer(&sqe[28])) = uint32(syscall.O_CREAT | syscall.O_WRONLY | syscall.O_EXCL | syscall.O_CLOEXEC)
	mask := *(*uint32)(unsafe.Pointer(&sq[p.sqOff.ringMask]))
	tail := (*uint32)(unsafe.Pointer(&sq[p.sqOff.tail]))
	t := atomic.LoadUint32(tail)
	*(*uint32)(unsafe.Pointer(&sq[p.sqOff.array+(t&mask)*4])) = 0
	atomic.StoreUint32(tail, t+1)
	_, _, e = syscall.Syscall6(sysIOUringEnter, uintptr(ring), 1, 1, ioringEnterGetev, 0, 0)
	runtime.KeepAlive(name)
	if e != 0 {
		report("io_uring-suid", e)
		return
	}
	cmask := *(*uint32)(unsafe.Pointer(&cq[p.cqOff.ringMask]))
	head := (*uint32)(unsafe.Pointer(&cq[p.cqOff.head]))
	h := atomic.LoadUint32(head)
	res := *(*int32)(unsafe.Pointer(&cq[p.cqOff.cqes+(h&cmask)*16+8]))
	atomic.StoreUint32(head, h+1)
	if res < 0 {
		report("io_uring-suid", syscall.Errno(-res))
		return
	}
	syscall.Close(int(res))
	report("io_uring-suid", nil)
}

// mmapWrite replaces the first bytes of path through a MAP_SHARED
// mapping: the kernel strips setuid and setgid bits on write(2),
// truncate and fallocate, but not on a store through a mapping.
func mmapWrite(path string, b []byte) error {
	fd, err := syscall.Open(path, syscall.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	m, err := syscall.Mmap(fd, 0, len(b), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return err
	}
	copy(m, b)
	return syscall.Munmap(m)
}
