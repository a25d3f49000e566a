package relay

import (
	"fmt"
	"math/rand/v2"
	"time"

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

// Send publishes the payloads in order with publish, one every spacing:
// more than a receiver's reassembly gap, so that every message it gets is
// told apart from the next by time as well as by order (docs/wire.md).
// Errors: publish's.
func (w *Workload) Send(publish func(payload []byte) error, spacing time.Duration) error {
	tick := time.NewTicker(spacing)
	defer tick.Stop()
	for _, p := range w.Payloads {
		if err := publish(p); err != nil {
			return err
		}
		<-tick.C
	}
	return nil
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

// Outcome sums up what a Relay did to a workload, from its Log.
type Outcome struct {
	// Arrived is the number of messages of which at least one datagram
	// was forwarded: the ones a receiver can count, delivered or dropped.
	Arrived int
	// Intact is the number of messages that came through whole and in
	// order: every piece sent on, in order, before any datagram of a
	// later message. A receiver gets each of them unless its own timing
	// gets in the way (its kernel dropping datagrams, a pause longer than
	// the reassembly gap).
	Intact int
	// Disturbed is the number of messages with a datagram sent after one
	// of a later message, or held longer than the receiver's reassembly
	// gap: the format cannot tell which message such a piece belongs to,
	// and a receiver may count one of them twice.
	Disturbed int
}

// Outcome returns what the relay did to the workload, from its log of the
// workload's datagrams, for a receiver whose reassembly gap is gap.
// Errors: the relay has not seen them all yet, or not sent all those it
// is to send.
func (w *Workload) Outcome(log Log, gap time.Duration) (Outcome, error) {
	if len(log.Fates) < w.Datagrams() {
		return Outcome{}, fmt.Errorf("relay: %d fates for %d datagrams", len(log.Fates), w.Datagrams())
	}
	sends := 0
	for _, f := range log.Fates[:w.Datagrams()] {
		sends += map[Fate]int{Forwarded: 1, Duplicated: 2, Delayed: 1}[f]
	}
	sent := 0
	for _, k := range log.Sent {
		if k < w.Datagrams() {
			sent++
		}
	}
	if sent < sends {
		return Outcome{}, fmt.Errorf("relay: %d of %d datagrams sent", sent, sends)
	}
	// msg[k] is the message of datagram k, end[m] one past its last.
	var msg, end []int
	for m, p := range w.Payloads {
		for range wire.FragmentCount(len(p)) {
			msg = append(msg, m)
		}
		end = append(end, len(msg))
	}
	whole := make([]bool, len(w.Payloads))
	for m := range whole {
		whole[m] = true
	}
	for k, f := range log.Fates[:len(msg)] {
		if f == Lost {
			whole[msg[k]] = false
		}
	}
	crossed := make([]bool, len(w.Payloads))
	for k, d := range log.Held[:len(msg)] {
		if d > gap {
			crossed[msg[k]] = true
		}
	}
	last := make([]int, len(w.Payloads)) // the last datagram of each message sent so far, plus one
	highest := -1
	for _, k := range log.Sent {
		if k >= len(msg) {
			continue
		}
		m := msg[k]
		if highest >= end[m] {
			crossed[m] = true
		}
		if k+1 < last[m] {
			whole[m] = false // a piece after a later one of its own
		}
		last[m] = max(last[m], k+1)
		highest = max(highest, k)
	}
	var o Outcome
	for m := range w.Payloads {
		if last[m] > 0 {
			o.Arrived++
		}
		if crossed[m] {
			o.Disturbed++
		}
		if whole[m] && !crossed[m] && last[m] > 0 {
			o.Intact++
		}
	}
	return o, nil
}
