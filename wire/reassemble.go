package wire

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

// Limits bounds what a Reassembler holds. A zero field takes its default.
type Limits struct {
	// MaxMessageBytes is the largest reassembled payload accepted (default
	// 64 MiB). A fragment is rejected with ErrTooLarge, before anything is
	// allocated for it, when its N could not fit (N > MaxMessageBytes/MTU+1)
	// or its piece n could not (it would end past MaxMessageBytes after n-1
	// pieces of MTU bytes), and also when it would take the bytes received
	// for its message over MaxMessageBytes. It is lowered to
	// MaxPendingBytes if above it, since such a message could never be held.
	MaxMessageBytes int
	// MaxPendingBytes bounds the buffer bytes held (default 64 MiB): the
	// buffers of incomplete messages, which grow with the piece bytes
	// received (doubling, so up to twice those bytes, and never past what
	// the message can reach), and the buffers kept for reuse, together.
	// Spare buffers are dropped, largest first, before an incomplete
	// message is evicted to make room. Besides these, each of at most
	// MaxPending entries (incomplete messages and retired ones kept for
	// reuse) keeps a copy of a topic, 12 bytes per piece received and one
	// bit per piece of N.
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
// Memory grows with the piece bytes received, never with the N a
// fragment claims. A message's buffer holds the pieces that have arrived,
// each copied in once on arrival (or read there directly by a receiver
// that asked Ahead where it goes): pieces 1 to N-1 in arrival order, then
// piece N, which is kept at the end (moved up past each later piece, a
// copy of at most MTU bytes). When pieces 1 to N-1 arrived in order, as
// they do on a LAN, the completed buffer is the payload as it stands,
// wherever piece N came. Otherwise the pieces are put in order at
// completion: swapped into place within the buffer when pieces 1 to N-1
// all have one length (MTU from any sender of this format, or a smaller
// sender's MTU), or copied into a second buffer when their lengths
// differ, which no sender of this format does. Buffers grow by doubling,
// never past what the message can reach, and are kept and reused, so in
// steady state Add does not allocate.
//
// Create one with NewReassembler. Add, Expire and Pending must not be
// called concurrently; Stats may be called from any goroutine at any time.
type Reassembler struct {
	lim      Limits
	maxCount int      // largest acceptable N
	active   []*entry // incomplete messages, oldest first
	free     []*entry // retired entries, kept for their metadata slices; len(active)+len(free) <= MaxPending
	spare    [][]byte // buffers kept for reuse, each of length 0; at most MaxPending
	held     int      // sum of len(buf) over active: piece bytes received
	total    int      // sum of cap(buf) over active, plus cap over spare; <= MaxPendingBytes

	completed, duplicates, evicted, expired, rejected atomic.Uint64
}

// entry is one incomplete message. Its buffer holds the pieces other than
// the last one (n = N) in arrival order, then the last one if it arrived.
type entry struct {
	src    netip.AddrPort
	topic  []byte // a copy: the frame's topic points into a reused datagram
	count  int
	first  time.Time // arrival of the first fragment, for Timeout
	buf    []byte    // the pieces; len(buf) is the bytes received
	order  []piece   // pieces other than the last, in arrival order
	have   []uint64  // bit n-1 set when piece n is held
	got    int       // pieces held
	tail   int       // length of piece N, at the end of buf, when held
	size   int       // length of the first of pieces 1..N-1 to arrive; -1 before
	mixed  bool      // pieces 1..N-1 do not all have the same length
	sorted bool      // pieces 1..N-1 arrived in order so far
}

// piece locates piece n in its entry's buffer.
type piece struct{ n, off, len int32 }

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
// exceed Limits.MaxMessageBytes; if it was held, it is dropped),
// ErrPieceTooLong (piece over MTU), ErrDuplicate (the same piece is
// already held) or ErrPayload (f completed a message whose payload is not
// valid msgpack; the message is dropped).
//
// Storing f copies its piece into the message's buffer, which grows (or
// is swapped for a larger spare) as pieces arrive; when that would go
// over Limits.MaxPendingBytes, spare buffers are dropped and then the
// oldest other incomplete messages are evicted. A first fragment
// allocates about the length of its piece, whatever N it claims.
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

	var e *entry
	if i := r.find(src, f.Topic, f.Count); i >= 0 {
		e = r.active[i]
		if held, ok := e.piece(f.Index); ok {
			if bytes.Equal(held, f.Payload) {
				r.duplicates.Add(1)
				return nil, ErrDuplicate
			}
			r.retire(i)
			r.evicted.Add(1)
			e = nil
		} else if len(e.buf)+len(f.Payload) > r.lim.MaxMessageBytes {
			// Cannot happen after check (pieces 1..N-1 are at most
			// MTU bytes each and piece N ends within the limit), but
			// memory is bounded by this test, not by that argument.
			r.retire(i)
			r.rejected.Add(1)
			return nil, ErrTooLarge
		}
	}
	if e == nil {
		e = r.start(src, f.Topic, f.Count, now)
	}
	r.reserve(e, len(f.Payload))
	r.put(e, f.Index, f.Payload)
	if e.got < e.count {
		return nil, nil
	}

	payload := r.assemble(e)
	r.retire(slices.Index(r.active, e)) // its buffer stays untouched until the next Add
	if rest, err := msgp.Skip(payload); err != nil || len(rest) != 0 {
		r.rejected.Add(1)
		return nil, ErrPayload
	}
	r.completed.Add(1)
	return payload, nil
}

