package senders

import (
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"
)

const (
	W = Window
	J = JumpLimit
)

var (
	addrA = netip.MustParseAddrPort("10.0.0.1:5000")
	addrB = netip.MustParseAddrPort("[fe80::1]:5000")
	t0    = time.Unix(1e9, 0)
)

// step is a datagram of one sender, numbered relative to a base, and the
// verdict it must get.
type step struct {
	rel  int64
	want Verdict
}

// run sends steps one per second from sender 1 and returns its Sender.
func run(t *testing.T, base uint64, steps []step) Sender {
	t.Helper()
	tab := New(0)
	for i, s := range steps {
		seq := base + uint64(s.rel)
		if v := tab.Observe(1, seq, addrA, t0.Add(time.Duration(i)*time.Second)); v != s.want {
			t.Fatalf("step %d: seq base%+d: %v, want %v", i, s.rel, v, s.want)
		}
	}
	ss := tab.Senders(nil)
	if len(ss) != 1 {
		t.Fatalf("%d senders, want 1", len(ss))
	}
	return ss[0]
}

// inOrder returns steps a, a+1, ..., b-1, each to be delivered.
func inOrder(a, b int64) []step {
	var s []step
	for n := a; n < b; n++ {
		s = append(s, step{n, Deliver})
	}
	return s
}

func cat(parts ...[]step) []step {
	var s []step
	for _, p := range parts {
		s = append(s, p...)
	}
	return s
}

