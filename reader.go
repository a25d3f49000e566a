package mcl

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

// A Subscriber's socket has one reader at a time, whoever holds readMu.
// While the queue is empty the consumer (the callback goroutine, or Next's
// caller) reads it itself, so a message that finds the consumer waiting is
// delivered on the goroutine the kernel woke, with no hand-off: in the
// round-trip benchmark a hand-off cost about 5 µs, a third of mcl's
// latency over the bare socket. When the consumer stays away from the
// socket for takeover (a slow callback, a program busy between calls to
// Next), a backup goroutine takes the socket and queues what arrives,
// dropping as OnOverflow says, until the consumer is back and finds the
// queue empty.

// takeover is how often the backup looks at the consumer: a consumer
// that has not come back to the socket for between one and two of these
// has the backup read for it. Short enough that the socket's receive
// buffer (4 MiB by default) absorbs the traffic meanwhile; long enough
// that a consumer that keeps up never meets the backup. The backup parks
// after parkAfter looks at a consumer waiting on an idle socket, so an
// idle Subscriber costs no wakeups.
const (
	takeover  = time.Millisecond
	parkAfter = 16
)

// errPreempted says a read stopped because another reader wants the socket.
var errPreempted = errors.New("mcl: read preempted")

// readState is what reading the socket needs; readMu guards it.
type readState struct {
	ms          []sock.Message
	pool        [][]byte            // receive buffers back from the queue, for refill
	topics      map[string]struct{} // nil: every topic
	interned    map[string]string   // topic strings, so delivery needn't allocate one
	expireEvery time.Duration       // how often waiting fragments are checked for expiry
	expireAt    time.Time           // next expiry check; zero while no fragment waits
	deadline    time.Time           // the socket's read deadline, when deadlineOK
	deadlineOK  bool                // false when a kick may have changed the deadline
}

// reader is the part of a Subscriber that reads its socket.
type reader struct {
	readMu    sync.Mutex
	rd        readState
	wantRead  atomic.Bool   // the consumer waits for readMu: the backup must let go
	consuming atomic.Bool   // the consumer is reading or waiting to
	visits    atomic.Uint64 // times the consumer came to read
	parked    atomic.Bool   // the backup waits for wake, not a timer
	wake      chan struct{} // the consumer left the socket while the backup was parked
	backing   sync.WaitGroup

	// Consumer's only, but for Close: the context whose cancellation
	// interrupts the consumer's reads, watched until another replaces it.
	ctxMu      sync.Mutex
	ctxWatched context.Context
	ctxStop    func() bool
}

// kick makes the current reader's ReadBatch return now, with a deadline
// error; the reader restores its deadline.
func (s *Subscriber) kick() { s.r.SetReadDeadline(time.Unix(1, 0)) }

