// Package reassembly joins the fragments of the seed framing back into
// payloads, exactly or not at all, within fixed bounds. Package wire
// exposes it as wire.Reassembler; the receive path of package mcl uses it
// directly, for what wire does not expose: reading pieces straight into
// place (Ahead, First) and lending reassembled payloads out (Keep,
// Recycle). Its types mirror wire's (Frame, Limits, Stats), which convert
// to them, and wire documents them.
package reassembly

import (
	"bytes"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

// MTU is the seed's piece size, wire.MTU.
const MTU = 60000

// Frame is a fragment: wire.Frame, to which it converts.
type Frame struct {
	Topic   []byte
	Payload []byte
	Index   int
	Count   int
}

// Limits bound a Reassembler: wire.Limits, which documents them and
// converts to it.
type Limits struct {
	MaxMessageBytes int
	MaxPendingBytes int
	MaxPending      int
	Timeout         time.Duration
	Gap             time.Duration
}

// maxLimit is the largest MaxPendingBytes (and so MaxMessageBytes) a
// Reassembler takes: larger values are lowered to it.
const maxLimit = 512 << 20

// DefaultLimits returns the limits used for zero fields: 64 MiB messages,
// 64 MiB pending, 64 tracked messages, 5 second timeout, 200 ms gap.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes: 64 << 20,
		MaxPendingBytes: 64 << 20,
		MaxPending:      64,
		Timeout:         5 * time.Second,
		Gap:             200 * time.Millisecond,
	}
}

// Stats counts what a Reassembler did with fragments: wire.ReassemblyStats,
// which documents them and converts to it.
type Stats struct {
	Completed  uint64
	Duplicates uint64
	Incomplete uint64
	Stalled    uint64
	Overrun    uint64
	Evicted    uint64
	Expired    uint64
	Invalid    uint64
	Rejected   uint64
}

// Add adds o's counts to s's.
func (s *Stats) Add(o Stats) {
	s.Completed += o.Completed
	s.Duplicates += o.Duplicates
	s.Incomplete += o.Incomplete
	s.Stalled += o.Stalled
	s.Overrun += o.Overrun
	s.Evicted += o.Evicted
	s.Expired += o.Expired
	s.Invalid += o.Invalid
	s.Rejected += o.Rejected
}

// Dropped returns the number of messages dropped, for whatever reason:
// the sum of the counters of dropped messages.
func (s Stats) Dropped() uint64 {
	return s.Incomplete + s.Stalled + s.Overrun + s.Evicted + s.Expired + s.Invalid
}

// Reassembler joins fragments back into payloads, exactly or not at all,
// within fixed memory bounds.
//
// The format has no message id: the pieces of a message are known only by
// sender address and port, topic and N (the Python receiver used the
// sender's IP only, so two publishers on one host with the same topic and
// N corrupted each other). What tells one message's pieces from the next
// one's is how senders of this format send: pieces 1 to N, in order, back
// to back, from one socket. So a Reassembler takes the pieces of a message
// only in that order, each within Limits.Gap of the one before and with no
// datagram lost by the receiver in between (see Lost). Any other piece
// means pieces are missing, and the message is dropped and counted: a
// piece after a gap in the numbers, an earlier piece again (a new message,
// or one delayed or duplicated on the way), a piece after a pause, or the
// same piece number with other bytes. The one repeat accepted, and dropped
// as a duplicate, is the piece just received, byte for byte. A piece that
// cannot start or continue a message (its message lost piece 1) is
// dropped, and its message counted once. A path that reorders the pieces
// of one message loses that message instead of delivering it. What the
// format still cannot tell from a message (the end of one and the start of
// the next lost together, less than Gap apart) is in docs/wire.md.
//
// Memory grows with the piece bytes received, never with the N a
// fragment claims. A message's buffer holds its pieces back to back, each
// copied in once on arrival (or read there directly by a receiver that
// asked Ahead or First where it goes), so the completed buffer is the
// payload. Buffers grow by doubling, never past what the message can
// reach, and are kept and reused, so in steady state Add does not
// allocate.
//
// Create one with NewReassembler. Add, Lost, Expire, Pending, Ahead,
// First, Keep and Recycle must not be called concurrently; Stats may be
// called from any goroutine at any time.
type Reassembler struct {
	lim      Limits
	maxCount int      // largest acceptable N
	active   []*entry // messages tracked, oldest first
	free     []*entry // retired entries, kept for their topic slices; len(active)+len(free) <= MaxPending
	spare    [][]byte // buffers kept for reuse, each of length 0; at most MaxPending
	held     int      // sum of len(buf) over active: piece bytes received
	total    int      // sum of cap(buf) over active, plus cap over spare; <= MaxPendingBytes
	lost     uint64   // the receiver's count of lost datagrams, as Lost last said
	scratch  []uint64 // a copy of an entry's bitmap while it is replaced

	completed, duplicates, incomplete, stalled, overrun atomic.Uint64
	evicted, expired, invalid, rejected                 atomic.Uint64
}

