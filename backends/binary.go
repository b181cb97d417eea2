package backends

import (
	"debug/elf"
	"fmt"
)

// elfMachines maps Go architectures to ELF machines.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// CheckStaticLinux checks that exe is a static linux/arch ELF executable,
// which is what an empty image (the docker bundle) or a microVM can run
// bottle as. where names what runs it ("the sidecar bundle") and envVar
// the variable that points at another build; the error is one line that
// says how to fix it.
func CheckStaticLinux(exe, arch, where, envVar string) error {
	build := fmt.Sprintf("CGO_ENABLED=0 GOOS=linux GOARCH=%s go build ./cmd/bottle", arch)
	want, ok := elfMachines[arch]
	if !ok {
		return fmt.Errorf("%s runs on %s, for which bottle has no build; it supports amd64 and arm64", where, arch)
	}
	f, err := elf.Open(exe)
	if err != nil {
		return fmt.Errorf("%s runs a static linux/%s build of bottle, and %s is not one (%v); build one (%s) and set %s to it", where, arch, exe, err, build, envVar)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s is built for %s, but %s runs %s; set %s to a static linux/%s build (%s)", exe, f.Machine, where, arch, envVar, arch, build)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked, and %s cannot load its C library; build bottle with CGO_ENABLED=0 (CGO_ENABLED=0 go install ./cmd/bottle) or set %s to a static build", exe, where, envVar)
		}
	}
	return nil
}

// CheckStaticProgram checks that exe, a third-party program (program names
// it: "pipelock"), is a static linux/arch ELF executable that an empty
// image can run. envVar names the variable that points at another build.
func CheckStaticProgram(exe, arch, program, where, envVar string) error {
	want, ok := elfMachines[arch]
	if !ok {
		return fmt.Errorf("%s runs on %s; bottle supports amd64 and arm64", where, arch)
	}
	f, err := elf.Open(exe)
	if err != nil {
		return fmt.Errorf("%s runs a static linux/%s build of %s, and %s is not one (%v); set %s to one", where, arch, program, exe, err, envVar)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s is built for %s, but %s runs %s; set %s to a static linux/%s build of %s", exe, f.Machine, where, arch, envVar, arch, program)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked, and %s cannot load its C library; set %s to a static linux/%s build of %s (its release builds are static)", exe, where, envVar, arch, program)
		}
	}
	return nil
}
