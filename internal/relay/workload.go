package relay

import (
	"fmt"
	"math/rand/v2"

	"github.com/mcl-go/mcl/wire"
)

// Workload is a run of fragmented messages of the seed format, one
// sender's, to send through a Relay, and what a receiver may make of them.
type Workload struct {
	// Payloads are the msgpack payloads, in the order sent.
	Payloads [][]byte
	index    map[string]int
}

// NewWorkload returns n payloads, drawn from seed, of the given piece
// counts (N, each 2 or more): a msgpack bin of random bytes whose length
// depends only on N, so that every two messages of one N can only be told
// apart by their bytes, the hardest case for reassembly.
func NewWorkload(seed uint64, n int, counts ...int) *Workload {
	rng := rand.New(rand.NewPCG(seed, 0x776b6c64))
	var payloads [][]byte
	for range n {
		count := counts[rng.IntN(len(counts))]
		size := (count-1)*wire.MTU + 1000 + 37*count // the bin's header: 5 bytes
		p := make([]byte, size)
		p[0] = 0xc6
		body := size - 5
		p[1], p[2], p[3], p[4] = byte(body>>24), byte(body>>16), byte(body>>8), byte(body)
		for j := 5; j < size; j += 8 {
			v := rng.Uint64()
			for k := j; k < min(j+8, size); k++ {
				p[k] = byte(v)
				v >>= 8
			}
		}
		if wire.FragmentCount(len(p)) != count {
			panic(fmt.Sprintf("relay: workload payload of %d bytes is not %d pieces", len(p), count))
		}
		payloads = append(payloads, p)
	}
	return WorkloadOf(payloads)
}

// WorkloadOf returns the workload of payloads, sent in that order, each
// in fragments (over wire.MTU bytes).
func WorkloadOf(payloads [][]byte) *Workload {
	w := &Workload{Payloads: payloads, index: make(map[string]int)}
	for i, p := range payloads {
		w.index[string(p)] = i
	}
	return w
}

// Datagrams returns the number of datagrams the payloads are sent in.
func (w *Workload) Datagrams() int {
	n := 0
	for _, p := range w.Payloads {
		n += wire.FragmentCount(len(p))
	}
	return n
}

// Index returns which payload p is, or -1 if it is none of them.
func (w *Workload) Index(p []byte) int {
	if i, ok := w.index[string(p)]; ok {
		return i
	}
	return -1
}

// Outcome sums up what a Relay did to a workload, from its fates (those
// of the workload's datagrams, in the order sent).
type Outcome struct {
	// Arrived is the number of messages of which at least one datagram
	// was forwarded: the ones a receiver can count, delivered or dropped.
	Arrived int
	// Intact is the number of messages that came through whole and in
	// order: every piece forwarded, duplicated, or, for the last piece,
	// delayed. A receiver gets each of them unless its own timing gets in
	// the way (its kernel dropping datagrams, a pause longer than the
	// reassembly gap).
	Intact int
}

// Outcome returns what fates did to the workload. Errors: fewer fates
// than datagrams (the relay has not seen them all).
func (w *Workload) Outcome(fates []Fate) (Outcome, error) {
	if len(fates) < w.Datagrams() {
		return Outcome{}, fmt.Errorf("relay: %d fates for %d datagrams", len(fates), w.Datagrams())
	}
	var o Outcome
	k := 0
	for _, p := range w.Payloads {
		count := wire.FragmentCount(len(p))
		arrived, intact := false, true
		for n := 1; n <= count; n, k = n+1, k+1 {
			switch fates[k] {
			case Lost:
				intact = false
			case Delayed:
				arrived = true
				intact = intact && n == count
			default:
				arrived = true
			}
		}
		if arrived {
			o.Arrived++
		}
		if intact {
			o.Intact++
		}
	}
	return o, nil
}
