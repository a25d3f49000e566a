package reassembly

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// cut cuts payload into count pieces the mcl/2 way: ceil(size/count)
// bytes each, the last the rest.
func cut(sender, id uint64, topic string, payload []byte, count int) []Piece {
	p := (len(payload) + count - 1) / count
	var ps []Piece
	for i := range count {
		off := i * p
		end := min(off+p, len(payload))
		ps = append(ps, Piece{Sender: sender, Message: id, Topic: []byte(topic), Data: payload[off:end], Offset: off, Index: i, Count: count, Size: len(payload)})
	}
	return ps
}

func binValue(n int, seed byte) []byte {
	b := []byte{0xc6, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	for i := range n {
		b = append(b, seed+byte(i*7))
	}
	return b
}

// TestJoinerAnyOrder joins the pieces of interleaved messages from two
// senders with the same message ids, in shuffled order with duplicates:
// each message comes out once, exact.
func TestJoinerAnyOrder(t *testing.T) {
	j := NewJoiner(Limits{})
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]bool{}
	var all []Piece
	for s := uint64(1); s <= 2; s++ {
		for id := uint64(0); id < 5; id++ {
			p := binValue(1000+int(id)*37, byte(s*16+id))
			want[string(p)] = true
			all = append(all, cut(s, id, "t", p, 3+int(id))...)
		}
	}
	all = append(all, all[:10]...) // duplicates
	rng.Shuffle(len(all), func(a, b int) { all[a], all[b] = all[b], all[a] })
	now := time.Unix(0, 0)
	got := 0
	for _, p := range all {
		payload, err := j.Add(p, now)
		if payload != nil {
			if !want[string(payload)] {
				t.Fatalf("joined a payload that was not sent, or twice: %d bytes", len(payload))
			}
			delete(want, string(payload))
			got++
		} else if err != nil && !errors.Is(err, ErrDuplicate) {
			t.Fatalf("Add: %v", err)
		}
	}
	if len(want) != 0 || got != 10 {
		t.Fatalf("joined %d, %d never", got, len(want))
	}
	if st := j.Stats(); st.Completed != 10 || st.Duplicates != 10 || st.Dropped() != 0 {
		t.Fatalf("stats %+v", st)
	}
	if m, b := j.Pending(); m != 0 || b != 0 {
		t.Fatalf("pending %d messages, %d bytes", m, b)
	}
}

