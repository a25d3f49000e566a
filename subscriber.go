package mcl

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

// Subscriber receives the messages published to a group. One goroutine
// reads the socket, filters topics, reassembles fragments and queues
// messages; a second runs the callback, when there is one. Neither a slow
// nor a panicking callback can stall the reader: the queue drops and
// counts what does not fit, and panics are recovered and counted.
type Subscriber struct {
	conn  *Connection
	r     *sock.Receiver
	q     *queue
	reasm *wire.Reassembler

	topics   map[string]struct{} // nil: every topic
	interned map[string]string   // topic strings, so delivery needn't allocate one

	expireEvery time.Duration // how often waiting fragments are checked for expiry
	pool        [][]byte      // receive buffers back from the queue, for refill

	handler func(*Subscriber, *Message)
	cur     Message // the consumer's message in pull mode

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	reading   sync.WaitGroup
	calling   sync.WaitGroup
	callerID  atomic.Uint64 // goroutine running the callback, to let it Close

	stats subCounters
}

type subCounters struct {
	datagrams, bytes, delivered, filtered, malformed, fragments, panics, readErrors, kernelDrops atomic.Uint64
}

// Subscribe calls handler, on a goroutine of the Subscriber's, for every
// message received on c's group whose topic passes the filter (see
// Topics). The *Message is valid until handler returns. Errors: ErrBadOption
// and socket errors wrapped with the group.
func Subscribe(c *Connection, handler func(*Message), opts ...SubscribeOption) (*Subscriber, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler: use SubscribeSync to pull messages instead", ErrBadOption)
	}
	return subscribe(c, func(_ *Subscriber, m *Message) { handler(m) }, opts)
}

// SubscribeSync returns a Subscriber from which messages are pulled with
// Next or Messages.
func SubscribeSync(c *Connection, opts ...SubscribeOption) (*Subscriber, error) {
	return subscribe(c, nil, opts)
}

// SubscribeChan sends a copy of every message to ch. When ch is full the
// Subscriber's queue fills, and then drops as OnOverflow says.
func SubscribeChan(c *Connection, ch chan<- *Message, opts ...SubscribeOption) (*Subscriber, error) {
	if ch == nil {
		return nil, fmt.Errorf("%w: nil channel", ErrBadOption)
	}
	return subscribe(c, func(s *Subscriber, m *Message) {
		select {
		case ch <- m.Clone():
		case <-s.done:
		}
	}, opts)
}

func subscribe(c *Connection, handler func(*Subscriber, *Message), opts []SubscribeOption) (*Subscriber, error) {
	cfg := defaultSubConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	r, err := sock.Listen(c.sockConfig())
	if err != nil {
		return nil, fmt.Errorf("mcl: subscriber on %s: %w", c, err)
	}
	warnReadBuffer(c, r.ReadBufferSize())
	s := &Subscriber{
		conn:        c,
		r:           r,
		q:           newQueue(cfg.queueLen, cfg.queueBytes, cfg.overflow),
		reasm:       wire.NewReassembler(cfg.limits),
		expireEvery: cmp.Or(cfg.limits.Timeout, wire.DefaultLimits().Timeout) / 2,
		interned:    make(map[string]string),
		handler:     handler,
		done:        make(chan struct{}),
	}
	if len(cfg.topics) > 0 {
		s.topics = make(map[string]struct{}, len(cfg.topics))
		for _, t := range cfg.topics {
			s.topics[t] = struct{}{}
			s.interned[t] = t
		}
	}
	s.reading.Add(1)
	go s.receive()
	if handler != nil {
		s.calling.Add(1)
		go s.call()
	}
	return s, nil
}

var warnedReadBuffer sync.Map // requested size -> struct{}

