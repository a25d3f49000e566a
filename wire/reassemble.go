package wire

import (
	"bytes"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Limits bounds what a Reassembler holds. A zero field takes its default.
type Limits struct {
	// MaxMessageBytes is the largest reassembled payload accepted (default
	// 64 MiB). A fragment whose N could not fit (N > MaxMessageBytes/MTU+1)
	// is rejected before anything is allocated. It is lowered to
	// MaxPendingBytes if above it, since such a message could never be held.
	MaxMessageBytes int
	// MaxPendingBytes bounds the buffer bytes held, for incomplete messages
	// and for buffers kept for reuse together (default 64 MiB). Besides
	// these, each entry keeps a copy of its topic and 4 bytes per piece.
	MaxPendingBytes int
	// MaxPending is the most incomplete messages held at once (default 64).
	MaxPending int
	// Timeout drops an incomplete message this long after its first
	// fragment arrived (default 5s).
	Timeout time.Duration
}

// DefaultLimits returns the limits used for zero fields: 64 MiB messages,
// 64 MiB pending, 64 pending messages, 5 second timeout.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes: 64 << 20,
		MaxPendingBytes: 64 << 20,
		MaxPending:      64,
		Timeout:         5 * time.Second,
	}
}

// ReassemblyStats counts what a Reassembler did with fragments.
type ReassemblyStats struct {
	Completed  uint64 // messages reassembled and returned
	Duplicates uint64 // fragments dropped as identical to one held
	Evicted    uint64 // incomplete messages dropped to make room (oldest first) or superseded by a new message with the same key
	Expired    uint64 // incomplete messages dropped after Limits.Timeout
	Rejected   uint64 // fragments refused: bad n or N, too large, piece too long, or completing a payload that is not valid msgpack
}

// Reassembler joins fragments back into payloads within fixed memory
// bounds. Incomplete messages are told apart by sender address and port,
// topic and N: the Python receiver used the sender's IP only, so two
// publishers on one host with the same topic and N corrupted each other.
//
// Piece n is copied once, to offset (n-1)*MTU of a buffer reserved for the
// message when its first fragment arrives. Every piece but the last is
// exactly MTU bytes in traffic from any sender of this format, so the
// completed buffer is the payload as it stands; pieces of other lengths
// are still accepted (a sender may have a smaller MTU) and closed up in
// place at completion. Buffers are kept and reused, so in steady state
// Add does not allocate.
//
// Create one with NewReassembler. Add, Expire and Pending must not be
// called concurrently; Stats may be called from any goroutine at any time.
type Reassembler struct {
	lim      Limits
	maxCount int      // largest acceptable N
	active   []*entry // incomplete messages, oldest first
	spare    []*entry // retired entries, kept for their buffers
	held     int      // sum of len(buf) over active
	total    int      // sum of len(buf) over active and spare; <= MaxPendingBytes

	completed, duplicates, evicted, expired, rejected atomic.Uint64
}

// entry is one incomplete message.
type entry struct {
	src   netip.AddrPort
	topic []byte // a copy: the frame's topic points into a reused datagram
	count int
	first time.Time // arrival of the first fragment, for Timeout
	buf   []byte    // piece n at offset (n-1)*MTU; len(buf) is what is accounted
	lens  []int32   // piece lengths by n-1; -1 while missing
	got   int       // pieces held
	short bool      // a piece before the last is shorter than MTU: close up at completion
}

// NewReassembler returns a Reassembler bounded by l, with zero fields of l
// replaced by those of DefaultLimits.
func NewReassembler(l Limits) *Reassembler {
	d := DefaultLimits()
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	if l.MaxPendingBytes <= 0 {
		l.MaxPendingBytes = d.MaxPendingBytes
	}
	if l.MaxPending <= 0 {
		l.MaxPending = d.MaxPending
	}
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	l.MaxMessageBytes = min(l.MaxMessageBytes, l.MaxPendingBytes)
	return &Reassembler{lim: l, maxCount: l.MaxMessageBytes/MTU + 1}
}

