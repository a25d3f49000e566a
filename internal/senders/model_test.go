package senders

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// network is a seeded model of a lossy path: of the numbers 0..n-1 it
// drops some (alone or in bursts), duplicates some, and swaps some with a
// neighbour a few places on.
type network struct {
	n                   int
	drop, burst, dup    float64 // probabilities per number
	swap                float64 // probability per position
	maxBurst, swapReach int
}

// arrivals returns the numbers as they arrive.
func (nw network) arrivals(rng *rand.Rand) []uint64 {
	var out []uint64
	for seq := 0; seq < nw.n; seq++ {
		switch r := rng.Float64(); {
		case r < nw.burst:
			seq += rng.IntN(nw.maxBurst) // and the loop's ++: a burst of 1..maxBurst
		case r < nw.burst+nw.drop:
		case r < nw.burst+nw.drop+nw.dup:
			out = append(out, uint64(seq), uint64(seq))
		default:
			out = append(out, uint64(seq))
		}
	}
	for i := range out {
		if rng.Float64() < nw.swap {
			j := min(i+1+rng.IntN(nw.swapReach), len(out)-1)
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// TestModel feeds the arrivals of a lossy path and checks every verdict and
// count against what the test computes from the arrivals alone: a number
// W or more behind the highest so far is late; any other is delivered on
// its first arrival, reordered if a higher one came before it, and a
// duplicate after that; Lost is the numbers between the first to arrive
// and the highest that were never delivered.
func TestModel(t *testing.T) {
	models := []network{
		{n: 20000, drop: 0.01, dup: 0.01, swap: 0.05, swapReach: 4},
		{n: 20000, drop: 0.2, burst: 0.001, dup: 0.2, swap: 0.3, maxBurst: 2000, swapReach: 30},
		{n: 20000, burst: 0.01, dup: 0.05, swap: 0.5, maxBurst: 200, swapReach: 100},
		{n: 5000}, // a perfect path
	}
	bases := []uint64{0, math.MaxUint64 - 10000}
	var late uint64
	for mi, nw := range models {
		for _, base := range bases {
			for seed := range uint64(3) {
				t.Run(fmt.Sprintf("model%d/base=%#x/seed=%d", mi, base, seed), func(t *testing.T) {
					arr := nw.arrivals(rand.New(rand.NewPCG(seed, uint64(mi))))
					late += checkModel(t, base, arr)
				})
			}
		}
	}
	if late == 0 {
		t.Error("no model had a late arrival")
	}
}

// checkModel checks the verdicts and counts of arr, numbered from base,
// and returns the number of late arrivals.
func checkModel(t *testing.T, base uint64, arr []uint64) uint64 {
	t.Helper()
	var want Counts
	delivered := map[uint64]bool{}
	first, high := arr[0], arr[0]
	tab := New(0)
	for i, seq := range arr {
		wantV := Deliver
		switch {
		case seq+W <= high:
			wantV = Late
			want.Late++
		case delivered[seq]:
			wantV = Duplicate
			want.Duplicates++
		case seq < high:
			wantV = Reordered
			want.Reordered++
		}
		if wantV.Delivered() {
			want.Datagrams++
			delivered[seq] = true
		}
		high = max(high, seq)
		if v := tab.Observe(99, base+seq, addrA, t0); v != wantV {
			t.Fatalf("arrival %d: seq %d: %v, want %v", i, seq, v, wantV)
		}
	}
	for seq := first; seq <= high; seq++ {
		if !delivered[seq] {
			want.Lost++
		}
	}
	if got := tab.Totals().Counts; got != want {
		t.Errorf("%d arrivals\n got %+v\nwant %+v", len(arr), got, want)
	}
	return want.Late
}
