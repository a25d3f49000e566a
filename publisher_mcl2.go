package mcl

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcl-go/mcl/wire/mcl2"
)

// Framing is a datagram format a Publisher sends in.
type Framing int

// Framings. Subscribers take both, on one socket, always.
const (
	// FramingSeed is the format of the Python library, one message per
	// datagram (docs/wire.md): the default, which every node of a group
	// understands.
	FramingSeed Framing = iota
	// FramingMCL2 is mcl/2 (docs/mcl2.md), for groups where every node
	// runs this library: sender ids and sequence numbers, so subscribers
	// count what they lost and drop duplicates; many messages to a
	// datagram; datagrams that fit the link. Seed nodes (the Python
	// library) drop its datagrams, and go on.
	FramingMCL2
)

// String returns "seed" or "mcl2".
func (f Framing) String() string {
	switch f {
	case FramingSeed:
		return "seed"
	case FramingMCL2:
		return "mcl2"
	}
	return fmt.Sprintf("Framing(%d)", int(f))
}

// WithFraming sets the format the Publisher sends in (default
// FramingSeed). NewPublisher returns ErrBadOption for another value.
func WithFraming(f Framing) PublishOption {
	return func(p *Publisher) error {
		if f != FramingSeed && f != FramingMCL2 {
			return fmt.Errorf("%w: framing %d: use FramingSeed or FramingMCL2", ErrBadOption, int(f))
		}
		p.framing = f
		return nil
	}
}

// Express makes an mcl/2 Publisher send each message at once in its own
// datagram, in the goroutine that publishes it, instead of batching (as
// Zenoh's express publishers do): for latency-critical topics, at the
// cost of a system call per message. A Publisher in the seed framing
// always sends so.
func Express() PublishOption {
	return func(p *Publisher) error {
		p.express = true
		return nil
	}
}

// Smallest and largest datagram sizes DatagramSize takes: what every
// IPv6 link carries (its minimum MTU, 1280, less the IP and UDP headers),
// and the largest UDP payload over IPv4.
const (
	MinDatagramSize = 1232
	MaxDatagramSize = 65507
)

// DatagramSize sets the size of an mcl/2 Publisher's datagrams, in bytes
// of UDP payload. By default it is what the path to the group carries
// without IP fragmentation (the interface's MTU less the IP and UDP
// headers: 1452 bytes on an IPv6 Ethernet link); set it for jumbo frames,
// or for loopback where the MTU is 64 KiB anyway. NewPublisher returns
// ErrBadOption outside MinDatagramSize..MaxDatagramSize.
func DatagramSize(n int) PublishOption {
	return func(p *Publisher) error {
		if n < MinDatagramSize || n > MaxDatagramSize {
			return fmt.Errorf("%w: datagram size %d: use %d..%d", ErrBadOption, n, MinDatagramSize, MaxDatagramSize)
		}
		p.dgramSize = n
		return nil
	}
}

// maxQueued is how many filled datagrams an mcl/2 Publisher holds for
// its sender goroutine before Publish waits: it bounds how long a
// message waits behind others (64 sends) and the memory held.
const maxQueued = 64

// maxWait is how long a queued message may wait for the sender goroutine
// to start: a Publish that finds it kicked longer ago and still not at
// work sends the queue itself. A send in flight is not interrupted: a
// message also waits for it, which is long only while the socket's send
// buffer is full.
const maxWait = time.Millisecond

// minLight is how long after a Publish that sent in its call returned
// the next finds traffic light (see publish2): longer than a loop of
// Publish calls takes between two (0.1 µs), shorter than waiting for a
// reply takes (a read from the socket, 1 µs or more).
const minLight = time.Microsecond

