package mcl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mcl-go/mcl/internal/topic"
)

// Subscriber receives the messages published to a group. A process's
// Subscribers of one group (of Connections with the same group, port,
// interface and read buffer, and the same ReassemblyLimits) share one
// socket: each datagram is copied out of the kernel and reassembled once.
//
// What a Subscriber's consumer (its callback's goroutine, or the caller of
// Next) can rely on:
//
//   - Order: messages are delivered in the order the socket received them
//     (a fragmented one when its last piece came), so those of one sender
//     in the order sent, unless the network reordered them.
//   - Lifetimes: the *Message given to the callback, or returned by Next,
//     and its Payload, are valid until the callback returns or the next
//     call to Next. Clone keeps one.
//   - Latency: while the Subscriber is its group's only one in the
//     process, its consumer reads the socket itself whenever nothing is
//     queued, so a message that finds it waiting is delivered on the
//     goroutine the kernel woke, with no hand-off.
//   - Slow consumers: reading never waits for the consumer. A consumer
//     that stays away (a slow callback, a program busy between calls to
//     Next) has what arrives meanwhile queued for it by another goroutine,
//     up to QueueLimits; a full queue drops as OnOverflow says, and counts
//     it in Stats().Dropped. What arrives before that goroutine notices,
//     within tens of milliseconds, waits in the socket's receive buffer.
//   - Failures: a panicking callback is recovered and counted
//     (Stats().Panics); a fragmented message is delivered whole and exact,
//     or dropped and counted.
//
// docs/design.md says how, and why, with measurements.
type Subscriber struct {
	conn   *Connection
	f      *feed
	q      *queue
	topics *topic.Filter // nil: every topic
	ready  chan struct{} // holds a value after messages were queued

	handler func(*Subscriber, *Message)
	cur     Message // the consumer's message

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	calling   sync.WaitGroup
	callerID  atomic.Uint64 // goroutine running the callback, to let it Close

	// The context whose cancellation interrupts the consumer's reads,
	// watched until another replaces it or the Subscriber closes.
	ctxMu    sync.Mutex
	ctxDone  <-chan struct{} // its Done channel
	ctxStop  func() bool
	lastDone <-chan struct{} // the Done channel of the call to Next before
	reading  atomic.Bool     // the consumer reads the socket (see interrupt)

	stats subCounters
}