// entry is one tracked message: the latest of the stream of messages from
// one sender with one topic and N. While it is assembling, its buffer
// holds pieces 1 to index in order; once completed or dropped it only
// remembers which pieces came, until Gap after the latest.
type entry struct {
	src        netip.AddrPort
	topic      []byte // a copy: the frame's topic points into a reused datagram
	count      int
	assembling bool
	seen       []uint64  // bit n-1 set once piece n arrived
	index      int       // the number of the latest piece to arrive
	last       int       // its length
	at         time.Time // its arrival, for Gap
	lost       uint64    // Reassembler.lost when it arrived (assembling)
	first      time.Time // arrival of piece 1, for Timeout (assembling)
	size       int       // length of piece 1 (assembling): pieces 2..N-1 have it, piece N at most it
	buf        []byte    // pieces 1..index (assembling); nil otherwise
	prev       []uint64  // when piece 1 came after a message without one: the pieces that message had
}

// counts reports whether dropping e, assembling, loses a message not yet
// counted: not when it holds only pieces that the message before, which
// came without a piece 1 and is counted already, lacked, and so were
// likely its own, late.
func (e *entry) counts() bool {
	if len(e.prev) == 0 {
		return true
	}
	for w, bits := range e.seen {
		if bits&e.prev[w] != 0 {
			return true
		}
	}
	return false
}

// New returns a Reassembler bounded by l, with zero fields of l
// replaced by those of DefaultLimits.
func New(l Limits) *Reassembler {
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
	if l.Gap <= 0 {
		l.Gap = d.Gap
	}
	// Past maxLimit, sizes doubled on the way would overflow a 32-bit int,
	// and N's bitmap would grow with the claims of any datagram.
	l.MaxPendingBytes = min(l.MaxPendingBytes, maxLimit)
	l.MaxMessageBytes = min(l.MaxMessageBytes, l.MaxPendingBytes)
	return &Reassembler{lim: l, maxCount: l.MaxMessageBytes/MTU + 1}
}

// Limits returns the limits in force, defaults filled in.
func (r *Reassembler) Limits() Limits { return r.lim }

// Lost tells the Reassembler how many datagrams the receiver has lost so
// far, counting from any start: on Linux, the SO_RXQ_OVFL counter that
// comes with each datagram (the socket's drops when it was queued). Call
// it before Add with the count the fragment came with. A message whose
// next piece comes with another count than its previous piece is dropped
// (Overrun): the datagrams lost between them may have been its missing
// pieces and the first ones of the sender's next message, whose remaining
// pieces would otherwise complete it.
func (r *Reassembler) Lost(count uint64) { r.lost = count }

