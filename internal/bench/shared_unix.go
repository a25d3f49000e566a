//go:build unix

package bench

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mapShared maps all of f, a file of counters that another process made
// with newShared.
func mapShared(f *os.File) (*shared, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("shared counters: %w", err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shared counters: mmap: %w", err)
	}
	return &shared{f: f, mem: mem}, nil
}

// close unmaps the memory: none of its counters may be used after. It
// does nothing on nil.
func (s *shared) close() {
	if s == nil {
		return
	}
	unix.Munmap(s.mem)
	s.f.Close()
}