// Ahead lets a receiver read pieces straight into place. For the
// incomplete message from src with topic and count whose pieces so far
// arrived in order, all of one length, and without the last one, it
// returns the number of the piece k places after the last one received
// (k >= 1) and the part of the message's buffer where that piece goes if
// the pieces between arrive first: as long as the pieces before it, or
// shorter for the last piece where the buffer ends. Ahead never grows the
// buffer: it returns 0 and nil when there is no such message, no such
// piece, or no room. A receiver that reads the piece into the region and
// then passes it to Add, as Frame.Payload, spares Add its copy. Ahead
// changes nothing: a region filled with other bytes is harmless, since
// Add copies whatever it is given.
func (r *Reassembler) Ahead(src netip.AddrPort, topic []byte, count, k int) (n int, into []byte) {
	i := r.find(src, topic, count)
	if i < 0 || k < 1 {
		return 0, nil
	}
	e := r.active[i]
	if !e.sorted || e.mixed || e.tail > 0 || e.size <= 0 {
		return 0, nil
	}
	n = len(e.order) + k
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
// and count of which nothing is held, it returns where Add will put piece
// 1 if that piece, of at most size bytes, is what it gets next: the start
// of the spare buffer Add will take for the message. It returns nil when
// Add would allocate a buffer instead, or a message with that key is
// held. A receiver that reads the piece into the region and passes it to
// Add, as Frame.Payload, spares Add its copy; should Add take another
// buffer after all (Add expires and evicts messages first, which can
// change the spares), it copies the piece as usual. Like Ahead, First
// changes nothing: a region filled with other bytes is harmless.
func (r *Reassembler) First(src netip.AddrPort, topic []byte, count, size int) []byte {
	if count < 1 || count > r.maxCount || size < 1 || size > MTU || r.find(src, topic, count) >= 0 {
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
// growth of a buffer, never sizes one by itself. N is already checked, so
// this cannot overflow.
func (r *Reassembler) ceiling(count int) int {
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

// start appends a new, empty entry to r.active, evicting the oldest
// incomplete messages first while MaxPending are held. The entry has no
// buffer yet: reserve finds it one for the bytes that actually arrive.
func (r *Reassembler) start(src netip.AddrPort, topic []byte, count int, now time.Time) *entry {
	for len(r.active) >= r.lim.MaxPending {
		r.evict(0)
	}
	var e *entry
	if k := len(r.free) - 1; k >= 0 {
		e = r.free[k]
		r.free[k] = nil
		r.free = r.free[:k]
	} else {
		e = new(entry)
	}
	e.src, e.count, e.first = src, count, now
	e.topic = append(e.topic[:0], topic...)
	e.order = e.order[:0]
	e.got, e.tail, e.size, e.mixed, e.sorted = 0, 0, -1, false, true
	words := (count + 63) / 64 // count <= maxCount, so a few words at most
	if cap(e.have) >= words {
		e.have = e.have[:words]
		clear(e.have)
	} else {
		e.have = make([]uint64, words)
	}
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
		// message and no spares this holds and the loop ends.
		if r.total-cap(e.buf)+need <= r.lim.MaxPendingBytes {
			break
		}
		if !r.dropSpare() {
			r.evict(slices.IndexFunc(r.active, func(a *entry) bool { return a != e }))
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

func (r *Reassembler) evict(i int) {
	r.retire(i)
	r.evicted.Add(1)
}

// retire removes r.active[i], keeping r.active oldest first; its buffer
// becomes a spare and the entry is kept for its metadata slices.
func (r *Reassembler) retire(i int) {
	e := r.active[i]
	copy(r.active[i:], r.active[i+1:])
	r.active[len(r.active)-1] = nil
	r.active = r.active[:len(r.active)-1]
	r.held -= len(e.buf)
	r.keep(e.buf)
	e.buf = nil
	r.free = append(r.free, e)
}

// piece returns the bytes of piece n if e holds it.
func (e *entry) piece(n int) ([]byte, bool) {
	if e.have[(n-1)/64]&(1<<((n-1)%64)) == 0 {
		return nil, false
	}
	if n == e.count {
		return e.buf[len(e.buf)-e.tail:], true
	}
	k := n - 1
	if k >= len(e.order) || e.order[k].n != int32(n) {
		k = slices.IndexFunc(e.order, func(p piece) bool { return p.n == int32(n) })
	}
	p := e.order[k]
	return e.buf[p.off : p.off+p.len], true
}

// put copies piece n into e.buf, which has room for it: the last piece
// (n = N) at the end, any other after the others already held, moving
// the last piece, if held, up past it (at most MTU bytes per piece, so
// at most the payload's length in all).
func (r *Reassembler) put(e *entry, n int, b []byte) {
	end := len(e.buf)
	e.buf = e.buf[:end+len(b)]
	if n == e.count {
		place(e.buf[end:], b)
		e.tail = len(b)
	} else {
		at := end - e.tail
		copy(e.buf[at+len(b):], e.buf[at:end]) // memmove: may overlap
		place(e.buf[at:], b)
		e.sorted = e.sorted && n == len(e.order)+1
		switch {
		case e.size < 0:
			e.size = len(b)
		case e.size != len(b):
			e.mixed = true
		}
		e.order = append(e.order, piece{int32(n), int32(at), int32(len(b))})
	}
	e.have[(n-1)/64] |= 1 << ((n - 1) % 64)
	e.got++
	r.held += len(b)
}

// place copies b to the start of dst, unless b is there already: read
// into the region Ahead returned.
func place(dst, b []byte) {
	if len(b) > 0 && unsafe.SliceData(dst) == unsafe.SliceData(b) {
		return
	}
	copy(dst, b)
}

// assemble returns the payload of a complete entry, in e.buf. Pieces
// 1..N-1 in arrival order are already in place. If they all have one
// length they are swapped into place block by block; otherwise they are
// copied in order into a spare buffer or, with none large enough, a new
// one, which replaces e.buf (the old one is dropped, so the bytes held do
// not grow).
func (r *Reassembler) assemble(e *entry) []byte {
	n := len(e.buf)
	switch {
	case e.sorted:
	case !e.mixed:
		m := e.size
		o := e.order
		for j := range o {
			for p := int(o[j].n) - 1; p != j; p = int(o[j].n) - 1 {
				swapBytes(e.buf[j*m:(j+1)*m], e.buf[p*m:(p+1)*m])
				o[j], o[p] = o[p], o[j]
			}
		}
	default:
		var b []byte
		j := r.spareFor(n, n)
		if j >= 0 {
			b = r.takeSpare(j)[:n]
		} else {
			b = make([]byte, n)
			r.total += n
		}
		slices.SortFunc(e.order, func(a, b piece) int { return cmp.Compare(a.n, b.n) })
		w := 0
		for _, p := range e.order {
			w += copy(b[w:], e.buf[p.off:p.off+p.len])
		}
		copy(b[w:], e.buf[n-e.tail:])
		if j >= 0 {
			r.keep(e.buf)
		} else {
			r.total -= cap(e.buf) // >= n: the total does not grow
		}
		e.buf = b
	}
	return e.buf[:n:n]
}

// swapBytes exchanges the contents of a and b, of equal length and not
// overlapping, through a small buffer on the stack.
func swapBytes(a, b []byte) {
	var t [4096]byte
	for len(a) > 0 {
		k := copy(t[:], a)
		copy(a, b[:k])
		copy(b, t[:k])
		a, b = a[k:], b[k:]
	}
}

// Keep hands the buffer of the payload the last Add returned over to the
// caller, to keep past the next Add: the Reassembler will not reuse it and
// stops counting it against Limits.MaxPendingBytes. It lets a receiver
// queue a reassembled payload without copying it. Call it before the next
// Add.
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

// Pending returns the number of incomplete messages held and the piece
// bytes received for them (at most Limits.MaxPendingBytes).
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