// Add stores fragment f, sent from src and received at now (the
// datagram's arrival: Limits.Gap is measured between arrivals). First it
// drops the messages that can no longer complete (see Expire).
//
// When f completes a message Add returns its payload: the msgpack encoding
// of the whole payload, checked to be exactly one msgpack value. The
// payload is valid only until the next call to Add, which may reuse its
// buffer. A fragment with N = 1 is a whole payload in itself.
//
// Otherwise it returns nil and either nil (f is stored) or why f was
// not: ErrNotFragment (f is a whole message), ErrFragmentCount or
// ErrFragmentIndex (n or N out of range), ErrTooLarge (the message would
// exceed Limits.MaxMessageBytes), ErrPieceTooLong (piece over MTU),
// ErrDuplicate (a repeat of the piece received just before),
// ErrIncomplete (f's message is missing a piece: f is dropped, and the
// message counted once), ErrPieceSize (f's length does not fit the
// message's pieces: the message is dropped) or ErrPayload (f completed a
// message whose payload is not valid msgpack; the message is dropped).
//
// Storing f copies its piece into the message's buffer, which grows (or
// is swapped for a larger spare) as pieces arrive; when that would go
// over Limits.MaxPendingBytes, spare buffers are dropped and then the
// oldest other incomplete messages are evicted. A first fragment
// allocates about the length of its piece, whatever N it claims.
func (r *Reassembler) Add(src netip.AddrPort, f Frame, now time.Time) ([]byte, error) {
	if err := r.check(f); err != nil {
		r.rejected.Add(1)
		return nil, err
	}
	r.Expire(now)
	i := r.find(src, f.Topic, f.Count)
	if i < 0 {
		return r.begin(src, f, now)
	}
	e, n := r.active[i], f.Index
	if e.assembling {
		switch {
		case n == e.index && bytes.Equal(e.buf[len(e.buf)-e.last:], f.Payload):
			r.duplicates.Add(1)
			return nil, ErrDuplicate
		case e.lost != r.lost:
			// Datagrams lost since the latest piece: it cannot be known
			// that they were not this message's end and the next one's
			// start. f is taken for a piece of this message if it could
			// be one, else it begins the next.
			r.drop(e, &r.overrun)
			if !e.has(n) {
				e.note(n, len(f.Payload), now)
				return nil, ErrIncomplete
			}
			r.retire(i)
			return r.begin(src, f, now)
		case n == e.index+1:
			return r.append(e, f.Payload, now)
		case n == 1 && !bytes.Equal(e.buf[:e.size], f.Payload):
			// The sender's next message began: this one lost its end.
			r.drop(e, &r.incomplete)
			r.retire(i)
			return r.begin(src, f, now)
		}
		// A piece skipped, or one again out of turn (delayed or
		// duplicated on the way): the message cannot complete, and f is
		// taken for one of its pieces.
		r.drop(e, &r.incomplete)
		e.note(n, len(f.Payload), now)
		return nil, ErrIncomplete
	}
	// e was completed or dropped. A piece it has not seen is one of its
	// own, late; the one it saw last, again, is a duplicate; any other
	// begins the sender's next message.
	switch {
	case n == 1 && !e.has(1):
		// Piece 1 after a message that came without one: that
		// message's, late, or the start of the sender's next. It begins
		// a message, and what follows shows which it was: the sender's
		// next message sends again a piece that the one before had sent;
		// the late pieces of the one before fill only its gaps, and are
		// not counted again when they are dropped.
		r.scratch = append(r.scratch[:0], e.seen...)
		r.retire(i)
		out, err := r.begin(src, f, now)
		ne := r.active[len(r.active)-1]
		ne.prev = append(ne.prev[:0], r.scratch...)
		return out, err
	case !e.has(n):
		e.note(n, len(f.Payload), now)
		return nil, ErrIncomplete
	case n == e.index && n > 1 && len(f.Payload) == e.last:
		// A guess, since the bytes are gone; but a new message can
		// complete only from a piece 1, so it decides a count, never a
		// payload.
		r.duplicates.Add(1)
		return nil, ErrDuplicate
	}
	r.retire(i)
	return r.begin(src, f, now)
}

// begin starts tracking the message f belongs to, none being tracked for
// its key. Piece 1 starts assembling; any other is the first seen of a
// message that lost its first piece, counted now and passed over.
//
// A message of one piece (N = 1) completes at once and is not tracked
// after: a sender that sends such a message again sends the same
// datagram, which must be delivered again, like a whole message. It is
// still copied into a buffer of the Reassembler's, as every payload Add
// returns is, so that Keep and Recycle treat them all alike.
func (r *Reassembler) begin(src netip.AddrPort, f Frame, now time.Time) ([]byte, error) {
	e := r.start(src, f.Topic, f.Count)
	if f.Index == 1 {
		e.assembling, e.first, e.size = true, now, len(f.Payload)
		payload, err := r.append(e, f.Payload, now)
		if f.Count == 1 {
			r.retire(len(r.active) - 1) // e: reserve evicts only others
		}
		return payload, err
	}
	r.incomplete.Add(1)
	e.note(f.Index, len(f.Payload), now)
	return nil, ErrIncomplete
}