// TestRules checks each rule of the package doc at several bases, so that
// every case is also checked across the wrap of the 64-bit sequence number
// and across the sign change of int64.
func TestRules(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  Counts
	}{
		{"first", []step{{0, Deliver}}, Counts{Datagrams: 1}},
		{"in order", inOrder(0, 5), Counts{Datagrams: 5}},
		{"gap", []step{{0, Deliver}, {5, Deliver}}, Counts{Datagrams: 2, Lost: 4}},
		{"gap filled", []step{{0, Deliver}, {5, Deliver}, {3, Reordered}, {1, Reordered}},
			Counts{Datagrams: 4, Lost: 2, Reordered: 2}},
		{"duplicate of highest", []step{{0, Deliver}, {0, Duplicate}}, Counts{Datagrams: 1, Duplicates: 1}},
		{"duplicate of older", cat(inOrder(0, 3), []step{{1, Duplicate}, {0, Duplicate}}),
			Counts{Datagrams: 3, Duplicates: 2}},
		{"duplicate of reordered", []step{{0, Deliver}, {5, Deliver}, {3, Reordered}, {3, Duplicate}},
			Counts{Datagrams: 3, Lost: 3, Reordered: 1, Duplicates: 1}},
		{"exactly J ahead", []step{{0, Deliver}, {J, Deliver}}, Counts{Datagrams: 2, Lost: J - 1}},
		{"J+1 ahead", []step{{0, Deliver}, {J + 1, Jumped}}, Counts{Datagrams: 2, Jumps: 1}},
		{"W-1 behind, seen", []step{{0, Deliver}, {W - 1, Deliver}, {0, Duplicate}},
			Counts{Datagrams: 2, Lost: W - 2, Duplicates: 1}},
		{"W-1 behind, new", []step{{0, Deliver}, {W, Deliver}, {1, Reordered}},
			Counts{Datagrams: 3, Lost: W - 2, Reordered: 1}},
		{"exactly W behind", []step{{0, Deliver}, {W, Deliver}, {0, Late}},
			Counts{Datagrams: 2, Lost: W - 1, Late: 1}},
		{"exactly W behind, never seen, stays lost", []step{{0, Deliver}, {W + 1, Deliver}, {1, Late}},
			Counts{Datagrams: 2, Lost: W, Late: 1}},
		{"exactly J behind", []step{{0, Deliver}, {J, Deliver}, {0, Late}},
			Counts{Datagrams: 2, Lost: J - 1, Late: 1}},
		{"J+1 behind", []step{{0, Deliver}, {J, Deliver}, {-1, Jumped}, {-1, Duplicate}, {J, Jumped}},
			Counts{Datagrams: 4, Lost: J - 1, Jumps: 2, Duplicates: 1}},
		{"forged far ahead", []step{{0, Deliver}, {1, Deliver}, {1 << 40, Jumped}, {2, Jumped}, {3, Deliver}, {1, Reordered}},
			Counts{Datagrams: 6, Jumps: 2, Reordered: 1}},
		{"half the space ahead", []step{{0, Deliver}, {math.MinInt64, Jumped}, {0, Jumped}},
			Counts{Datagrams: 3, Jumps: 2}},
		{"before first", []step{{10, Deliver}, {12, Deliver}, {9, Reordered}, {11, Reordered}, {9, Duplicate}},
			Counts{Datagrams: 4, Reordered: 2, Duplicates: 1}},
		{"before first, at the window's edge", []step{{W - 1, Deliver}, {0, Reordered}, {W, Deliver}, {0, Late}},
			Counts{Datagrams: 3, Reordered: 1, Late: 1}},
		{"before restart", []step{{0, Deliver}, {2, Deliver}, {J + 10, Jumped}, {J + 9, Reordered}, {J + 11, Deliver}},
			Counts{Datagrams: 5, Lost: 1, Reordered: 1, Jumps: 1}},
		{"restart forgets", []step{{0, Deliver}, {J + 1, Jumped}, {0, Jumped}, {0, Duplicate}},
			Counts{Datagrams: 3, Jumps: 2, Duplicates: 1}},
		{"slide forgets the numbers leaving", cat(inOrder(0, W+1), []step{{1, Duplicate}, {0, Late}}),
			Counts{Datagrams: W + 1, Duplicates: 1, Late: 1}},
		{"slide clears the slots of skipped numbers", cat(inOrder(0, W),
			[]step{{W + 100, Deliver}, {W + 50, Reordered}, {W + 50, Duplicate}, {101, Duplicate}, {100, Late}}),
			Counts{Datagrams: W + 2, Lost: 99, Reordered: 1, Duplicates: 2, Late: 1}},
		{"slide by W-1 over a full window", cat(inOrder(0, W),
			[]step{{2*W - 2, Deliver}, {W - 1, Duplicate}, {W - 2, Late}, {W + 500, Reordered}, {W + 500, Duplicate}}),
			Counts{Datagrams: W + 2, Lost: W - 3, Reordered: 1, Duplicates: 2, Late: 1}},
		{"slide by W over a full window", cat(inOrder(0, W),
			[]step{{2*W - 1, Deliver}, {W - 1, Late}, {W, Reordered}, {W, Duplicate}}),
			Counts{Datagrams: W + 2, Lost: W - 2, Reordered: 1, Duplicates: 1, Late: 1}},
	}
	bases := []uint64{0, 1 << 32, math.MaxUint64 - 2, math.MaxUint64 - W, 1<<63 - 1, 1 << 63}
	for _, tt := range tests {
		for _, base := range bases {
			t.Run(fmt.Sprintf("%s/base=%#x", tt.name, base), func(t *testing.T) {
				s := run(t, base, tt.steps)
				if s.Counts != tt.want {
					t.Errorf("counts\n got %+v\nwant %+v", s.Counts, tt.want)
				}
			})
		}
	}
}

// TestWrap sends across the wrap from 2^64-1 to 0 in order, so that the
// window straddles it.
func TestWrap(t *testing.T) {
	tab := New(0)
	first := uint64(math.MaxUint64 - W/2 + 1) // -W/2
	for i := range uint64(W) {
		if v := tab.Observe(7, first+i, addrA, t0); v != Deliver {
			t.Fatalf("seq %#x: %v", first+i, v)
		}
	}
	for _, seq := range []uint64{first, math.MaxUint64, 0, W/2 - 1} {
		if v := tab.Observe(7, seq, addrA, t0); v != Duplicate {
			t.Errorf("seq %#x again: %v, want duplicate", seq, v)
		}
	}
	if v := tab.Observe(7, first-1, addrA, t0); v != Late {
		t.Errorf("seq %#x: %v, want late", first-1, v)
	}
	if s := tab.Senders(nil)[0]; s.Counts != (Counts{Datagrams: W, Duplicates: 4, Late: 1}) {
		t.Errorf("counts %+v", s.Counts)
	}
}