// warnReadBuffer logs, once per process and size, that the kernel granted
// less receive buffer than requested: the usual cause of loss under load.
func warnReadBuffer(c *Connection, granted int) {
	want := c.readBuffer
	// Linux reports twice what it grants, the other half for bookkeeping.
	if want == 0 || granted == 0 || granted/2 >= want {
		return
	}
	if _, seen := warnedReadBuffer.LoadOrStore(want, struct{}{}); seen {
		return
	}
	c.logger.Warn("mcl: the kernel granted a smaller receive buffer than requested; bursts may be dropped: raise the limit with `sysctl -w net.core.rmem_max="+strconv.Itoa(want)+"`",
		"requested", want, "granted", granted/2)
}

// receive is the read loop: batches in, messages out.
func (s *Subscriber) receive() {
	defer s.reading.Done()
	ms := make([]sock.Message, batchSize)
	for i := range ms {
		ms[i].Buf = make([]byte, wire.MaxDatagram)
	}
	// While fragments wait, a read deadline wakes the loop to expire them
	// even if nothing more arrives, so their memory is not held forever.
	var deadline time.Time
	for {
		n, err := s.r.ReadBatch(ms)
		now := time.Now()
		switch {
		case err == nil:
		case errors.Is(err, net.ErrClosed):
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.reasm.Expire(now)
		default:
			s.stats.readErrors.Add(1)
			select {
			case <-s.done:
				return
			case <-time.After(10 * time.Millisecond): // don't spin on a persistent error
			}
		}
		for i := range ms[:n] {
			if s.handle(ms[i].Buf, ms[i].Buf[:ms[i].N], ms[i].Addr, now) {
				ms[i].Buf = nil
			}
		}
		s.refill(ms)
		s.stats.kernelDrops.Store(s.r.KernelDrops())
		if pending, _ := s.reasm.Pending(); pending > 0 && (deadline.IsZero() || err != nil) {
			deadline = now.Add(s.expireEvery)
			s.r.SetReadDeadline(deadline)
		} else if pending == 0 && !deadline.IsZero() {
			deadline = time.Time{}
			s.r.SetReadDeadline(deadline)
		}
	}
}

// handle filters, decodes and queues one datagram, read into buf. It
// reports whether the queue took buf, which the caller must then replace.
func (s *Subscriber) handle(buf, b []byte, from netip.AddrPort, now time.Time) (lent bool) {
	s.stats.datagrams.Add(1)
	s.stats.bytes.Add(uint64(len(b)))
	topic, err := wire.Topic(b)
	if err != nil {
		s.stats.malformed.Add(1)
		return false
	}
	if s.topics != nil {
		if _, ok := s.topics[string(topic)]; !ok {
			s.stats.filtered.Add(1)
			return false
		}
	}
	f, err := wire.Decode(b)
	if err != nil {
		s.stats.malformed.Add(1)
		return false
	}
	if !f.IsFragment() {
		// A large payload stays in the receive buffer, which goes to the
		// queue with it; copying is cheaper for small ones.
		if len(f.Payload) < lendMin {
			s.q.push(s.intern(topic), f.Payload, from, now)
			return false
		}
		return s.q.pushLent(s.intern(topic), f.Payload, buf, from, now)
	}
	s.stats.fragments.Add(1)
	payload, _ := s.reasm.Add(from, f, now)
	if payload == nil {
		return false // stored, or dropped and counted by the reassembler
	}
	// A reassembled payload is queued as it is, not copied: its buffer
	// leaves the reassembler and comes back once the consumer is done.
	s.reasm.Keep(payload)
	if !s.q.pushLent(s.intern(topic), payload, payload, from, now) {
		s.reasm.Recycle(payload)
	}
	return false
}

// refill takes back the buffers the consumer is done with: receive
// buffers replace those lent to the queue (or wait in s.pool), others go
// back to reassembly.
func (s *Subscriber) refill(ms []sock.Message) {
	for b := s.q.takeReturned(); b != nil; b = s.q.takeReturned() {
		switch {
		case cap(b) != wire.MaxDatagram:
			s.reasm.Recycle(b)
		case len(s.pool) < maxPool:
			s.pool = append(s.pool, b[:wire.MaxDatagram])
		}
	}
	for i := range ms {
		if ms[i].Buf != nil {
			continue
		}
		if n := len(s.pool); n > 0 {
			ms[i].Buf, s.pool[n-1] = s.pool[n-1], nil
			s.pool = s.pool[:n-1]
		} else {
			ms[i].Buf = make([]byte, wire.MaxDatagram)
		}
	}
}

