package reassembly

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Piece is a fragment of mcl/2 (docs/mcl2.md): piece Index of Count of
// message Message from sender Sender, a Size-byte payload. The caller
// has checked that the piece's length and place agree with Index, Count
// and Size (mcl2.Next does).
type Piece struct {
	Sender  uint64
	Message uint64
	Topic   []byte
	Data    []byte
	Offset  int // where Data goes in the payload
	Index   int
	Count   int
	Size    int
}

// recent is how many finished messages a Joiner remembers, so that late
// and repeated pieces of one it completed or dropped do not start it over.
const recent = 256

// A Joiner joins the fragments of mcl/2 back into payloads, exactly or
// not at all, within the same Limits as a Reassembler. Unlike the seed
// format's, mcl/2's fragments carry a sender id and a message id, so the
// pieces of a message are known whatever their order, and two messages
// never mix. A message is delivered when all its pieces have arrived, in
// any order, and they join into one msgpack value; it is dropped and
// counted when no piece of it came for Limits.Gap (Stalled: senders send
// the pieces of a message back to back, so the missing ones were lost),
// when it is older than Limits.Timeout (Expired), when room is needed
// for newer ones (Evicted), or when a piece disagrees with the first
// (Invalid).
//
// Memory: a message's buffer is its whole size, reserved when its first
// piece arrives, and counted with the buffers kept for reuse against
// Limits.MaxPendingBytes; the oldest messages make room for new ones.
//
// Add, Expire, Pending and Recycle must not be called concurrently;
// Stats may be called from any goroutine at any time.
type Joiner struct {
	lim    Limits
	active []*joining // oldest first
	free   []*joining
	spare  [][]byte // buffers kept for reuse, length 0
	total  int      // bytes of the buffers of active and spare
	done   [recent]key
	next   int // where done is written next

	completed, duplicates, stalled, evicted atomic.Uint64
	expired, invalid, rejected              atomic.Uint64
}

type key struct{ sender, message uint64 }

// joining is one message being joined.
type joining struct {
	key
	topic  []byte
	count  int
	buf    []byte   // the payload, Size long
	seen   []uint64 // bit i set once piece i arrived
	have   int      // pieces arrived
	first  time.Time
	latest time.Time
}

// NewJoiner returns a Joiner bounded by l, zero fields of l replaced by
// those of DefaultLimits.
func NewJoiner(l Limits) *Joiner {
	return &Joiner{lim: New(l).Limits()}
}

// Add takes piece p, which arrived at now. It returns the payload when p
// completes its message: the Joiner's buffer, which the caller owns from
// then on and may give back with Recycle. Errors: ErrTooLarge for a
// message over Limits.MaxMessageBytes, ErrDuplicate for a piece that
// arrived before, or of a message completed or dropped lately,
// ErrPieceSize for a piece whose topic, count or size disagree with the
// first piece of its message (the message is dropped), and ErrPayload
// when the pieces do not join into one msgpack value (dropped).
func (j *Joiner) Add(p Piece, now time.Time) ([]byte, error) {
	j.Expire(now)
	if p.Size > j.lim.MaxMessageBytes {
		j.rejected.Add(1)
		return nil, ErrTooLarge
	}
	k := key{p.Sender, p.Message}
	e := j.find(k)
	if e == nil {
		if j.finished(k) {
			j.duplicates.Add(1)
			return nil, ErrDuplicate
		}
		e = j.start(k, p, now)
	} else if e.count != p.Count || len(e.buf) != p.Size || string(e.topic) != string(p.Topic) {
		j.invalid.Add(1)
		j.retire(e)
		return nil, ErrPieceSize
	}
	w, bit := p.Index/64, uint64(1)<<(p.Index%64)
	if e.seen[w]&bit != 0 {
		j.duplicates.Add(1)
		return nil, ErrDuplicate
	}
	e.seen[w] |= bit
	e.have++
	e.latest = now
	copy(e.buf[p.Offset:], p.Data)
	if e.have < e.count {
		return nil, nil
	}
	payload := e.buf
	e.buf = nil // the caller's now
	j.total -= cap(payload)
	j.retire(e)
	if rest, err := msgp.Skip(payload); err != nil || len(rest) != 0 {
		j.invalid.Add(1)
		j.Recycle(payload)
		return nil, ErrPayload
	}
	j.completed.Add(1)
	return payload, nil
}

func (j *Joiner) find(k key) *joining {
	for i := len(j.active) - 1; i >= 0; i-- { // the newest is likeliest
		if j.active[i].key == k {
			return j.active[i]
		}
	}
	return nil
}

func (j *Joiner) finished(k key) bool {
	for _, d := range j.done {
		if d == k {
			return true
		}
	}
	return false
}