// Add stores fragment f, sent from src and received at now. First it drops
// incomplete messages older than Limits.Timeout.
//
// When f completes a message Add returns its payload: the msgpack encoding
// of the whole payload, checked to be exactly one msgpack value. The
// payload is valid only until the next call to Add, which may reuse its
// buffer.
//
// Otherwise it returns nil and either nil (f is stored) or why f was
// dropped: ErrNotFragment (f is a whole message), ErrFragmentCount or
// ErrFragmentIndex (n or N out of range), ErrTooLarge (the message would
// exceed Limits.MaxMessageBytes), ErrPieceTooLong (piece over MTU),
// ErrDuplicate (the same piece is already held) or ErrPayload (f completed
// a message whose payload is not valid msgpack; the message is dropped).
//
// A fragment whose number is already held with different bytes starts a
// new message: the protocol has no message id, so the one sign that a
// sender has moved on to its next message under the same sender, topic
// and N is a piece number coming round again, which means the message
// held lost fragments and will never complete. The old one is evicted.
// (If the old message lost exactly the pieces the new one sends first,
// they are merged; the msgpack check at completion catches most such
// mixtures, as it would in the Python receiver.)
func (r *Reassembler) Add(src netip.AddrPort, f Frame, now time.Time) ([]byte, error) {
	if err := r.check(f); err != nil {
		r.rejected.Add(1)
		return nil, err
	}
	r.Expire(now)

	i := r.find(src, f.Topic, f.Count)
	if i >= 0 {
		e := r.active[i]
		if held := e.lens[f.Index-1]; held >= 0 {
			off := (f.Index - 1) * MTU
			if bytes.Equal(e.buf[off:off+int(held)], f.Payload) {
				r.duplicates.Add(1)
				return nil, ErrDuplicate
			}
			r.retire(i)
			r.evicted.Add(1)
			i = -1
		}
	}
	if i < 0 {
		r.start(src, f.Topic, f.Count, now)
		i = len(r.active) - 1
	}
	e := r.active[i]
	e.put(f.Index, f.Payload)
	if e.got < e.count {
		return nil, nil
	}

	payload := e.assemble()
	r.retire(i) // its buffer stays untouched until the next Add
	if rest, err := msgp.Skip(payload); err != nil || len(rest) != 0 {
		r.rejected.Add(1)
		return nil, ErrPayload
	}
	r.completed.Add(1)
	return payload, nil
}

// check validates f against the format and the limits before anything
// sized by n or N is touched.
func (r *Reassembler) check(f Frame) error {
	switch {
	case f.Count == 0:
		return ErrNotFragment
	case f.Count < 0:
		return ErrFragmentCount
	case f.Index < 1 || f.Index > f.Count:
		return ErrFragmentIndex
	case f.Count > r.maxCount:
		return ErrTooLarge
	case len(f.Payload) > MTU:
		return ErrPieceTooLong
	case (f.Index-1)*MTU+len(f.Payload) > r.reservation(f.Count):
		return ErrTooLarge // only a last piece can get here
	}
	return nil
}

// reservation is the buffer size for a message of count pieces: room for
// count full pieces, but no more than the largest message allowed. N is
// already checked, so this cannot overflow.
func (r *Reassembler) reservation(count int) int {
	return min(count*MTU, r.lim.MaxMessageBytes)
}

// find returns the index in r.active of the message keyed by src, topic
// and count, or -1. A linear scan: there are at most MaxPending entries.
func (r *Reassembler) find(src netip.AddrPort, topic []byte, count int) int {
	for i, e := range r.active {
		if e.src == src && e.count == count && bytes.Equal(e.topic, topic) {
			return i
		}
	}
	return -1
}

// start appends a new, empty entry to r.active. It makes room first:
// the oldest incomplete messages are evicted until the count and the
// bytes held fit the limits, then a spare buffer is reused or, failing
// that, spare buffers are dropped until a new one fits the budget.
func (r *Reassembler) start(src netip.AddrPort, topic []byte, count int, now time.Time) {
	need := r.reservation(count) // <= MaxMessageBytes <= MaxPendingBytes, so the loops end
	for len(r.active) >= r.lim.MaxPending || r.held+need > r.lim.MaxPendingBytes {
		r.evictOldest()
	}
	e := r.takeSpare(need)
	if len(e.buf) < need {
		for r.total+need > r.lim.MaxPendingBytes {
			s := r.spareWithBuffer()
			r.total -= len(s.buf)
			s.buf = nil
		}
		e.buf = make([]byte, need)
		r.total += need
	}
	r.held += len(e.buf)

	e.src, e.count, e.first, e.got, e.short = src, count, now, 0, false
	e.topic = append(e.topic[:0], topic...)
	if cap(e.lens) >= count {
		e.lens = e.lens[:count]
	} else {
		e.lens = make([]int32, count)
	}
	for j := range e.lens {
		e.lens[j] = -1
	}
	r.active = append(r.active, e)
}

