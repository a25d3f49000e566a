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
	spares   [][]byte      // small payload buffers handed back by the consumer
	large    [][]byte      // reassembly buffers, for the receiver to give back
	largeCap int           // their capacity in bytes
	owned    []bool        // by slot: its payload buffer came from reassembly
	lent     bool          // the consumer's payload buffer came from reassembly
	ready    chan struct{} // holds a token while the queue may be non-empty
}

// maxSpares and maxLarge bound the buffers kept for reuse beyond those in
// slots: large ones by bytes, enough to cycle every buffer of a queue of
// megabyte messages back to reassembly.
const (
	maxSpares = 16
	maxLarge  = 32 << 20
)

func newQueue(messages, bytes int, o Overflow) *queue {
	return &queue{
		slots:    make([]Message, messages),
		owned:    make([]bool, messages),
		maxBytes: bytes,
		overflow: o,
		ready:    make(chan struct{}, 1),
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
	q.owned[q.index(s)] = false
	q.mu.Unlock()
	q.signal()
	return true
}

// index returns the position of slot s in q.slots.
func (q *queue) index(s *Message) int { return (q.head + q.n - 1) % len(q.slots) }

// pushOwned queues payload itself, without copying: the queue owns it from
// then on, unless pushOwned reports false (the message was dropped).
func (q *queue) pushOwned(topic string, payload []byte, from netip.AddrPort, at time.Time) bool {
	q.mu.Lock()
	s := q.reserve(len(payload))
	if s == nil {
		q.mu.Unlock()
		return false
	}
	if c := cap(s.Payload); c > 0 && c <= keepBuffer && len(q.spares) < maxSpares {
		q.spares = append(q.spares, s.Payload[:0])
	}
	s.Topic, s.Sender, s.Received, s.Payload = topic, from, at, payload
	q.owned[q.index(s)] = true
	q.mu.Unlock()
	q.signal()
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

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// takeLarge returns a large buffer the consumer is done with, or nil.
func (q *queue) takeLarge() []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.large) == 0 {
		return nil
	}
	last := len(q.large) - 1
	b := q.large[last]
	q.large[last] = nil
	q.large = q.large[:last]
	q.largeCap -= cap(b)
	return b
}

// drop discards the oldest message; q.mu is held and q.n > 0.
func (q *queue) drop() {
	s := &q.slots[q.head]
	q.bytes -= len(s.Payload)
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
	// The consumer's previous buffer goes back where it came from: to
	// reassembly, or to the spares that queued copies are made into.
	switch c := cap(m.Payload); {
	case c == 0:
	case q.lent:
		if q.largeCap+c <= maxLarge {
			q.large = append(q.large, m.Payload[:0])
			q.largeCap += c
		}
	case c <= keepBuffer && len(q.spares) < maxSpares:
		q.spares = append(q.spares, m.Payload[:0])
	}
	q.lent = q.owned[q.head]
	*m = *s
	*s = Message{}
	q.bytes -= len(m.Payload)
	q.head = (q.head + 1) % len(q.slots)
	q.n--
	return true
}

func (q *queue) droppedCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
