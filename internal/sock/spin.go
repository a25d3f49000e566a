package sock

import "time"

// spinner decides whether a read that found the socket empty tries again
// at once instead of waiting (Config.Spin): until spin has passed since
// the last datagram arrived. The rule is in one place so that it can be
// tested with made-up times.
type spinner struct {
	spin  time.Duration    // 0: never
	last  time.Time        // when the last datagram was read
	spins uint64           // reads tried again: when to yield, and for tests
	now   func() time.Time // time.Now, or a test's clock
}

// arrived notes that a read returned datagrams at now.
func (s *spinner) arrived(now time.Time) { s.last = now }

// again reports whether a read that found the socket empty at now is to
// try again.
func (s *spinner) again(now time.Time) bool {
	if now.Sub(s.last) >= s.spin {
		return false
	}
	s.spins++
	return true
}
