//go:build !linux

package bench

import (
	"errors"
	"os"
	"runtime"
	"syscall"
)

// memFile fails: cross-process mode, like the sandbox, needs Linux.
func memFile(string, int) (*os.File, error) {
	return nil, errors.New("cross-process mode needs Linux (memfd_create)")
}

// childAttr returns the attributes of a child process: out of the
// terminal's process group, so that a Ctrl-C reaches Run, which ends its
// children.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// yieldCPU gives the processor up to other goroutines: cross-process mode
// does not run here (see memFile).
func yieldCPU() { runtime.Gosched() }
