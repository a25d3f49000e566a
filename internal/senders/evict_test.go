package senders

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func ids(ss []Sender) []uint64 {
	var out []uint64
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

// checkBounds checks the table's internal bounds.
func checkBounds(t *testing.T, tab *Table) {
	t.Helper()
	if len(tab.byID) != len(tab.list) || len(tab.list) > tab.max || len(tab.list)+len(tab.free) > tab.max {
		t.Fatalf("%d in map, %d in list, %d free, max %d", len(tab.byID), len(tab.list), len(tab.free), tab.max)
	}
}

// TestEvictOrder checks that a new sender in a full table evicts the
// quarter idle longest, by the time of their last datagram, dropped ones
// included, and that their counts stay in Totals.
func TestEvictOrder(t *testing.T) {
	tab := New(8)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for id := uint64(1); id <= 8; id++ {
		tab.Observe(id, 0, addrA, at(int(id)))
	}
	tab.Observe(1, 1, addrA, at(9))
	tab.Observe(2, 0, addrA, at(10)) // a duplicate, but 2 is alive
	tab.Observe(9, 0, addrA, at(11)) // evicts 3 and 4
	if got, want := ids(tab.Senders(nil)), []uint64{1, 2, 5, 6, 7, 8, 9}; !slices.Equal(got, want) {
		t.Fatalf("tracked %v, want %v", got, want)
	}
	tot := tab.Totals()
	if want := (Totals{Counts: Counts{Datagrams: 10, Duplicates: 1}, Senders: 7, Evicted: 2}); tot != want {
		t.Errorf("totals %+v, want %+v", tot, want)
	}

	// 3 comes back as a new sender, and fills the table.
	if v := tab.Observe(3, 5, addrA, at(12)); v != Deliver {
		t.Errorf("returning sender: %v", v)
	}
	if s := tab.Senders(nil)[2]; s.ID != 3 || !s.First.Equal(at(12)) || s.Datagrams != 1 {
		t.Errorf("returning sender %+v", s)
	}
	tab.Observe(10, 0, addrA, at(13)) // evicts 5 and 6
	if got, want := ids(tab.Senders(nil)), []uint64{1, 2, 3, 7, 8, 9, 10}; !slices.Equal(got, want) {
		t.Fatalf("tracked %v, want %v", got, want)
	}
	if tot := tab.Totals(); tot.Datagrams != 12 || tot.Evicted != 4 || tot.Senders != 7 {
		t.Errorf("totals %+v", tot)
	}
	checkBounds(t, tab)
}

// TestEvictSmall checks tables too small to have a quarter: one sender is
// evicted at a time.
func TestEvictSmall(t *testing.T) {
	for _, max := range []int{1, 2, 3} {
		tab := New(max)
		for id := uint64(1); id <= 100; id++ {
			tab.Observe(id, 0, addrA, t0.Add(time.Duration(id)))
			checkBounds(t, tab)
			if got := len(tab.list); got != min(max, int(id)) {
				t.Fatalf("max %d: %d tracked after sender %d", max, got, id)
			}
		}
		var want []uint64
		for id := 100 - max + 1; id <= 100; id++ {
			want = append(want, uint64(id))
		}
		if got := ids(tab.Senders(nil)); !slices.Equal(got, want) {
			t.Errorf("max %d: tracked %v, want %v", max, got, want)
		}
		if tot := tab.Totals(); tot.Evicted != uint64(100-max) || tot.Datagrams != 100 {
			t.Errorf("max %d: totals %+v", max, tot)
		}
	}
}

// TestEvictTies checks that among senders idle equally long the lowest IDs
// go first.
func TestEvictTies(t *testing.T) {
	tab := New(4)
	for _, id := range []uint64{40, 30, 20, 10} {
		tab.Observe(id, 0, addrA, t0)
	}
	tab.Observe(50, 0, addrA, t0)
	if got, want := ids(tab.Senders(nil)), []uint64{20, 30, 40, 50}; !slices.Equal(got, want) {
		t.Errorf("tracked %v, want %v", got, want)
	}
}

// TestFlood sends a flood of datagrams from random sender ids, with a
// steady sender among them: the table stays within its bound, the steady
// sender stays tracked and counted right, and every datagram is counted.
func TestFlood(t *testing.T) {
	const max, n = 64, 200000
	tab := New(max)
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	var steady uint64
	for i := range n {
		now = now.Add(time.Microsecond)
		if i%10 == 0 {
			if v := tab.Observe(0, steady, addrA, now); v != Deliver {
				t.Fatalf("steady sender, seq %d: %v", steady, v)
			}
			steady++
			continue
		}
		if v := tab.Observe(rng.Uint64()|1, rng.Uint64(), addrB, now); v != Deliver {
			t.Fatalf("flood datagram %d: %v", i, v)
		}
		if i%1000 == 1 {
			checkBounds(t, tab)
		}
	}
	checkBounds(t, tab)
	ss := tab.Senders(nil)
	if ss[0].ID != 0 || ss[0].Counts != (Counts{Datagrams: steady}) {
		t.Errorf("first sender %+v, want sender 0 with %d datagrams", ss[0], steady)
	}
	// Every sender, the steady one and each of the flood, was tracked and
	// is still or was evicted.
	tot := tab.Totals()
	if tot.Datagrams != n || tot.Senders != len(ss) || tot.Senders < max-max/4 || tot.Evicted+uint64(tot.Senders) != n-n/10+1 {
		t.Errorf("totals %+v", tot)
	}
}

// TestAllocs checks that Observe does not allocate in steady state: a run
// from one sender, senders taking turns, and a flood of new senders once
// the table has filled.
func TestAllocs(t *testing.T) {
	tab := New(64)
	var seq uint64
	if a := testing.AllocsPerRun(1000, func() {
		tab.Observe(1, seq, addrA, t0)
		seq++
	}); a != 0 {
		t.Errorf("one sender: %v allocations per datagram", a)
	}
	tab.Observe(2, 0, addrA, t0)
	if a := testing.AllocsPerRun(1000, func() {
		tab.Observe(1, seq, addrA, t0)
		tab.Observe(2, seq, addrA, t0)
		seq++
	}); a != 0 {
		t.Errorf("two senders: %v allocations per datagram pair", a)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	now := t0
	flood := func() {
		now = now.Add(time.Microsecond)
		tab.Observe(rng.Uint64(), 0, addrB, now)
	}
	for range 100000 {
		flood()
	}
	if a := testing.AllocsPerRun(100000, flood); a != 0 {
		t.Errorf("flood: %v allocations per new sender", a)
	}
}

// TestConcurrent observes in one goroutine while another takes snapshots;
// run it with -race.
func TestConcurrent(t *testing.T) {
	const max = 16
	tab := New(max)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		now := t0
		for i := range uint64(100000) {
			now = now.Add(time.Microsecond)
			tab.Observe(i%37, i/37, addrA, now)
		}
	})
	wg.Go(func() {
		var buf []Sender
		var prev Totals
		for {
			select {
			case <-done:
				return
			default:
			}
			buf = tab.Senders(buf[:0])
			if len(buf) > max || !slices.IsSortedFunc(buf, func(a, b Sender) int { return cmp.Compare(a.ID, b.ID) }) {
				t.Errorf("snapshot of %d senders, sorted %v", len(buf), ids(buf))
				return
			}
			tot := tab.Totals()
			if tot.Senders > max || tot.Datagrams < prev.Datagrams || tot.Evicted < prev.Evicted {
				t.Errorf("totals %+v after %+v", tot, prev)
				return
			}
			prev = tot
		}
	})
	wg.Wait()
	if tot := tab.Totals(); tot.Datagrams+tot.Duplicates+tot.Late != 100000 {
		t.Errorf("totals %+v do not add up to 100000 datagrams", tot)
	}
}