// batcher is an mcl/2 Publisher's sending state. The fields under the
// Publisher's mu are filled by Publish; a datagram in the sending list
// belongs to the one goroutine that sends (busy), which holds no lock
// while it does.
type batcher struct {
	id   uint64 // the sender id
	size int    // datagram size

	// Under Publisher.mu:
	seq      uint64      // the next datagram's sequence number
	msgID    uint64      // the next fragmented message's id
	cur      []byte      // the datagram being filled, or empty
	full     [][]byte    // filled datagrams, in order, not yet sent
	free     [][]byte    // spare datagram buffers
	busy     bool        // a goroutine is sending
	waiting  atomic.Bool // the sender goroutine waits for a kick; written under mu, read before it too (callTime)
	kicked   time.Time   // when it was last kicked
	returned time.Time   // when a Publish that sent in its call returned
	err      error       // the first error of a send no caller has seen yet
	idle     sync.Cond
	kick     chan struct{} // wakes the sender goroutine; nil when Express
	stopped  chan struct{} // closed when the sender goroutine ends

	sending [][]byte // the sender's, outside the lock
	heads   []byte   // fragment headers, back to back, each as long
	iov     [][]byte // headers and pieces, taking turns
}

// startBatcher sets an mcl/2 Publisher up, and starts its sender
// goroutine unless it is Express. p.s is open.
func (p *Publisher) startBatcher() error {
	b := &batcher{size: p.dgramSize}
	if b.size == 0 {
		b.size = min(max(p.s.MaxDatagram(), MinDatagramSize), MaxDatagramSize)
	}
	var id [8]byte
	for b.id == 0 {
		if _, err := rand.Read(id[:]); err != nil {
			return fmt.Errorf("mcl: publisher: draw a sender id: %w", err)
		}
		b.id = binary.BigEndian.Uint64(id[:])
	}
	b.idle.L = &p.mu
	p.b = b
	if !p.express {
		b.kick = make(chan struct{}, 1)
		b.stopped = make(chan struct{})
		b.waiting.Store(true)
		go p.sendLoop()
	}
	return nil
}

// publish2 sends or queues one message in mcl/2, published at called.
// p.mu is held.
func (p *Publisher) publish2(topic string, payload []byte, called time.Time) error {
	b := p.b
	if err := b.takeErr(); err != nil {
		return err
	}
	if mcl2.HeaderLen+mcl2.MessageOverhead+len(topic)+len(payload) > b.size {
		return p.sendLarge(topic, payload)
	}
	if p.express {
		return p.sendNow(topic, payload)
	}
	// Traffic is light when nothing is queued or being sent, and the
	// caller did something else between its last Publish that sent and
	// this call (waited for a reply, read a sensor): the message goes out
	// in this call, with no hand-off to the sender goroutine (a round
	// trip took a fifth to a half longer with one each way). Published in
	// a run, one call right after the other, messages queue for the
	// sender goroutine and share datagrams. Measured from the call, so
	// that encoding a value is not taken for something else (under the
	// race detector, and for large values, it takes over 1 µs); and from
	// the last send's return, not its start: a send to a local receiver
	// can return after the reply to it came, so that a ping-pong looked
	// like a run.
	if b.waiting.Load() && !b.busy && len(b.full) == 0 && len(b.cur) == 0 && !called.IsZero() && called.Sub(b.returned) >= minLight {
		return p.sendNow(topic, payload)
	}
	for len(b.full) >= maxQueued && !p.closed {
		b.idle.Wait() // the sender goroutine is behind: wait for it
	}
	if p.closed {
		return ErrClosed
	}
	if len(b.cur)+mcl2.MessageOverhead+len(topic)+len(payload) > b.size {
		b.full = append(b.full, b.cur)
		b.cur = nil
	}
	if len(b.cur) == 0 {
		b.cur = mcl2.AppendHeader(b.buffer(), b.id, 0) // numbered when sent
	}
	b.cur = mcl2.AppendMessage(b.cur, topic, payload)
	p.stats.messages.Add(1)
	// A sender goroutine at work finds the message when it looks again;
	// only one that waits needs waking, which costs a system call when
	// its thread sleeps.
	switch {
	case b.waiting.Load():
		b.waiting.Store(false)
		b.kicked = time.Now()
		b.kick <- struct{}{} // never blocks: the sender emptied it before waiting
	case !b.busy && time.Since(b.kicked) > maxWait:
		// Kicked, and not yet at work: the scheduler has not run it.
		// The queue goes out from here, so that no message waits longer.
		p.sendQueued()
	}
	return nil
}