// intern returns topic as a string, allocating only for topics not seen
// before (and not at all once maxInterned topics are known).
func (s *Subscriber) intern(topic []byte) string {
	if t, ok := s.interned[string(topic)]; ok {
		return t
	}
	t := string(topic)
	if len(s.interned) < maxInterned {
		s.interned[t] = t
	}
	return t
}

// call runs the handler for each queued message.
func (s *Subscriber) call() {
	defer s.calling.Done()
	s.callerID.Store(goroutineID())
	var m Message
	for {
		select {
		case <-s.q.ready:
		case <-s.done:
			return
		}
		for s.q.pop(&m) {
			s.invoke(&m)
			select {
			case <-s.done:
				return
			default:
			}
		}
	}
}

func (s *Subscriber) invoke(m *Message) {
	defer func() {
		if r := recover(); r != nil {
			if s.stats.panics.Add(1) == 1 {
				s.conn.logger.Error("mcl: subscriber callback panicked; recovered, counting further panics in Stats().Panics",
					"topic", m.Topic, "panic", fmt.Sprint(r))
			}
		}
	}()
	s.stats.delivered.Add(1)
	s.handler(s, m)
}

// Next waits for the next message of a SubscribeSync Subscriber and returns
// it. The message is valid until the next call to Next. Errors: ErrClosed
// once the Subscriber is closed (queued messages are discarded), the
// context's error, and ErrBadOption on a Subscriber that has a callback.
func (s *Subscriber) Next(ctx context.Context) (*Message, error) {
	if s.handler != nil {
		return nil, fmt.Errorf("%w: Next on a Subscriber with a callback", ErrBadOption)
	}
	for {
		select {
		case <-s.done:
			return nil, ErrClosed
		default:
		}
		if s.q.pop(&s.cur) {
			s.stats.delivered.Add(1)
			return &s.cur, nil
		}
		select {
		case <-s.q.ready:
		case <-s.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Messages returns an iterator over the messages of a SubscribeSync
// Subscriber, which ends when ctx is done or the Subscriber is closed. Each
// message is valid until the next iteration.
func (s *Subscriber) Messages(ctx context.Context) iter.Seq[*Message] {
	return func(yield func(*Message) bool) {
		for {
			m, err := s.Next(ctx)
			if err != nil || !yield(m) {
				return
			}
		}
	}
}

// Close leaves the group, stops the Subscriber's goroutines and discards
// queued messages. It waits for a running callback to return, unless it is
// called from that callback. It is safe to call more than once; later calls
// return nil.
func (s *Subscriber) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() {
		close(s.done)
		s.closeErr = s.r.Close()
		s.reading.Wait()
		if s.handler == nil || s.callerID.Load() != goroutineID() {
			s.calling.Wait()
		}
		err = s.closeErr
	})
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// goroutineID parses the current goroutine's number from its stack header.
// Only Close and the start of a callback goroutine pay for it; it lets a
// callback close its own Subscriber without waiting for itself.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

// Stats returns the Subscriber's counters.
func (s *Subscriber) Stats() SubscriberStats {
	r := s.reasm.Stats()
	return SubscriberStats{
		Datagrams:   s.stats.datagrams.Load(),
		Bytes:       s.stats.bytes.Load(),
		Delivered:   s.stats.delivered.Load(),
		Filtered:    s.stats.filtered.Load(),
		Malformed:   s.stats.malformed.Load(),
		Fragments:   s.stats.fragments.Load(),
		Reassembled: r.Completed,
		Duplicates:  r.Duplicates,
		Rejected:    r.Rejected,
		Evicted:     r.Evicted,
		Expired:     r.Expired,
		Dropped:     s.q.droppedCount(),
		Panics:      s.stats.panics.Load(),
		ReadErrors:  s.stats.readErrors.Load(),
		KernelDrops: s.stats.kernelDrops.Load(),
	}
}