// start begins joining the message of p, making room for it first.
func (j *Joiner) start(k key, p Piece, now time.Time) *joining {
	for len(j.active) >= j.lim.MaxPending {
		j.evicted.Add(1)
		j.retire(j.active[0])
	}
	buf := j.buffer(p.Size)
	var e *joining
	if n := len(j.free); n > 0 {
		e, j.free = j.free[n-1], j.free[:n-1]
	} else {
		e = new(joining)
	}
	words := (p.Count + 63) / 64
	if cap(e.seen) < words {
		e.seen = make([]uint64, words)
	}
	e.seen = e.seen[:words]
	clear(e.seen)
	e.key, e.count, e.buf, e.have, e.first = k, p.Count, buf, 0, now
	e.topic = append(e.topic[:0], p.Topic...)
	j.active = append(j.active, e)
	return e
}

// buffer returns a buffer of length n, reused or new, within
// MaxPendingBytes: spare buffers go first, then the oldest messages,
// whose buffers are then reused. New buffers are rounded up to a power of
// two (within the limit), so that messages of similar sizes reuse each
// other's: a sender claiming ever other sizes must not cost an allocation
// of megabytes per datagram.
func (j *Joiner) buffer(n int) []byte {
	for {
		best := -1
		for i, s := range j.spare {
			if cap(s) >= n && (best < 0 || cap(s) < cap(j.spare[best])) {
				best = i
			}
		}
		if best >= 0 {
			b := j.spare[best][:n]
			j.spare[best] = j.spare[len(j.spare)-1]
			j.spare = j.spare[:len(j.spare)-1]
			return b
		}
		size := min(max(n, 1<<bits.Len(uint(n-1))), j.lim.MaxPendingBytes)
		switch {
		case j.total+size <= j.lim.MaxPendingBytes:
			j.total += size
			return make([]byte, n, size)
		case len(j.active) > 0:
			j.evicted.Add(1)
			j.retire(j.active[0]) // its buffer becomes a spare
		default: // spares only, none large enough
			k := len(j.spare) - 1
			j.total -= cap(j.spare[k])
			j.spare = j.spare[:k]
		}
	}
}

// retire ends e, completed or dropped: its buffer, if it still has one,
// is kept for reuse, and its key remembered.
func (j *Joiner) retire(e *joining) {
	for i, a := range j.active {
		if a == e {
			n := copy(j.active[i:], j.active[i+1:])
			j.active[i+n] = nil
			j.active = j.active[:i+n]
			break
		}
	}
	if e.buf != nil {
		j.spare = append(j.spare, e.buf[:0])
		e.buf = nil
	}
	j.done[j.next] = e.key
	j.next = (j.next + 1) % recent
	if len(j.free) < j.lim.MaxPending {
		j.free = append(j.free, e)
	}
}

// Recycle gives the Joiner back a payload buffer Add returned, for reuse;
// one that would take it over Limits.MaxPendingBytes is left to the
// garbage collector. The caller must not use b afterwards.
func (j *Joiner) Recycle(b []byte) {
	if cap(b) == 0 || j.total+cap(b) > j.lim.MaxPendingBytes {
		return
	}
	j.total += cap(b)
	j.spare = append(j.spare, b[:0])
}

// Expire drops the messages that can no longer complete by now: those
// none of whose pieces came for Limits.Gap (Stalled), and those started
// more than Limits.Timeout before now (Expired). It returns how many it
// dropped. Add calls it; a receiver calls it too while nothing arrives.
func (j *Joiner) Expire(now time.Time) int {
	n := 0
	for i := 0; i < len(j.active); {
		e := j.active[i]
		switch {
		case now.Sub(e.latest) > j.lim.Gap:
			j.stalled.Add(1)
		case now.Sub(e.first) > j.lim.Timeout:
			j.expired.Add(1)
		default:
			i++
			continue
		}
		j.retire(e)
		n++
	}
	return n
}

// Pending returns the number of messages being joined and the bytes
// reserved for them.
func (j *Joiner) Pending() (messages, bytes int) {
	for _, e := range j.active {
		bytes += len(e.buf)
	}
	return len(j.active), bytes
}

// Stats returns the counters, in the Reassembler's terms. It is safe to
// call concurrently with Add.
func (j *Joiner) Stats() Stats {
	return Stats{
		Completed:  j.completed.Load(),
		Duplicates: j.duplicates.Load(),
		Stalled:    j.stalled.Load(),
		Evicted:    j.evicted.Load(),
		Expired:    j.expired.Load(),
		Invalid:    j.invalid.Load(),
		Rejected:   j.rejected.Load(),
	}
}
