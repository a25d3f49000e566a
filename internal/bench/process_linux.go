package bench

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// memFile returns a file in memory of size bytes, all zero, to map.
func memFile(name string, size int) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// yieldCPU gives the processor up to any other thread ready to run on it,
// and returns at once if there is none.
func yieldCPU() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// childAttr returns the attributes of a child process.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		// Out of the terminal's process group: a Ctrl-C reaches Run,
		// which ends its children, and not the children first, which
		// would look like a child that failed.
		Setpgid: true,
		// Nor may a child outlive Run if it is killed; a child whose
		// stdin ends stops anyway.
		Pdeathsig: syscall.SIGKILL,
	}
}