// append stores piece e.index+1 of e, assembling, and completes e with
// piece N.
func (r *Reassembler) append(e *entry, b []byte, now time.Time) ([]byte, error) {
	n := e.index + 1
	if (n < e.count && len(b) != e.size) || len(b) > e.size {
		r.drop(e, &r.invalid)
		e.note(n, len(b), now)
		return nil, ErrPieceSize
	}
	if len(e.buf)+len(b) > r.lim.MaxMessageBytes {
		// Cannot happen after check (pieces 1..N-1 are at most MTU
		// bytes each and piece N ends within the limit), but memory is
		// bounded by this test, not by that argument.
		r.drop(e, &r.rejected)
		e.note(n, len(b), now)
		return nil, ErrTooLarge
	}
	r.reserve(e, len(b))
	end := len(e.buf)
	e.buf = e.buf[:end+len(b)]
	place(e.buf[end:], b)
	r.held += len(b)
	e.note(n, len(b), now)
	e.lost = r.lost
	if n < e.count {
		return nil, nil
	}

	payload := e.buf[:len(e.buf):len(e.buf)]
	r.release(e) // the buffer stays untouched until the next Add
	e.assembling = false
	if rest, err := msgp.Skip(payload); err != nil || len(rest) != 0 {
		r.invalid.Add(1)
		return nil, ErrPayload
	}
	r.completed.Add(1)
	return payload, nil
}

// note records the arrival of piece n, of length l, as e's latest.
func (e *entry) note(n, l int, now time.Time) {
	e.seen[(n-1)/64] |= 1 << ((n - 1) % 64)
	e.index, e.last, e.at = n, l, now
}

// has reports whether piece n of e's message has arrived.
func (e *entry) has(n int) bool { return e.seen[(n-1)/64]&(1<<((n-1)%64)) != 0 }

// drop gives up on e, assembling, counting it in c: its buffer becomes a
// spare, and its later pieces are passed over.
func (r *Reassembler) drop(e *entry, c *atomic.Uint64) {
	if e.counts() {
		c.Add(1)
	}
	r.release(e)
	e.assembling = false
}

// release makes e's buffer a spare.
func (r *Reassembler) release(e *entry) {
	r.held -= len(e.buf)
	r.keep(e.buf)
	e.buf = nil
}

// Ahead lets a receiver read pieces straight into place. For the message
// being assembled from src with topic and count, it returns the number of
// the piece k places after the last one received (k >= 1) and the part of
// the message's buffer where that piece goes if the pieces between arrive
// first: as long as piece 1, or shorter for the last piece where the
// buffer ends. Ahead never grows the buffer: it returns 0 and nil when
// there is no such message, no such piece, or no room. A receiver that
// reads the piece into the region and then passes it to Add, as
// Frame.Payload, spares Add its copy. Ahead changes nothing: a region
// filled with other bytes is harmless, since Add copies whatever it is
// given.
func (r *Reassembler) Ahead(src netip.AddrPort, topic []byte, count, k int) (n int, into []byte) {
	i := r.find(src, topic, count)
	if i < 0 || k < 1 {
		return 0, nil
	}
	e := r.active[i]
	if !e.assembling || e.size <= 0 {
		return 0, nil
	}
	n = e.index + k
	off := len(e.buf) + (k-1)*e.size
	end := off + e.size
	switch {
	case n > e.count || off >= cap(e.buf):
		return 0, nil
	case end > cap(e.buf):
		if n < e.count {
			return 0, nil
		}
		end = cap(e.buf)
	}
	return n, e.buf[off:end:end]
}

// First lets a receiver read the first piece of a message straight into
// place before the message has begun. For a message from src with topic
// and count of which nothing is being assembled, it returns where Add will
// put piece 1 if that piece, of at most size bytes, is what it gets next:
// the start of the spare buffer Add will take for the message. It returns
// nil when Add would allocate a buffer instead, or a message with that key
// is being assembled. A receiver that reads the piece into the region and
// passes it to Add, as Frame.Payload, spares Add its copy; should Add take
// another buffer after all (Add expires and evicts messages first, which
// can change the spares), it copies the piece as usual. Like Ahead, First
// changes nothing: a region filled with other bytes is harmless.
func (r *Reassembler) First(src netip.AddrPort, topic []byte, count, size int) []byte {
	if count < 2 || count > r.maxCount || size < 1 || size > MTU {
		return nil
	}
	if i := r.find(src, topic, count); i >= 0 && r.active[i].assembling {
		return nil
	}
	// What reserve picks for the first piece of a new message.
	j := r.spareFor(size, r.ceiling(count))
	if j < 0 {
		return nil
	}
	return r.spare[j][:size:size]
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
	case (f.Index-1)*MTU+len(f.Payload) > r.lim.MaxMessageBytes:
		return ErrTooLarge // only a last piece can get here
	}
	return nil
}

