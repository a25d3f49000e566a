package recording

import (
	"time"

	"golang.org/x/sys/unix"
)

// sleepPrecise blocks the calling thread in nanosleep, which the kernel
// times with high-resolution timers (tens of microseconds), where Go's
// timers round short sleeps up to the next millisecond.
func sleepPrecise(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}