// TestAddrAndTimes checks that every datagram sets Last and only delivered
// ones set Addr.
func TestAddrAndTimes(t *testing.T) {
	tab := New(0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	check := func(wantAddr netip.AddrPort, wantLast time.Time) {
		t.Helper()
		s := tab.Senders(nil)[0]
		if s.Addr != wantAddr || !s.Last.Equal(wantLast) || !s.First.Equal(at(0)) {
			t.Errorf("addr %v first %v last %v, want %v %v %v", s.Addr, s.First, s.Last, wantAddr, at(0), wantLast)
		}
	}
	tab.Observe(1, 2000, addrA, at(0))
	check(addrA, at(0))
	tab.Observe(1, 2000, addrB, at(1)) // duplicate
	check(addrA, at(1))
	tab.Observe(1, 2000-W, addrB, at(2)) // late
	check(addrA, at(2))
	tab.Observe(1, 1999, addrB, at(3)) // reordered
	check(addrB, at(3))
	tab.Observe(1, 2001, addrA, at(4))
	check(addrA, at(4))
	tab.Observe(1, 1<<50, addrB, at(5)) // jumped
	check(addrB, at(5))
}

// TestSenders checks that several senders are kept apart, that Senders
// appends sorted by ID, and that Totals sums them.
func TestSenders(t *testing.T) {
	tab := New(0)
	ids := []uint64{math.MaxUint64, 3, 1 << 63, 0, 17}
	for i, id := range ids {
		// Interleaved, so that the cached last sender changes each time.
		for seq := range uint64(i + 1) {
			for _, other := range ids[:i] {
				tab.Observe(other, 1000, addrA, t0) // a duplicate, after the first round
			}
			if v := tab.Observe(id, seq*2, addrA, t0); v != Deliver {
				t.Fatalf("sender %#x seq %d: %v", id, seq*2, v)
			}
		}
	}
	dst := tab.Senders([]Sender{{ID: 42}})
	if len(dst) != 1+len(ids) || dst[0].ID != 42 {
		t.Fatalf("Senders did not append: %+v", dst)
	}
	wantIDs := []uint64{0, 3, 17, 1 << 63, math.MaxUint64}
	for i, s := range dst[1:] {
		if s.ID != wantIDs[i] {
			t.Errorf("sender %d has ID %#x, want %#x", i, s.ID, wantIDs[i])
		}
	}
	tot := tab.Totals()
	// Sender i sent i+1 datagrams, 2 apart: i lost. Each earlier sender got
	// a copy of 1000 per datagram of a later one; the first copy is new.
	var want Counts
	for i := range ids {
		want.Datagrams += uint64(i + 1)
		want.Lost += uint64(i)
		for j := i + 1; j < len(ids); j++ {
			want.Duplicates += uint64(j + 1)
		}
	}
	// But each earlier sender's first copy of 1000 was new, after a gap of
	// 1000-2i-1 numbers.
	for i := range len(ids) - 1 {
		want.Datagrams++
		want.Duplicates--
		want.Lost += uint64(1000 - 2*i - 1)
	}
	if tot.Counts != want || tot.Senders != len(ids) || tot.Evicted != 0 {
		t.Errorf("totals %+v, want %+v with %d senders", tot, want, len(ids))
	}
}

func TestNewDefault(t *testing.T) {
	for _, n := range []int{0, -1} {
		if got := New(n).max; got != DefaultMaxSenders {
			t.Errorf("New(%d) tracks %d, want %d", n, got, DefaultMaxSenders)
		}
	}
}

func TestVerdict(t *testing.T) {
	for _, tt := range []struct {
		v         Verdict
		name      string
		delivered bool
	}{
		{Deliver, "deliver", true},
		{Reordered, "reordered", true},
		{Duplicate, "duplicate", false},
		{Late, "late", false},
		{Jumped, "jumped", true},
		{Verdict(9), "verdict(9)", false},
	} {
		if tt.v.String() != tt.name || tt.v.Delivered() != tt.delivered {
			t.Errorf("%d: %q %v, want %q %v", tt.v, tt.v.String(), tt.v.Delivered(), tt.name, tt.delivered)
		}
	}
}
