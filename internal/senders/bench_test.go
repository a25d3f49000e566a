package senders

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkObserve is the common case: a run of datagrams from one sender,
// in order.
func BenchmarkObserve(b *testing.B) {
	tab := New(0)
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		tab.Observe(1, i, addrA, t0)
	}
}

// BenchmarkObserveInterleaved has two senders take turns, so that each
// datagram misses the cached sender and looks it up.
func BenchmarkObserveInterleaved(b *testing.B) {
	tab := New(0)
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		tab.Observe(i&1, i>>1, addrA, t0)
	}
}

// BenchmarkObserveFlood has every datagram come from a new sender, in a
// full table: the cost of eviction, amortised.
func BenchmarkObserveFlood(b *testing.B) {
	tab := New(0)
	rng := rand.New(rand.NewPCG(5, 6))
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		tab.Observe(rng.Uint64(), 0, addrA, now)
	}
}