// ceiling is the most bytes a message of count pieces can reach: count
// full pieces, but no more than the largest message allowed. It caps the
// growth of a buffer, never sizes one by itself. N is checked against
// maxCount, and the limits against maxLimit, so this cannot overflow.
func (r *Reassembler) ceiling(count int) int {
	if count > r.lim.MaxMessageBytes/MTU {
		return r.lim.MaxMessageBytes
	}
	return count * MTU
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

// start appends a new entry to r.active, making room first while
// MaxPending are tracked: the oldest message not being assembled goes
// quietly, failing that the oldest incomplete one is evicted. The entry
// has no buffer yet: reserve finds it one for the bytes that actually
// arrive.
func (r *Reassembler) start(src netip.AddrPort, topic []byte, count int) *entry {
	for len(r.active) >= r.lim.MaxPending {
		if i := slices.IndexFunc(r.active, func(a *entry) bool { return !a.assembling }); i >= 0 {
			r.retire(i)
		} else {
			r.evict(0)
		}
	}
	var e *entry
	if k := len(r.free) - 1; k >= 0 {
		e = r.free[k]
		r.free[k] = nil
		r.free = r.free[:k]
	} else {
		e = new(entry)
	}
	words := (count + 63) / 64 // count <= maxCount: a few words at most
	seen := e.seen
	if cap(seen) >= words {
		seen = seen[:words]
		clear(seen)
	} else {
		seen = make([]uint64, words)
	}
	*e = entry{src: src, topic: append(e.topic[:0], topic...), count: count, seen: seen, prev: e.prev[:0]}
	r.active = append(r.active, e)
	return e
}

// reserve makes room in e.buf for n more bytes. A spare buffer that is
// large enough is swapped in (e's old one becomes a spare); failing that,
// spare buffers are dropped and then the oldest other messages evicted
// until the bytes needed fit MaxPendingBytes, and a buffer of up to twice
// the old capacity, no more than the message can reach and no more than
// fits, is allocated. Either way the bytes received are copied over.
func (r *Reassembler) reserve(e *entry, n int) {
	need := len(e.buf) + n
	if need <= cap(e.buf) {
		return
	}
	ceil := r.ceiling(e.count) // need <= ceil: every piece is at most MTU
	for {
		if j := r.spareFor(need, ceil); j >= 0 {
			b := r.takeSpare(j)
			b = append(b, e.buf...)
			r.keep(e.buf)
			e.buf = b
			return
		}
		// need <= MaxMessageBytes <= MaxPendingBytes, so with e the only
		// message holding a buffer and no spares this holds and the loop
		// ends.
		if r.total-cap(e.buf)+need <= r.lim.MaxPendingBytes {
			break
		}
		if !r.dropSpare() {
			r.evict(slices.IndexFunc(r.active, func(a *entry) bool { return a != e && a.assembling }))
		}
	}
	size := max(need, min(2*cap(e.buf), ceil))
	size = min(size, r.lim.MaxPendingBytes-(r.total-cap(e.buf)))
	b := make([]byte, len(e.buf), size)
	copy(b, e.buf)
	r.total += size - cap(e.buf)
	e.buf = b // the old buffer, smaller, is left to the collector
}

// spareFor returns the index in r.spare of the buffer to take for a
// message that needs need bytes now and can reach ceil: the smallest of at
// least ceil bytes, else the largest of at least need; -1 if none holds
// need. Buffers over twice ceil are passed over, so a small message does
// not pin a huge buffer (which is dropped instead when room is needed).
func (r *Reassembler) spareFor(need, ceil int) int {
	best, bc := -1, 0
	for j, b := range r.spare {
		c := cap(b)
		if c < need || c > 2*ceil {
			continue
		}
		if best < 0 || (c >= ceil && (bc < ceil || c < bc)) || (bc < ceil && c > bc) {
			best, bc = j, c
		}
	}
	return best
}

// takeSpare removes buffer j from the spares and returns it.
func (r *Reassembler) takeSpare(j int) []byte {
	b := r.spare[j]
	last := len(r.spare) - 1
	r.spare[j] = r.spare[last]
	r.spare[last] = nil
	r.spare = r.spare[:last]
	return b
}

// keep adds b, no longer in use, to the spares. With MaxPending spares
// already kept the smallest buffer of them and b is dropped instead.
func (r *Reassembler) keep(b []byte) {
	if cap(b) == 0 {
		return
	}
	if len(r.spare) >= r.lim.MaxPending {
		j := 0
		for k, s := range r.spare {
			if cap(s) < cap(r.spare[j]) {
				j = k
			}
		}
		if cap(b) <= cap(r.spare[j]) {
			r.total -= cap(b)
			return
		}
		r.total -= cap(r.spare[j])
		r.takeSpare(j)
	}
	r.spare = append(r.spare, b[:0])
}

// dropSpare drops the largest spare buffer, so that a buffer that once
// held a huge message is the first to go. It reports false if there are
// none.
func (r *Reassembler) dropSpare() bool {
	if len(r.spare) == 0 {
		return false
	}
	j := 0
	for k, s := range r.spare {
		if cap(s) > cap(r.spare[j]) {
			j = k
		}
	}
	r.total -= cap(r.spare[j])
	r.takeSpare(j)
	return true
}

// evict drops r.active[i], an incomplete message, to make room.
func (r *Reassembler) evict(i int) {
	if r.active[i].counts() {
		r.evicted.Add(1)
	}
	r.retire(i)
}

// retire stops tracking r.active[i], keeping r.active oldest first; its
// buffer, if any, becomes a spare and the entry is kept for its topic
// slice.
func (r *Reassembler) retire(i int) {
	e := r.active[i]
	r.active = slices.Delete(r.active, i, i+1)
	r.release(e)
	r.free = append(r.free, e)
}

// place copies b to the start of dst, unless b is there already: read
// into the region Ahead or First returned.
func place(dst, b []byte) {
	if len(b) > 0 && unsafe.SliceData(dst) == unsafe.SliceData(b) {
		return
	}
	copy(dst, b)
}

// Keep hands the buffer of the payload the last Add returned over to the
// caller, to keep past the next Add: the Reassembler will not reuse it and
// stops counting it against Limits.MaxPendingBytes. It lets a receiver
// queue a reassembled payload without copying it. Call it before the next
// Add. A payload of a fragment with N = 1 lies in the caller's datagram,
// and Keep leaves it alone.
func (r *Reassembler) Keep(payload []byte) {
	if cap(payload) == 0 {
		return
	}
	for j, s := range r.spare {
		if unsafe.SliceData(s) == unsafe.SliceData(payload) {
			r.total -= cap(s)
			r.takeSpare(j)
			return
		}
	}
}

// Recycle gives the Reassembler a buffer it may reuse for later messages,
// such as one that Keep handed out and the caller is done with. A buffer
// that would take the held bytes over Limits.MaxPendingBytes is left to
// the garbage collector. The caller must not use b afterwards.
func (r *Reassembler) Recycle(b []byte) {
	if cap(b) == 0 || r.total+cap(b) > r.lim.MaxPendingBytes {
		return
	}
	r.total += cap(b)
	r.keep(b)
}

// Expire drops the incomplete messages that can no longer complete by
// now: those whose latest piece came more than Limits.Gap before now
// (counted in Stalled), and those whose first piece came more than
// Limits.Timeout before now (Expired). It returns how many it dropped, and
// forgets messages completed or passed over more than Gap before now. Add
// calls it, so only a receiver that wants memory back while no fragments
// arrive needs to.
func (r *Reassembler) Expire(now time.Time) int {
	n := 0
	for i := 0; i < len(r.active); {
		e := r.active[i]
		var c *atomic.Uint64
		switch {
		case now.Sub(e.at) > r.lim.Gap:
			c = &r.stalled
		case e.assembling && now.Sub(e.first) > r.lim.Timeout:
			c = &r.expired
		default:
			i++
			continue
		}
		if e.assembling && e.counts() {
			c.Add(1)
			n++
		}
		r.retire(i)
	}
	return n
}

// Pending returns the number of incomplete messages held and the piece
// bytes received for them (at most Limits.MaxPendingBytes).
func (r *Reassembler) Pending() (messages, bytes int) {
	for _, e := range r.active {
		if e.assembling {
			messages++
		}
	}
	return messages, r.held
}

// Stats returns the counters. It is safe to call concurrently with Add.
func (r *Reassembler) Stats() Stats {
	return Stats{
		Completed:  r.completed.Load(),
		Duplicates: r.duplicates.Load(),
		Incomplete: r.incomplete.Load(),
		Stalled:    r.stalled.Load(),
		Overrun:    r.overrun.Load(),
		Evicted:    r.evicted.Load(),
		Expired:    r.expired.Load(),
		Invalid:    r.invalid.Load(),
		Rejected:   r.rejected.Load(),
	}
}