// TestJoinerDrops checks each way a message is dropped, and that it is
// counted once.
func TestJoinerDrops(t *testing.T) {
	t0 := time.Unix(0, 0)
	l := Limits{Gap: 10 * time.Millisecond, Timeout: 50 * time.Millisecond, MaxPending: 2, MaxPendingBytes: 10000, MaxMessageBytes: 5000}
	p := cut(1, 1, "t", binValue(3000, 1), 3)

	j := NewJoiner(l)
	j.Add(p[0], t0)
	if n := j.Expire(t0.Add(11 * time.Millisecond)); n != 1 || j.Stats().Stalled != 1 {
		t.Fatalf("stall: expired %d, %+v", n, j.Stats())
	}
	if _, err := j.Add(p[1], t0.Add(12*time.Millisecond)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("a late piece of a dropped message: %v, want ErrDuplicate", err)
	}

	j = NewJoiner(l)
	at := t0
	for _, q := range cut(1, 2, "t", binValue(3000, 1), 10)[:7] { // each in time, the whole too slow
		at = at.Add(9 * time.Millisecond)
		j.Add(q, at)
	}
	if st := j.Stats(); st.Expired != 1 {
		t.Fatalf("timeout: %+v", st)
	}

	j = NewJoiner(l)
	j.Add(p[0], t0)
	bad := p[1]
	bad.Count = 4
	if _, err := j.Add(bad, t0); !errors.Is(err, ErrPieceSize) || j.Stats().Invalid != 1 {
		t.Fatalf("disagreeing piece: %v, %+v", err, j.Stats())
	}

	j = NewJoiner(l)
	if _, err := j.Add(Piece{Sender: 1, Size: 5001, Count: 2, Data: make([]byte, 2501)}, t0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	for id := range uint64(4) { // 3000 bytes each: the budget holds three, MaxPending two
		j.Add(cut(2, id, "t", binValue(2995, 0), 2)[0], t0)
	}
	if m, b := j.Pending(); m != 2 || b > 10000 || j.Stats().Evicted != 2 {
		t.Fatalf("bounds: %d pending, %d bytes, %+v", m, b, j.Stats())
	}

	j = NewJoiner(l)
	junk := cut(3, 1, "t", append(binValue(500, 0), 0x01), 2) // a value, then a byte more
	j.Add(junk[0], t0)
	if _, err := j.Add(junk[1], t0); !errors.Is(err, ErrPayload) || j.Stats().Invalid != 1 {
		t.Fatalf("not one value: %v, %+v", err, j.Stats())
	}
}

// FuzzJoiner feeds pieces of a few messages, chosen, repeated, dropped
// and reordered by the fuzzer, with made-up pieces between: whatever is
// joined must be one of the messages, exact, and each at most once; the
// bytes held never pass the limit.
func FuzzJoiner(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		l := Limits{MaxPending: 3, MaxPendingBytes: 8000, MaxMessageBytes: 4000, Gap: 5 * time.Millisecond, Timeout: 20 * time.Millisecond}
		j := NewJoiner(l)
		var pieces []Piece
		sent := map[string]bool{}
		for id := range uint64(3) {
			p := binValue(700+int(id)*300, byte(id))
			sent[string(p)] = true
			pieces = append(pieces, cut(1, id%2, "t", p, 2+int(id))...) // ids 0 and 1 reused: a second sender-less collision
		}
		at := time.Unix(0, 0)
		joined := map[string]bool{}
		for _, op := range ops {
			at = at.Add(time.Duration(op>>5) * time.Millisecond)
			var p Piece
			if int(op&31) < len(pieces) {
				p = pieces[op&31]
			} else {
				n := int(op) * 13
				p = Piece{Sender: uint64(op & 3), Message: uint64(op >> 4), Topic: []byte{op}, Data: make([]byte, n/2), Index: 0, Count: 2, Size: n}
			}
			payload, _ := j.Add(p, at)
			if payload != nil {
				if !sent[string(payload)] {
					// Messages 0 and 2 share sender and id: a mix of the
					// two must never come out.
					t.Fatalf("joined %d bytes that were never sent", len(payload))
				}
				joined[string(payload)] = true
				j.Recycle(payload)
			}
			if _, b := j.Pending(); b > l.MaxPendingBytes || j.total > l.MaxPendingBytes {
				t.Fatalf("holds %d bytes, total %d", b, j.total)
			}
		}
	})
}

// TestJoinerClaims: pieces of messages that will never complete, each
// claiming tens of megabytes of another size, reuse buffers instead of
// allocating what each claims.
func TestJoinerClaims(t *testing.T) {
	j := NewJoiner(Limits{})
	piece := make([]byte, 1400)
	id := uint64(0)
	claim := func() {
		size := 33<<20 + int(id%7)*(4<<20) // 33 to 57 MiB
		count := (size + 1399) / 1400
		id++
		j.Add(Piece{Sender: id, Message: id, Data: piece[:(size+count-1)/count], Index: 0, Count: count, Size: size}, time.Unix(0, 0))
	}
	for range 10 {
		claim()
	}
	if n := testing.AllocsPerRun(100, claim); n > 0 {
		t.Fatalf("%.1f allocations per claim, want none", n)
	}
	if _, b := j.Pending(); b > 64<<20 || j.total > 64<<20 {
		t.Fatalf("holds %d bytes, %d in all", b, j.total)
	}
}