// readAsConsumer reads the socket until the queue holds a message, taking
// the socket from the backup if it has it. Errors: ErrClosed, and ctx's.
func (s *Subscriber) readAsConsumer(ctx context.Context) error {
	s.visits.Add(1)
	s.consuming.Store(true)
	defer s.leave()
	if !s.readMu.TryLock() {
		s.wantRead.Store(true)
		s.kick()
		s.readMu.Lock()
		s.wantRead.Store(false)
		s.rd.deadlineOK = false
	}
	defer s.readMu.Unlock()
	if err := s.watch(ctx); err != nil {
		return err
	}
	limit, _ := ctx.Deadline()
	for s.q.empty() {
		err := s.readBatch(limit, ctx.Err)
		switch {
		case err == nil:
		case errors.Is(err, net.ErrClosed):
			return ErrClosed
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, errPreempted):
			if err := ctx.Err(); err != nil {
				return err
			}
			if !limit.IsZero() && !time.Now().Before(limit) {
				return context.DeadlineExceeded
			}
		default:
			if err := s.pause(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// leave marks the consumer away from the socket, and wakes the backup if
// it parked: the consumer may now stay away.
func (s *Subscriber) leave() {
	s.consuming.Store(false)
	if s.parked.Load() {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// pause counts a read error and waits a little, so that a persistent error
// does not spin. Errors: ErrClosed, and ctx's.
func (s *Subscriber) pause(ctx context.Context) error {
	s.stats.readErrors.Add(1)
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// watch arranges for ctx's cancellation to interrupt the consumer's reads.
// The registration stays for the next call with the same context, so a
// loop over Next allocates nothing. Errors: ErrClosed.
func (s *Subscriber) watch(ctx context.Context) error {
	s.ctxMu.Lock()
	defer s.ctxMu.Unlock()
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	if ctx.Done() == nil || (s.ctxStop != nil && sameContext(ctx, s.ctxWatched)) {
		return nil
	}
	if s.ctxStop != nil {
		s.ctxStop()
	}
	s.ctxWatched, s.ctxStop = ctx, context.AfterFunc(ctx, s.kick)
	return nil
}

// unwatch drops the context registration; Close calls it.
func (s *Subscriber) unwatch() {
	s.ctxMu.Lock()
	defer s.ctxMu.Unlock()
	if s.ctxStop != nil {
		s.ctxStop()
		s.ctxWatched, s.ctxStop = nil, nil
	}
}

// sameContext reports whether a and b are the same context, without
// panicking on a context type that cannot be compared.
func sameContext(a, b context.Context) bool {
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}

// backup reads the socket while the consumer is away.
func (s *Subscriber) backup() {
	defer s.backing.Done()
	t := time.NewTimer(takeover)
	defer t.Stop()
	var seen uint64 // visits at the last look
	idle := 0       // looks at a consumer waiting on an idle socket
	for {
		select {
		case <-t.C:
		case <-s.done:
			return
		}
		visits := s.visits.Load()
		switch moved := visits != seen; {
		case s.consuming.Load():
			if moved {
				idle = 0
			} else if idle++; idle >= parkAfter && !s.park() {
				return
			}
		case !moved:
			s.readAsBackup()
		}
		seen = s.visits.Load()
		t.Reset(takeover)
	}
}

// park waits until the consumer leaves the socket. It reports false once
// the Subscriber is closed.
func (s *Subscriber) park() bool {
	s.parked.Store(true)
	defer s.parked.Store(false)
	// Checked after parked is set: a consumer leaving before that has
	// not seen it, and must not be waited for.
	if !s.consuming.Load() {
		return true
	}
	select {
	case <-s.wake:
		return true
	case <-s.done:
		return false
	}
}

// readAsBackup reads the socket until the consumer wants it back.
func (s *Subscriber) readAsBackup() {
	if !s.readMu.TryLock() {
		return // the consumer came back
	}
	defer s.readMu.Unlock()
	s.rd.deadlineOK = false
	for !s.wantRead.Load() {
		err := s.readBatch(time.Time{}, s.preempted)
		switch {
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, errPreempted):
		case errors.Is(err, net.ErrClosed):
			return
		default:
			if s.pause(context.Background()) != nil {
				return
			}
		}
	}
}

func (s *Subscriber) preempted() error {
	if s.wantRead.Load() {
		return errPreempted
	}
	return nil
}

// readBatch reads one batch of datagrams and queues their messages. It
// returns by limit when that is not zero, and before blocking it asks stop
// whether to read at all, so that a kick that raced with setting the
// deadline is not lost. readMu is held.
func (s *Subscriber) readBatch(limit time.Time, stop func() error) error {
	rd := &s.rd
	// While fragments wait, the deadline also wakes the read to expire
	// them even if nothing more arrives, so their memory is not held
	// forever.
	if pending, _ := s.reasm.Pending(); pending == 0 {
		rd.expireAt = time.Time{}
	} else if rd.expireAt.IsZero() {
		rd.expireAt = time.Now().Add(rd.expireEvery)
	}
	want := limit
	if !rd.expireAt.IsZero() && (want.IsZero() || rd.expireAt.Before(want)) {
		want = rd.expireAt
	}
	if !rd.deadlineOK || !want.Equal(rd.deadline) {
		s.r.SetReadDeadline(want)
		rd.deadline, rd.deadlineOK = want, true
	}
	if err := stop(); err != nil {
		return err
	}
	n, err := s.r.ReadBatch(rd.ms)
	now := time.Now()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		rd.deadlineOK = false // a kick may have set it in the past
		if !rd.expireAt.IsZero() && !now.Before(rd.expireAt) {
			s.reasm.Expire(now)
			rd.expireAt = time.Time{}
		}
	}
	for i := range rd.ms[:n] {
		m := &rd.ms[i]
		if s.handle(m.Buf, m.Buf[:m.N], m.Addr, now) {
			m.Buf = nil
		}
	}
	s.refill()
	s.stats.kernelDrops.Store(s.r.KernelDrops())
	return err
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
	if s.rd.topics != nil {
		if _, ok := s.rd.topics[string(topic)]; !ok {
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
// buffers replace those lent to the queue (or wait in the pool), others go
// back to reassembly.
func (s *Subscriber) refill() {
	rd := &s.rd
	for b := s.q.takeReturned(); b != nil; b = s.q.takeReturned() {
		switch {
		case cap(b) != wire.MaxDatagram:
			s.reasm.Recycle(b)
		case len(rd.pool) < maxPool:
			rd.pool = append(rd.pool, b[:wire.MaxDatagram])
		}
	}
	for i := range rd.ms {
		if rd.ms[i].Buf != nil {
			continue
		}
		if n := len(rd.pool); n > 0 {
			rd.ms[i].Buf, rd.pool[n-1] = rd.pool[n-1], nil
			rd.pool = rd.pool[:n-1]
		} else {
			rd.ms[i].Buf = make([]byte, wire.MaxDatagram)
		}
	}
}

// intern returns topic as a string, allocating only for topics not seen
// before (and not at all once maxInterned topics are known).
func (s *Subscriber) intern(topic []byte) string {
	if t, ok := s.rd.interned[string(topic)]; ok {
		return t
	}
	t := string(topic)
	if len(s.rd.interned) < maxInterned {
		s.rd.interned[t] = t
	}
	return t
}