// takeSpare removes and returns the spare entry whose buffer fits need
// most tightly while keeping the bytes held within MaxPendingBytes. It
// ignores buffers over twice need, so a small message does not pin a
// huge buffer. With none fitting it returns a spare entry without a
// buffer, or failing that any spare entry with its buffer released, or a
// new entry.
func (r *Reassembler) takeSpare(need int) *entry {
	best, bare := -1, -1
	for j, s := range r.spare {
		n := len(s.buf)
		fits := n >= need && n <= 2*need && r.held+n <= r.lim.MaxPendingBytes
		if fits && (best < 0 || n < len(r.spare[best].buf)) {
			best = j
		}
		if s.buf == nil {
			bare = j
		}
	}
	if best < 0 {
		switch {
		case bare >= 0:
			best = bare
		case len(r.spare) > 0:
			best = len(r.spare) - 1
			r.total -= len(r.spare[best].buf)
			r.spare[best].buf = nil
		default:
			return new(entry)
		}
	}
	e := r.spare[best]
	last := len(r.spare) - 1
	r.spare[best] = r.spare[last]
	r.spare[last] = nil
	r.spare = r.spare[:last]
	return e
}

func (r *Reassembler) spareWithBuffer() *entry {
	for _, s := range r.spare {
		if s.buf != nil {
			return s
		}
	}
	return nil
}

func (r *Reassembler) evictOldest() {
	r.retire(0)
	r.evicted.Add(1)
}

// retire moves r.active[i] to the spares, keeping r.active oldest first.
func (r *Reassembler) retire(i int) {
	e := r.active[i]
	copy(r.active[i:], r.active[i+1:])
	r.active[len(r.active)-1] = nil
	r.active = r.active[:len(r.active)-1]
	r.held -= len(e.buf)
	r.spare = append(r.spare, e)
}

// put copies piece n into its slot.
func (e *entry) put(n int, piece []byte) {
	copy(e.buf[(n-1)*MTU:], piece)
	e.lens[n-1] = int32(len(piece))
	e.got++
	if n < e.count && len(piece) != MTU {
		e.short = true
	}
}

// assemble returns the payload of a complete entry. With every piece
// before the last a full MTU, the slots already touch; otherwise the
// pieces are moved down in order to close the gaps (each moves to an
// offset no later than its own, so copy's memmove is safe).
func (e *entry) assemble() []byte {
	if !e.short {
		end := (e.count-1)*MTU + int(e.lens[e.count-1])
		return e.buf[:end:end]
	}
	w := 0
	for j, l := range e.lens {
		off := j * MTU
		w += copy(e.buf[w:], e.buf[off:off+int(l)])
	}
	return e.buf[:w:w]
}

// Expire drops the incomplete messages whose first fragment arrived more
// than Limits.Timeout before now, and returns how many. Add calls it, so
// only a receiver that wants memory back while no fragments arrive needs
// to.
func (r *Reassembler) Expire(now time.Time) int {
	n := 0
	for i := 0; i < len(r.active); {
		if now.Sub(r.active[i].first) > r.lim.Timeout {
			r.retire(i)
			n++
			continue
		}
		i++
	}
	r.expired.Add(uint64(n))
	return n
}

// Pending returns the number of incomplete messages held and the buffer
// bytes reserved for them (at most Limits.MaxPendingBytes).
func (r *Reassembler) Pending() (messages, bytes int) {
	return len(r.active), r.held
}

// Stats returns the counters. It is safe to call concurrently with Add.
func (r *Reassembler) Stats() ReassemblyStats {
	return ReassemblyStats{
		Completed:  r.completed.Load(),
		Duplicates: r.duplicates.Load(),
		Evicted:    r.evicted.Load(),
		Expired:    r.expired.Load(),
		Rejected:   r.rejected.Load(),
	}
}
