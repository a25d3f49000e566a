package mcl

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

// Subscriber receives the messages published to a group. The consumer
// (the callback's goroutine, or the caller of Next) reads the socket
// itself whenever its queue is empty, filtering topics, reassembling
// fragments and queueing messages, so a message that finds it waiting
// arrives with no goroutine hand-off. When the consumer stays away from the
// socket for a millisecond or two (a slow callback, a program busy
// between calls to Next), a second goroutine reads instead and queues
// what arrives: neither a slow nor a panicking callback stalls reading, the
// queue drops and counts what does not fit, and panics are recovered and
// counted.
type Subscriber struct {
	conn  *Connection
	r     *sock.Receiver
	q     *queue
	reasm *wire.Reassembler
	reader

	handler func(*Subscriber, *Message)
	cur     Message // the consumer's message

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
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
		conn:    c,
		r:       r,
		q:       newQueue(cfg.queueLen, cfg.queueBytes, cfg.overflow),
		reasm:   wire.NewReassembler(cfg.limits),
		handler: handler,
		done:    make(chan struct{}),
	}
	s.rd = readState{
		ms:          make([]sock.Message, batchSize),
		interned:    make(map[string]string),
		expireEvery: cmp.Or(cfg.limits.Timeout, wire.DefaultLimits().Timeout) / 2,
	}
	for i := range s.rd.ms {
		s.rd.ms[i].Buf = make([]byte, wire.MaxDatagram)
	}
	if len(cfg.topics) > 0 {
		s.rd.topics = make(map[string]struct{}, len(cfg.topics))
		for _, t := range cfg.topics {
			s.rd.topics[t] = struct{}{}
			s.rd.interned[t] = t
		}
	}
	s.wake = make(chan struct{}, 1)
	s.backing.Add(1)
	go s.backup()
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

// call runs the handler for each message.
func (s *Subscriber) call() {
	defer s.calling.Done()
	s.callerID.Store(goroutineID())
	for s.next(context.Background()) == nil {
		s.invoke(&s.cur)
	}
}

// next moves the next message into s.cur, reading the socket while the
// queue is empty. Errors: ErrClosed, and ctx's.
func (s *Subscriber) next(ctx context.Context) error {
	for {
		select {
		case <-s.done:
			return ErrClosed
		default:
		}
		if s.q.pop(&s.cur) {
			s.stats.delivered.Add(1)
			return nil
		}
		if err := s.readAsConsumer(ctx); err != nil {
			return err
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
	s.handler(s, m)
}

// Next waits for the next message of a SubscribeSync Subscriber and returns
// it. While none is queued it reads the socket itself, so a message that
// finds it waiting needs no goroutine hand-off. The message is valid until
// the next call to Next; Next is not safe for concurrent use. Errors: ErrClosed
// once the Subscriber is closed (queued messages are discarded), the
// context's error, and ErrBadOption on a Subscriber that has a callback.
func (s *Subscriber) Next(ctx context.Context) (*Message, error) {
	if s.handler != nil {
		return nil, fmt.Errorf("%w: Next on a Subscriber with a callback", ErrBadOption)
	}
	if err := s.next(ctx); err != nil {
		return nil, err
	}
	return &s.cur, nil
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
		s.unwatch()
		s.backing.Wait()
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