// sendNow sends one message in a datagram of its own, in this call,
// after any send in flight. p.mu is held.
func (p *Publisher) sendNow(topic string, payload []byte) error {
	b := p.b
	for b.busy {
		b.idle.Wait()
	}
	if p.closed {
		return ErrClosed
	}
	d := mcl2.AppendHeader(b.buffer(), b.id, b.seq)
	d = mcl2.AppendMessage(d, topic, payload)
	b.seq++
	b.busy = true
	p.mu.Unlock()
	err := p.pace(len(d))
	if err == nil {
		err = p.s.Write(d)
	}
	p.mu.Lock()
	b.busy = false
	b.returned = time.Now()
	b.free = append(b.free, d[:0])
	b.idle.Broadcast()
	p.count(err, 1, len(d))
	if err != nil {
		return fmt.Errorf("mcl: publish on %s: %w", p.conn, err)
	}
	return nil
}

// buffer returns an empty datagram buffer of capacity b.size. p.mu is
// held.
func (b *batcher) buffer() []byte {
	if n := len(b.free); n > 0 {
		d := b.free[n-1]
		b.free = b.free[:n-1]
		return d
	}
	return make([]byte, 0, b.size)
}

// takeErr returns, once, the error of a send that failed after its
// Publish returned. p.mu is held.
func (b *batcher) takeErr() error {
	err := b.err
	b.err = nil
	return err
}

// sendLoop is the sender goroutine of a batching mcl/2 Publisher: woken
// by a Publish, it sends what is queued, and meanwhile what is published
// queues behind (flush on idle, as nats.go and Zenoh do). It ends once
// the Publisher is closed and everything queued is sent.
func (p *Publisher) sendLoop() {
	b := p.b
	defer close(b.stopped)
	for {
		_, ok := <-b.kick
		p.mu.Lock()
		for len(b.full) > 0 || len(b.cur) > 0 {
			for b.busy { // a large message is going out
				b.idle.Wait()
			}
			p.sendQueued()
		}
		b.waiting.Store(ok)
		p.mu.Unlock()
		if !ok {
			return
		}
	}
}

// sendQueued sends the datagrams queued, numbering them, without holding
// p.mu while it writes. p.mu is held, and b.busy false.
func (p *Publisher) sendQueued() {
	b := p.b
	if len(b.cur) > 0 {
		b.full = append(b.full, b.cur)
		b.cur = nil
	}
	b.sending = append(b.sending[:0], b.full...)
	clear(b.full)
	b.full = b.full[:0]
	bytes := 0
	for _, d := range b.sending {
		mcl2.SetSeq(d, b.seq)
		b.seq++
		bytes += len(d)
	}
	b.busy = true
	b.idle.Broadcast() // room in full again
	p.mu.Unlock()
	err := p.writeQueued(b.sending)
	p.mu.Lock()
	b.busy = false
	b.idle.Broadcast()
	if err != nil {
		p.stats.errors.Add(1)
		if b.err == nil {
			b.err = fmt.Errorf("mcl: publish on %s: %w", p.conn, err)
		}
	} else {
		p.stats.datagrams.Add(uint64(len(b.sending)))
		p.stats.bytes.Add(uint64(bytes))
	}
	for i, d := range b.sending {
		if len(b.free) < maxQueued {
			b.free = append(b.free, d[:0])
		}
		b.sending[i] = nil
	}
}

// writeQueued writes queued datagrams: in one call, or, with a Pace, one
// at a time, each in its turn. The sender (b.busy) calls it without p.mu.
func (p *Publisher) writeQueued(ds [][]byte) error {
	if p.rate == 0 {
		return p.s.WriteBatch(ds)
	}
	for i, d := range ds {
		if err := p.pace(len(d)); err != nil {
			return fmt.Errorf("%w: %d datagrams not sent", err, len(ds)-i)
		}
		if err := p.s.Write(d); err != nil {
			return err
		}
	}
	return nil
}

