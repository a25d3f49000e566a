package mcl

import (
	"net/netip"
	"sync"
	"time"
)

// queue holds received messages between the receive goroutine and the
// consumer: a ring of slots whose payload buffers are reused, bounded in
// messages and bytes. A full queue drops one message, as overflow says, so
// a slow consumer never blocks the receiver.
type queue struct {
	mu       sync.Mutex
	slots    []Message
	head, n  int
	bytes    int
	maxBytes int
	overflow Overflow
	dropped  uint64
	spares   [][]byte   // small payload buffers handed back by the consumer
	side     []slotSide // by slot
	lent     *lease     // the feed's buffer the consumer's payload lies in
	returned []*lease   // feed's buffers the consumer is done with
	retCap   int        // their capacity in bytes
}

// slotSide is what the queue knows of a slot's payload beyond the Message.
type slotSide struct {
	base   *lease // the feed's buffer the payload lies in; nil for a copy
	charge int    // bytes counted against maxBytes
}

// maxSpares and maxReturned bound the buffers kept for reuse beyond those in
// slots: large ones by bytes, enough to cycle every buffer of a queue of
// megabyte messages back to reassembly.
const (
	maxSpares   = 16
	maxReturned = 32 << 20
)

func newQueue(messages, bytes int, o Overflow) *queue {
	return &queue{
		slots:    make([]Message, messages),
		side:     make([]slotSide, messages),
		maxBytes: bytes,
		overflow: o,
	}
}

// push copies a message into the queue. It reports false when the message
// was dropped: this one (DropNewest, or a message larger than the byte
// bound) or the oldest queued (DropOldest; push still returns true for the
// new one, and counts the old one in dropped).
func (q *queue) push(topic string, payload []byte, from netip.AddrPort, at time.Time) bool {
	q.mu.Lock()
	s := q.reserve(len(payload))
	if s == nil {
		q.mu.Unlock()
		return false
	}
	s.Topic, s.Sender, s.Received = topic, from, at
	if cap(s.Payload) < len(payload) && len(q.spares) > 0 {
		last := len(q.spares) - 1
		s.Payload, q.spares[last] = q.spares[last], s.Payload
		if q.spares[last] == nil {
			q.spares = q.spares[:last]
		}
	}
	s.Payload = append(s.Payload[:0], payload...)
	q.side[q.index()] = slotSide{charge: len(payload)}
	q.mu.Unlock()
	return true
}

// index returns the position of the slot reserve returned last.
func (q *queue) index() int { return (q.head + q.n - 1) % len(q.slots) }

// pushLent queues payload without copying it: it lies in base, a buffer of
// the feed's, which the queue holds (counting its capacity against the
// byte bound) until the consumer is done with it, then hands back through
// takeReturned. When pushLent reports false the message was dropped and
// the queue holds nothing of base.
func (q *queue) pushLent(topic string, payload []byte, base *lease, from netip.AddrPort, at time.Time) bool {
	q.mu.Lock()
	s := q.reserve(cap(base.buf))
	if s == nil {
		q.mu.Unlock()
		return false
	}
	if c := cap(s.Payload); c > 0 && c <= keepBuffer && len(q.spares) < maxSpares {
		q.spares = append(q.spares, s.Payload[:0])
	}
	s.Topic, s.Sender, s.Received, s.Payload = topic, from, at, payload
	q.side[q.index()] = slotSide{base: base, charge: cap(base.buf)}
	q.mu.Unlock()
	return true
}

// reserve makes room for a message of n payload bytes, dropping as the
// overflow policy says, and returns the slot to fill, already counted, or
// nil when the new message is the one dropped. q.mu is held.
func (q *queue) reserve(n int) *Message {
	if n > q.maxBytes {
		q.dropped++
		return nil
	}
	for q.n == len(q.slots) || q.bytes+n > q.maxBytes {
		if q.overflow == DropNewest {
			q.dropped++
			return nil
		}
		q.drop()
	}
	s := &q.slots[(q.head+q.n)%len(q.slots)]
	q.n++
	q.bytes += n
	return s
}

// empty reports whether no message is queued.
func (q *queue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n == 0
}

// handOff reports whether the queue is empty, so that the consumer may
// take its next message straight from the socket, and then gives back the
// feed's buffer its last message from the queue lay in.
func (q *queue) handOff() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n != 0 {
		return false
	}
	if q.lent != nil {
		q.giveBack(q.lent)
		q.lent = nil
	}
	return true
}

// takeReturned returns a buffer of the feed's that the consumer is done
// with, or nil.
func (q *queue) takeReturned() *lease {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.returned) == 0 {
		return nil
	}
	last := len(q.returned) - 1
	b := q.returned[last]
	q.returned[last] = nil
	q.returned = q.returned[:last]
	q.retCap -= cap(b.buf)
	return b
}

// giveBack queues l for the feed to take back; q.mu is held. Past
// maxReturned bytes, l is left to the garbage collector.
func (q *queue) giveBack(l *lease) {
	if q.retCap+cap(l.buf) <= maxReturned {
		q.returned = append(q.returned, l)
		q.retCap += cap(l.buf)
	}
}

// drop discards the oldest message; q.mu is held and q.n > 0.
func (q *queue) drop() {
	q.bytes -= q.side[q.head].charge
	if l := q.side[q.head].base; l != nil {
		// Not a buffer to copy into: other queues may hold it too.
		q.slots[q.head].Payload = nil
		q.side[q.head] = slotSide{}
		q.giveBack(l)
	}
	q.head = (q.head + 1) % len(q.slots)
	q.n--
	q.dropped++
}

// pop moves the oldest message into m without copying its payload; m's
// previous payload buffer is kept for a later push, so that in steady state
// nothing is allocated. It reports false when empty.
func (q *queue) pop(m *Message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return false
	}
	s := &q.slots[q.head]
	// The consumer's previous buffer goes back where it came from: to the
	// feed, or to the slot it is leaving, which a later copy is made
	// into. Not to the spares alone: a burst longer than they hold (a
	// datagram of mcl/2 carries hundreds of messages) would allocate a
	// buffer per message beyond them, every burst.
	old := m.Payload
	if q.lent != nil {
		q.giveBack(q.lent)
		old = nil
	}
	side := q.side[q.head]
	q.side[q.head] = slotSide{}
	q.lent = side.base
	*m = *s
	*s = Message{}
	if c := cap(old); c > 0 && c <= keepBuffer {
		s.Payload = old[:0]
	}
	q.bytes -= side.charge
	q.head = (q.head + 1) % len(q.slots)
	if q.n--; q.n == 0 {
		// Start over at the first slot, which is still in the cache: a
		// queue that keeps up holds one message at a time, and walking
		// the ring made every push a cache miss.
		q.head = 0
	}
	return true
}

func (q *queue) droppedCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
