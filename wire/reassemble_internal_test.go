package wire

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestReassembleReceivedOverLimit(t *testing.T) {
	// check makes this unreachable through Add alone (pieces 1..N-1 are at
	// most MTU each, and piece N must end within the limit), so lower the
	// limit under a message already held: the bytes received for it would
	// go over, so the fragment is refused and the message dropped.
	src := netip.MustParseAddrPort("10.0.0.1:1000")
	now := time.Unix(1e9, 0)
	r := NewReassembler(Limits{MaxMessageBytes: 3 * MTU, MaxPendingBytes: 10 * MTU})
	if _, err := r.Add(src, Frame{Topic: []byte("t"), Payload: make([]byte, MTU), Index: 2, Count: 3}, now); err != nil {
		t.Fatal(err)
	}
	r.lim.MaxMessageBytes = MTU + 10
	f := Frame{Topic: []byte("t"), Payload: make([]byte, 11), Index: 1, Count: 3}
	if got, err := r.Add(src, f, now); got != nil || !errors.Is(err, ErrTooLarge) {
		t.Errorf("Add = %d bytes, %v; want ErrTooLarge", len(got), err)
	}
	if m, b := r.Pending(); m != 0 || b != 0 {
		t.Errorf("Pending = %d messages, %d bytes; want the message dropped", m, b)
	}
	if s := r.Stats(); s != (ReassemblyStats{Rejected: 1}) {
		t.Errorf("Stats = %+v", s)
	}
	checkInvariants(t, r)
}
