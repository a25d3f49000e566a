package reassembly

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// A model of this format's senders behind a faulty path, for the tests and
// the fuzz target of reassembly under loss, duplication, delay and the
// receiver's own drops. Each sender sends a run of messages with one topic
// and N, all of one length (the worst case: nothing but the order of the
// pieces tells them apart), pieces 1..N back to back. Every piece of every
// message has bytes of its own, so that a payload that is not one of the
// messages sent shows which messages it was cut from.

// fate is what the path does to one datagram.
type fate uint8

const (
	deliver   fate = iota
	lose           // lost on the way
	duplicate      // delivered twice, back to back
	delay          // delivered faultDelay late
	overflow       // lost by the receiver's kernel, which counts it (Reassembler.Lost)
)

// fateOf maps a byte of fuzz input to a fate: most datagrams arrive.
func fateOf(b byte) fate {
	if b&7 < 4 {
		return deliver
	}
	return fate(b&7 - 3)
}

const (
	modelPiece = 16 // piece length: small, so that a run is fast
	modelGap   = 50 * time.Millisecond
	faultDelay = modelGap / 4
)

// faultPlan is one run of the model.
type faultPlan struct {
	spaced bool  // a sender's messages more than Gap apart, as from a sender publishing under 20 Hz
	counts []int // N of each sender's messages
	each   int   // messages per sender
	fates  func(k int) fate
}

type modelMsg struct {
	sender  int
	payload []byte
}

type datagram struct {
	sender, msg, n int // msg indexes the run's messages
	fate           fate
	sent, at       time.Time
	copy           bool // the second of a duplicated pair
}

// run sends plan's messages through the faulty path into a Reassembler,
// checking every payload returned and, with the messages spaced, that
// every message of which something arrived is counted once.
func (plan faultPlan) run(t *testing.T) Stats {
	t.Helper()
	r := New(Limits{MaxPending: 8, MaxPendingBytes: 1 << 20, Gap: modelGap})
	base := time.Unix(1e9, 0)
	var msgs []modelMsg
	var sent []datagram
	for s, count := range plan.counts {
		l := (count-1)*modelPiece + modelPiece/2
		spacing := time.Duration(count+1) * time.Microsecond // back to back
		if plan.spaced {
			spacing = 2 * modelGap
		}
		for m := range plan.each {
			id := len(msgs)
			p := make([]byte, l)
			p[0], p[1] = 0xc4, byte(l-2) // bin8: the rest is the message's id
			for i := 2; i < l; i++ {
				p[i] = byte(id)
			}
			msgs = append(msgs, modelMsg{s, p})
			start := base.Add(time.Duration(m)*spacing + time.Duration(s)*13*time.Microsecond)
			for n := 1; n <= count; n++ {
				sent = append(sent, datagram{sender: s, msg: id, n: n, sent: start.Add(time.Duration(n-1) * time.Microsecond)})
			}
		}
	}
	slices.SortStableFunc(sent, func(a, b datagram) int { return a.sent.Compare(b.sent) })
	var path []datagram
	arrived := make([]bool, len(msgs))
	for k := range sent {
		d := &sent[k]
		d.fate = plan.fates(k)
		d.at = d.sent.Add(time.Microsecond / 2)
		switch d.fate {
		case lose:
			continue
		case delay:
			d.at = d.at.Add(faultDelay)
		case overflow:
			path = append(path, *d) // counted by the receiver, not delivered
			continue
		}
		arrived[d.msg] = true
		path = append(path, *d)
		if d.fate == duplicate {
			c := *d
			c.copy = true
			path = append(path, c)
		}
	}
	slices.SortStableFunc(path, func(a, b datagram) int { return a.at.Compare(b.at) })

	lost := uint64(0)
	keyed := make([][]datagram, len(plan.counts)) // each sender's arrivals so far, and overflows
	for _, d := range path {
		for s := range keyed {
			if d.fate == overflow || s == d.sender {
				keyed[s] = append(keyed[s], d)
			}
		}
		if d.fate == overflow {
			lost++
			continue
		}
		src := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+d.sender))
		p := msgs[d.msg].payload
		f := Frame{Topic: []byte("t"), Index: d.n, Count: plan.counts[d.sender],
			Payload: p[(d.n-1)*modelPiece : min(d.n*modelPiece, len(p))]}
		r.Lost(lost)
		out, err := r.Add(src, f, d.at)
		checkInvariants(t, r)
		if out == nil {
			continue
		}
		if err != nil {
			t.Fatalf("Add returned a payload and %v", err)
		}
		plan.check(t, out, d.sender, msgs, sent, keyed[d.sender])
	}
	r.Expire(base.Add(time.Hour))
	st := r.Stats()
	if plan.spaced {
		n := uint64(0)
		for _, a := range arrived {
			if a {
				n++
			}
		}
		if got := st.Completed + st.Dropped(); got != n {
			t.Fatalf("%d messages arrived in part or whole, %d counted: %+v", n, got, st)
		}
	}
	return st
}

