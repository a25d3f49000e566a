package bench

import (
	"fmt"
	"os"
	"unsafe"
)

// shared is memory that Run shares with a subscriber's child process: the
// child's subscribers count into it, and Run's publisher reads it, as it
// reads the counters of subscribers in its own process. Counts sent
// through a pipe instead would cost the subscribers a system call per
// batch, and hold the publisher's window back by the pipe's delay; the
// rows of the two modes would not count alike.
type shared struct {
	f   *os.File
	mem []byte
}

// counterSpan is the room a counter takes in shared memory: a cache line
// of its own, so that two subscribers never write to one.
const counterSpan = 64

// newShared returns fresh shared memory for n counters, all zero.
func newShared(n int) (*shared, error) {
	f, err := memFile("mcl-bench-counters", n*counterSpan)
	if err != nil {
		return nil, fmt.Errorf("shared counters: %w", err)
	}
	s, err := mapShared(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// at returns counter i. The mapping starts on a page, so every counter
// is aligned for its atomics, and a counter's fields are all atomic, so
// that two processes may use it at once. The slice makes sure that all
// of the counter is in the mapping.
func (s *shared) at(i int) *counter {
	return (*counter)(unsafe.Pointer(&s.mem[i*counterSpan : (i+1)*counterSpan][0]))
}
