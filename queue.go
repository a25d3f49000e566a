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
	spares   [][]byte      // payload buffers handed back by the consumer
	ready    chan struct{} // holds a token while the queue may be non-empty
}

// maxSpares bounds the buffers kept for reuse beyond those in slots.
const maxSpares = 16

func newQueue(messages, bytes int, o Overflow) *queue {
	return &queue{
		slots:    make([]Message, messages),
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
	if len(payload) > q.maxBytes {
		q.dropped++
		q.mu.Unlock()
		return false
	}
	for q.n == len(q.slots) || q.bytes+len(payload) > q.maxBytes {
		if q.overflow == DropNewest {
			q.dropped++
			q.mu.Unlock()
			return false
		}
		q.drop()
	}
	s := &q.slots[(q.head+q.n)%len(q.slots)]
	s.Topic, s.Sender, s.Received = topic, from, at
	if cap(s.Payload) < len(payload) && len(q.spares) > 0 {
		last := len(q.spares) - 1
		s.Payload, q.spares[last] = q.spares[last], s.Payload
		if q.spares[last] == nil {
			q.spares = q.spares[:last]
		}
	}
	s.Payload = append(s.Payload[:0], payload...)
	q.n++
	q.bytes += len(payload)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
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
	if c := cap(m.Payload); c > 0 && c <= keepBuffer && len(q.spares) < maxSpares {
		q.spares = append(q.spares, m.Payload[:0])
	}
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