type subCounters struct {
	delivered, filtered, panics atomic.Uint64
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
	topics, err := topic.NewFilter(cfg.topics)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOption, err)
	}
	s := &Subscriber{
		conn:    c,
		q:       newQueue(cfg.queueLen, cfg.queueBytes, cfg.overflow),
		ready:   make(chan struct{}, 1),
		handler: handler,
		done:    make(chan struct{}),
		topics:  topics,
	}
	f, err := join(s, cfg.limits)
	if err != nil {
		return nil, fmt.Errorf("mcl: subscriber on %s: %w", c, err)
	}
	s.f = f
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
// queue is empty and the socket is the Subscriber's alone. Errors:
// ErrClosed, and ctx's.
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
		var err error
		if s.f.sole(s) {
			err = s.f.consume(s, ctx)
		} else {
			err = s.wait(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// wait blocks until messages may have been queued (or the socket changed
// hands). Errors: ErrClosed, and ctx's.
func (s *Subscriber) wait(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// watch arranges for ctx's cancellation to interrupt the consumer's reads.
// The registration stays for the next call with the same context, so a
// loop over Next allocates nothing. Errors: ErrClosed.
func (s *Subscriber) watch(ctx context.Context) error {
	// A callback's context is never done: nothing to watch, and no lock to
	// take for every read.
	done := ctx.Done()
	if done == nil {
		return nil
	}
	s.ctxMu.Lock()
	defer s.ctxMu.Unlock()
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	// Contexts that share a Done channel are cancelled together, so one
	// registration serves them all; comparing contexts themselves could
	// panic on a type that is not comparable.
	if done == s.ctxDone {
		return nil
	}
	if s.ctxStop != nil {
		s.ctxStop()
	}
	s.ctxDone, s.ctxStop = done, context.AfterFunc(ctx, s.interrupt)
	return nil
}

// interrupt ends the consumer's read when its context is cancelled. A
// context cancelled while the consumer is not reading (most often the
// cancel a caller defers after Next returns) needs no kick: a kick then
// would only cost the next read a wake-up and a deadline to restore. The
// consumer marks itself reading before it checks its context, and a
// cancellation comes before the check (seen there) or after the mark
// (seen here).
func (s *Subscriber) interrupt() {
	if s.reading.Load() {
		s.f.kick()
	}
}

// settle ends a call to Next with a context whose Done channel is done:
// the registration that watch made for it stays for the next call only if
// the call before used it too. A context used for one call only (the
// per-call timeout that a caller cancels as Next returns) is so
// unregistered before its cancel, which would otherwise start a goroutine
// to run interrupt, for nothing; one used call after call is registered
// once, and calling Next with it allocates nothing.
func (s *Subscriber) settle(done <-chan struct{}) {
	// Only the consumer writes lastDone: reading it needs no lock, and a
	// context used again, the loop's case, changes nothing.
	if done == nil || done == s.lastDone {
		return
	}
	s.ctxMu.Lock()
	defer s.ctxMu.Unlock()
	if done == s.ctxDone && s.ctxStop != nil {
		s.ctxStop()
		s.ctxDone, s.ctxStop = nil, nil
	}
	s.lastDone = done
}

// unwatch drops the context registration; Close calls it.
func (s *Subscriber) unwatch() {
	s.ctxMu.Lock()
	defer s.ctxMu.Unlock()
	if s.ctxStop != nil {
		s.ctxStop()
		s.ctxDone, s.ctxStop = nil, nil
	}
}

// wants reports whether the Subscriber takes messages of topic.
func (s *Subscriber) wants(topic []byte) bool {
	return s.topics.Match(topic)
}

// signal tells a waiting consumer to look at its queue again.
func (s *Subscriber) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
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
	err := s.next(ctx)
	s.settle(ctx.Done())
	if err != nil {
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

// Close stops the Subscriber's goroutines and discards queued messages;
// the shared socket leaves the group with the process's last Subscriber of
// it. Close waits for a running callback to return, unless it is called
// from that callback. It is safe to call more than once; later calls
// return nil. Errors: the socket's, from closing it.
func (s *Subscriber) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() {
		close(s.done)
		s.unwatch()
		s.closeErr = s.f.leave(s)
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

// Stats returns the Subscriber's counters. Delivered, Filtered, Dropped
// and Panics are the Subscriber's own; the others count the socket it
// shares with the process's other Subscribers of the group (those of
// Connections with the same group, port, interface and read buffer, and
// the same ReassemblyLimits).
func (s *Subscriber) Stats() SubscriberStats {
	f := s.f
	r := f.dm.reasm.Stats()
	r.Add(f.dm.joiner.Stats())
	t := f.dm.senders.Totals()
	return SubscriberStats{
		Datagrams:   f.stats.datagrams.Load(),
		Bytes:       f.stats.bytes.Load(),
		Delivered:   s.stats.delivered.Load(),
		Filtered:    s.stats.filtered.Load(),
		Malformed:   f.stats.malformed.Load(),
		Fragments:   f.stats.fragments.Load(),
		Reassembled: r.Completed,
		Duplicates:  r.Duplicates,
		Rejected:    r.Rejected,
		Incomplete:  r.Incomplete,
		Stalled:     r.Stalled,
		Overrun:     r.Overrun,
		Evicted:     r.Evicted,
		Expired:     r.Expired,
		Invalid:     r.Invalid,
		Dropped:     s.q.droppedCount(),
		Panics:      s.stats.panics.Load(),
		ReadErrors:  f.stats.readErrors.Load(),
		KernelDrops: f.stats.kernelDrops.Load(),
		Unsupported: f.stats.unsupported.Load(),
		Senders:     uint64(t.Senders),
		Lost:        t.Lost,
		Reordered:   t.Reordered,
		Repeated:    t.Duplicates,
		Late:        t.Late,
		Jumps:       t.Jumps,
	}
}

// Senders returns what the Subscriber's socket knows of each mcl/2 sender
// it heard (at most 1024 at a time; those idle longest are forgotten
// first), sorted by id. Like most of Stats, it is shared by the
// Subscribers of the socket.
func (s *Subscriber) Senders() []SenderStats {
	ss := s.f.dm.senders.Senders(nil)
	out := make([]SenderStats, len(ss))
	for i, x := range ss {
		out[i] = SenderStats{
			ID: x.ID, Addr: x.Addr, First: x.First, Last: x.Last,
			Datagrams: x.Datagrams, Lost: x.Lost, Reordered: x.Reordered,
			Repeated: x.Duplicates, Late: x.Late, Jumps: x.Jumps,
		}
	}
	return out
}