// writeRun writes a run of equal datagrams (the last shorter), headers
// and pieces taking turns in iov, with UDP GSO: in one call, or, with a
// Pace, 64 KB at a time, each in its turn. The sender (b.busy) calls it
// without p.mu.
func (p *Publisher) writeRun(iov [][]byte, segment int) error {
	if p.rate == 0 {
		return p.s.WriteSegments(iov, segment)
	}
	per := max(1, 65000/segment) // datagrams a turn
	for i := 0; i < len(iov); i += 2 * per {
		run := iov[i:min(i+2*per, len(iov))]
		n := 0
		for _, b := range run {
			n += len(b)
		}
		if err := p.pace(n); err != nil {
			return err
		}
		if err := p.s.WriteSegments(run, segment); err != nil {
			return err
		}
	}
	return nil
}

// sendLarge sends a message too large for one datagram as fragments,
// from where its payload lies, after what was published before it.
// p.mu is held.
func (p *Publisher) sendLarge(topic string, payload []byte) error {
	b := p.b
	for {
		for b.busy {
			b.idle.Wait()
		}
		if p.closed {
			return ErrClosed
		}
		if len(b.full) == 0 && len(b.cur) == 0 {
			break
		}
		p.sendQueued() // what came before goes first
	}
	room := b.size - mcl2.HeaderLen - mcl2.FragmentOverhead - len(topic)
	n := mcl2.Cut(len(payload), room)
	if n == 0 { // room for less than two of the format's shortest pieces
		p.stats.errors.Add(1)
		return fmt.Errorf("%w: %d bytes leave too little room for a message's pieces in %d-byte datagrams: shorten the topic, or raise DatagramSize", ErrTopicTooLong, len(topic), b.size)
	}
	id := b.msgID
	b.msgID++
	// Every datagram but the last is a header of one length and a piece
	// of one length: one run of segments for UDP GSO, written from the
	// payload where it lies, headers and pieces taking turns.
	// The headers are written first, then cut, as b.heads may move while
	// it grows.
	b.heads, b.iov = b.heads[:0], b.iov[:0]
	for i := range n {
		_, l, _ := mcl2.Piece(len(payload), n, i)
		b.heads = mcl2.AppendHeader(b.heads, b.id, b.seq)
		b.seq++
		b.heads = mcl2.AppendFragmentHeader(b.heads, topic, id, i, n, len(payload), l)
	}
	hl := len(b.heads) / n
	for i := range n {
		off, l, _ := mcl2.Piece(len(payload), n, i)
		b.iov = append(b.iov, b.heads[i*hl:(i+1)*hl:(i+1)*hl], payload[off:off+l])
	}
	segment := hl + len(b.iov[1])
	b.busy = true
	p.mu.Unlock()
	err := p.writeRun(b.iov, segment)
	p.mu.Lock()
	b.busy = false
	b.idle.Broadcast()
	clear(b.iov) // the caller's payload is not ours to keep
	p.count(err, n, len(b.heads)+len(payload))
	if err != nil {
		return fmt.Errorf("mcl: publish on %s: %w", p.conn, err)
	}
	return nil
}

// Flush waits until every message published before it has been handed
// to the kernel, and returns the error of a send that failed since the
// last error returned (ErrClosed once closed). Messages of a Publisher in
// the seed framing, or Express, are sent before Publish returns, so
// Flush returns at once for them.
func (p *Publisher) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.b
	if b == nil {
		if p.closed {
			return ErrClosed
		}
		return nil
	}
	for b.busy || len(b.full) > 0 || len(b.cur) > 0 {
		b.idle.Wait() // the sender goroutine is at work: it broadcasts as it sends
	}
	if err := b.takeErr(); err != nil {
		return err
	}
	if p.closed {
		return ErrClosed
	}
	return nil
}

// close2 sends what is queued and ends the sender goroutine. p.mu is not
// held.
func (p *Publisher) close2() error {
	b := p.b
	if b.kick == nil {
		p.mu.Lock()
		for b.busy {
			b.idle.Wait()
		}
		p.mu.Unlock()
		return nil
	}
	close(b.kick)
	<-b.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	return b.takeErr()
}
