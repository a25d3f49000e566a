//go:build !linux

package bench

import (
	"errors"
	"os"
	"runtime"
)

// memFile fails: cross-process mode, like the sandbox, needs Linux.
func memFile(string, int) (*os.File, error) {
	return nil, errors.New("cross-process mode needs Linux (memfd_create)")
}

// yieldCPU gives the processor up to other goroutines: cross-process mode
// does not run here (see memFile).
func yieldCPU() { runtime.Gosched() }