// check fails unless out is a message that sender sent, or, with the
// messages back to back, a mixture the format cannot tell from one: pieces
// 1 to N of the sender's, each of which arrived right after the one
// before (or a repeat of it), with no overflow in between. Without delays
// on the path, that means every datagram the sender sent between the last
// piece taken from one message and the first taken from the next was lost.
// arrivals are the sender's datagrams and every overflow, in the order
// they came, ending with the one that completed out.
func (plan faultPlan) check(t *testing.T, out []byte, sender int, msgs []modelMsg, sent, arrivals []datagram) {
	t.Helper()
	count := plan.counts[sender]
	from := make([]int, count+1) // the message each piece is from
	for n := 1; n <= count; n++ {
		at := max((n-1)*modelPiece, 2)
		if at >= len(out) {
			t.Fatalf("returned %d bytes, too short for %d pieces", len(out), count)
		}
		m := int(out[at])
		if m >= len(msgs) || msgs[m].sender != sender || len(msgs[m].payload) != len(out) {
			t.Fatalf("piece %d of a returned payload is from no message of sender %d", n, sender)
		}
		lo, hi := (n-1)*modelPiece, min(n*modelPiece, len(out))
		if !bytes.Equal(out[lo:hi], msgs[m].payload[lo:hi]) {
			t.Fatalf("piece %d of a returned payload is not what message %d sent", n, m)
		}
		from[n] = m
	}
	if slices.Min(from[1:]) == slices.Max(from[1:]) {
		return // exactly a message sent
	}
	if plan.spaced {
		t.Fatalf("returned a payload cut from messages %v", from[1:])
	}
	// Back from the piece that completed it: piece n-1 arrived right
	// before piece n, or before a repeat of it.
	n, prev := count, arrivals[len(arrivals)-1]
	for k := len(arrivals) - 2; n > 1; k-- {
		if k < 0 {
			t.Fatalf("returned a payload cut from messages %v, of pieces that did not arrive", from[1:])
		}
		d := arrivals[k]
		switch {
		case d.fate == overflow:
			t.Fatalf("returned a payload cut from messages %v, across datagrams lost by the receiver", from[1:])
		case d.msg == prev.msg && d.n == prev.n:
			continue // the same piece twice
		case d.n != n-1 || d.msg != from[n-1]:
			t.Fatalf("returned a payload cut from messages %v; piece %d of message %d arrived before piece %d of message %d",
				from[1:], d.n, d.msg, n, from[n])
		}
		n, prev = n-1, d
	}
	if slices.ContainsFunc(sent, func(d datagram) bool { return d.fate == delay }) {
		return
	}
	for n := 1; n < count; n++ {
		a, b := from[n], from[n+1]
		if a == b {
			continue
		}
		if a > b {
			t.Fatalf("returned a payload cut from messages %v: out of order", from[1:])
		}
		between := false
		for _, d := range sent {
			if d.sender != sender {
				continue
			}
			if d.msg == a && d.n == n {
				between = true
				continue
			}
			if d.msg == b && d.n == n+1 {
				break
			}
			if between && d.fate != lose {
				t.Fatalf("returned a payload cut from messages %v, though piece %d of message %d was not lost (%v)",
					from[1:], d.n, d.msg, d.fate)
			}
		}
	}
}

// TestReassembleFaults runs the model with random faults: every payload
// returned is exact, or a mixture the format cannot tell from a message;
// with the messages spaced, none is a mixture and every message is
// counted once.
func TestReassembleFaults(t *testing.T) {
	for _, spaced := range []bool{true, false} {
		for _, name := range []string{"loss", "duplication", "delay", "overflow", "mix"} {
			t.Run(fmt.Sprintf("%s/spaced=%v", name, spaced), func(t *testing.T) {
				var total Stats
				for seed := range uint64(200) {
					rng := rand.New(rand.NewPCG(seed, 11))
					plan := faultPlan{spaced: spaced, each: 10}
					for range 1 + rng.IntN(3) {
						plan.counts = append(plan.counts, 2+rng.IntN(3))
					}
					plan.fates = func(int) fate {
						roll := rng.IntN(100)
						switch {
						case name == "loss" && roll < 10:
							return lose
						case name == "duplication" && roll < 10:
							return duplicate
						case name == "delay" && roll < 25:
							return delay
						case name == "overflow" && roll < 10:
							return overflow
						case name == "mix":
							return fateOf(byte(rng.Uint32()))
						}
						return deliver
					}
					st := plan.run(t)
					total.Completed += st.Completed
					total.Duplicates += st.Duplicates
					total.Incomplete += st.Incomplete
					total.Stalled += st.Stalled
					total.Overrun += st.Overrun
				}
				if total.Completed == 0 {
					t.Fatal("no message completed")
				}
				t.Logf("%+v", total)
			})
		}
	}
}

// FuzzReassembleFaults runs the model with the faults the input gives:
// byte 0 says whether the messages are spaced and how many senders there
// are, bytes 1-3 the N of each sender's messages, and each next byte the
// fate of a datagram (fateOf), in the order sent.
func FuzzReassembleFaults(f *testing.F) {
	f.Add([]byte{0x00, 0, 0, 0})
	f.Add([]byte{0x01, 1, 0, 0, 0, 4, 4, 0, 0, 0})          // a message's end and the next one's start lost
	f.Add([]byte{0x03, 2, 1, 0, 5, 6, 0, 7, 0, 4, 0, 6, 5}) // a bit of everything
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		plan := faultPlan{spaced: data[0]&1 != 0, each: 8}
		for s := range 1 + int(data[0]>>1)%3 {
			plan.counts = append(plan.counts, 2+int(data[1+s])%3)
		}
		fates := data[4:]
		plan.fates = func(k int) fate {
			if k < len(fates) {
				return fateOf(fates[k])
			}
			return deliver
		}
		plan.run(t)
	})
}
