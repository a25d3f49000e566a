package mcl

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

// A feed is the socket a process's Subscribers of one group share: one
// kernel copy of each datagram and one reassembly, however many
// Subscribers there are. Its messages go to every member whose topics
// they match; a large payload is queued to them all in one buffer, which
// comes back when the last one is done with it.
//
// The socket has one reader at a time, whoever holds readMu. A feed with
// one member is read by that member's consumer (the callback goroutine,
// or Next's caller) whenever its queue is empty, so a message that finds
// the consumer waiting is delivered on the goroutine the kernel woke, with
// no hand-off: in the round-trip benchmark a hand-off cost about 5 µs, a
// third of mcl's latency over the bare socket. When that consumer stays
// away (a slow callback, a program busy between calls to Next), the
// feed's backup goroutine takes the socket and queues what arrives,
// dropping as OnOverflow says, until the consumer is back and finds its
// queue empty. A feed with several members is read by the backup alone,
// which hands each member's messages to its consumer.
type feed struct {
	key   feedKey
	r     *sock.Receiver
	reasm *wire.Reassembler

	readMu sync.Mutex
	rd     readState

	members atomic.Pointer[[]*Subscriber] // replaced whole under feeds.mu
	shared  atomic.Bool                   // several members: the backup reads

	wantRead  atomic.Bool   // a consumer wants the socket: the backup must let go
	consuming atomic.Bool   // the sole member's consumer reads, or waits to
	visits    atomic.Uint64 // times that consumer came to read
	parked    atomic.Bool   // the backup waits for wake, not a timer
	wake      chan struct{} // the consumer left the socket, or the members changed
	done      chan struct{} // closed with the last member
	backing   sync.WaitGroup

	stats feedCounters
}

type feedCounters struct {
	datagrams, bytes, malformed, fragments, readErrors, kernelDrops atomic.Uint64
	placed                                                          atomic.Uint64 // pieces read into place
	placedFirst                                                     atomic.Uint64 // of them, first pieces (Reassembler.First)
}

// feedKey says which Subscribers can share a socket.
type feedKey struct {
	group      netip.AddrPort
	ifindex    int
	readBuffer int
	limits     wire.Limits
}

// readState is what reading the socket needs; readMu guards it.
type readState struct {
	ms          []sock.Message
	pool        [][]byte          // receive buffers back from the queues, for refill
	leases      []*lease          // unused leases
	takers      []*Subscriber     // members a datagram goes to
	interned    map[string]string // topic strings, so delivery needn't allocate one
	lastTopic   string            // the topic intern returned last
	expireEvery time.Duration     // how often waiting fragments are checked for expiry
	expireAt    time.Time         // next expiry check; zero while no fragment waits
	fragments   bool              // fragments may wait: the reassembler has been given some since it last held none
	deadline    time.Time         // the socket's read deadline, when deadlineOK
	deadlineOK  bool              // false when a kick may have changed the deadline
	stream      stream            // the fragmented message read last, for reads into place
	arrived     time.Time         // when the datagram being handled arrived
	batch       int               // datagrams a plain read asks for
	taken       int               // rd.ms[:taken] may have lent their Buf
}

// lease is a buffer of the feed's lent to members' queues: a receive
// buffer holding a large payload, or a reassembled payload. It returns to
// the feed when refs, counted under readMu, falls to zero. A lease that
// a closed Subscriber held never returns, and the garbage collector takes
// it.
type lease struct {
	buf  []byte
	refs int
}

// The backup looks at the consumer of a sole member now and then: a
// consumer that has not come back to the socket since the last look has
// the backup read for it. The looks come every takeover at first, and
// stretch, up to maxLook, while the consumer keeps coming back and the
// traffic between two looks fills less than an eighth of the socket's
// receive buffer (skbCost a datagram on top of its bytes, the kernel's
// bookkeeping): a consumer that gets stuck is noticed before the buffer
// fills at the rate traffic arrived, or within two looks of maxLook
// should a burst come meanwhile. Each look is a goroutine woken, which,
// every millisecond, showed in the tail of round trips: looking every
// 1 ms instead of every 16 ms put about 0.04 on the 64 B p99 ratio of the
// benchmark, and 64 ms gained nothing more that could be measured. After
// parkIdle of a consumer waiting on an idle socket the backup parks, so
// an idle Subscriber costs no wakeups.
const (
	takeover = time.Millisecond
	maxLook  = 16 * time.Millisecond
	parkIdle = 16 * time.Millisecond
	skbCost  = 1 << 10
)

// errPreempted says a read stopped because another reader is to have the
// socket.
var errPreempted = errors.New("mcl: read preempted")

// feeds holds the process's open feeds.
var feeds = struct {
	sync.Mutex
	m map[feedKey]*feed
}{m: make(map[feedKey]*feed)}

// join adds s to the feed for its Connection and limits, opening one if
// there is none. Errors: those of opening the socket (sock.Listen).
func join(s *Subscriber, limits wire.Limits) (*feed, error) {
	c := s.conn
	key := feedKey{group: c.group, readBuffer: c.readBuffer, limits: limits}
	if c.ifi != nil {
		key.ifindex = c.ifi.Index
	}
	feeds.Lock()
	defer feeds.Unlock()
	f := feeds.m[key]
	if f == nil {
		r, err := sock.Listen(c.sockConfig())
		if err != nil {
			return nil, err
		}
		warnReadBuffer(c, r.ReadBufferSize())
		f = newFeed(key, r, limits)
		feeds.m[key] = f
		f.backing.Add(1)
		go f.backup()
	}
	members := append(slices.Clone(*f.members.Load()), s)
	f.members.Store(&members)
	if len(members) == 2 {
		f.shared.Store(true)
		f.kick()       // out of the socket, sole member's consumer
		f.wakeBackup() // and in, backup
	}
	return f, nil
}

func newFeed(key feedKey, r *sock.Receiver, limits wire.Limits) *feed {
	reasm := wire.NewReassembler(limits)
	f := &feed{
		key:   key,
		r:     r,
		reasm: reasm,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	f.rd = readState{
		ms:          make([]sock.Message, batchSize),
		batch:       1,
		interned:    make(map[string]string),
		expireEvery: max(time.Millisecond, min(reasm.Limits().Timeout/2, reasm.Limits().Gap)),
	}
	for i := range f.rd.ms {
		f.rd.ms[i].Buf = sock.Buffer(wire.MaxDatagram)
	}
	f.members.Store(&[]*Subscriber{}) // never nil, even to a backup that starts first
	return f
}

// leave removes s from the feed, closing the feed with its last member.
// Errors: the socket's Close.
func (f *feed) leave(s *Subscriber) error {
	feeds.Lock()
	members := slices.DeleteFunc(slices.Clone(*f.members.Load()), func(m *Subscriber) bool { return m == s })
	f.members.Store(&members)
	last := len(members) == 0
	if last {
		delete(feeds.m, f.key)
	}
	if len(members) == 1 {
		f.shared.Store(false)
		members[0].signal() // your consumer may read the socket again
	}
	feeds.Unlock()
	if !last {
		f.kick() // s's consumer, if it is the reader
		return nil
	}
	close(f.done)
	err := f.r.Close()
	f.backing.Wait()
	return err
}

// kick makes the current reader's ReadBatch return now, with a deadline
// error; the reader then sees why and restores its deadline.
func (f *feed) kick() { f.r.SetReadDeadline(time.Unix(1, 0)) }

func (f *feed) wakeBackup() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// sole reports whether s is the feed's only member.
func (f *feed) sole(s *Subscriber) bool {
	m := *f.members.Load()
	return len(m) == 1 && m[0] == s
}

// leaveSocket marks the sole member's consumer away from the socket, and
// wakes the backup if it parked: the consumer may now stay away.
func (f *feed) leaveSocket() {
	f.consuming.Store(false)
	if f.parked.Load() {
		f.wakeBackup()
	}
}

// backup reads the socket while the sole member's consumer is away, and
// all the time while the feed has several members.
func (f *feed) backup() {
	defer f.backing.Done()
	look := takeover
	t := time.NewTimer(look)
	defer t.Stop()
	var (
		seen    uint64        // visits at the last look
		idle    time.Duration // how long the consumer has waited on an idle socket
		traffic = f.traffic() // at the last look
	)
	for {
		select {
		case <-t.C:
		case <-f.wake:
		case <-f.done:
			return
		}
		visits := f.visits.Load()
		read, parked := false, false
		switch moved := visits != seen; {
		case f.shared.Load():
			read = true
		case f.consuming.Load():
			if moved {
				idle = 0
			} else if idle += look; idle >= parkIdle {
				if !f.park() {
					return
				}
				idle, parked = 0, true
			}
		case !moved:
			read = true
		}
		if read && !f.read() {
			return
		}
		seen = f.visits.Load()
		now := f.traffic()
		look = nextLook(look, read || parked, now-traffic, f.r.ReadBufferSize())
		traffic = now
		t.Reset(look)
	}
}

// traffic returns what the socket has received, in the units of the
// receive buffer's accounting (estimated: bytes, and skbCost a datagram).
func (f *feed) traffic() int {
	return int(f.stats.bytes.Load() + skbCost*f.stats.datagrams.Load())
}

// nextLook returns how long the backup waits before its next look, after
// one that came last after it and saw arrived bytes of traffic (see
// traffic) in a receive buffer of capacity bytes: takeover after the
// backup read or parked (what the consumer does next is not known),
// longer while a look's traffic fits the buffer eight times over, shorter
// once it fills more than a quarter.
func nextLook(last time.Duration, restart bool, arrived, capacity int) time.Duration {
	switch {
	case restart:
		return takeover
	case arrived > capacity/4:
		return max(takeover, last/2)
	case arrived <= capacity/8:
		return min(maxLook, 2*last)
	}
	return last
}

// park waits until the consumer leaves the socket. It reports false once
// the feed is closed.
func (f *feed) park() bool {
	f.parked.Store(true)
	defer f.parked.Store(false)
	// Checked after parked is set: a consumer leaving before that has not
	// seen it, and must not be waited for.
	if !f.consuming.Load() || f.shared.Load() {
		return true
	}
	select {
	case <-f.wake:
		return true
	case <-f.done:
		return false
	}
}

// read is the backup's reading: while the feed is shared, or until the
// sole member's consumer wants the socket back. It reports false once the
// feed is closed.
func (f *feed) read() bool {
	if f.shared.Load() {
		f.readMu.Lock() // the former sole consumer is kicked out
	} else if !f.readMu.TryLock() {
		return true // the consumer came back
	}
	open := f.readWhileWanted()
	f.readMu.Unlock()
	// The consumer that wants the socket waits for word, sent only now
	// that the socket is free: sent before, it would find it still taken,
	// ask again, and wait for a word that never comes.
	if m := *f.members.Load(); open && len(m) == 1 {
		m[0].signal()
	}
	return open
}

// readWhileWanted reads while the backup is to, and reports false once the
// feed is closed. readMu is held.
func (f *feed) readWhileWanted() bool {
	for f.shared.Load() || !f.wantRead.Load() {
		err := f.readBatch(nil, time.Time{}, f.preempted)
		switch {
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, errPreempted):
		case errors.Is(err, net.ErrClosed):
			return false
		default:
			if f.pause(context.Background(), nil) != nil {
				return false
			}
		}
	}
	return true
}

func (f *feed) preempted() error {
	if !f.shared.Load() && f.wantRead.Load() {
		return errPreempted
	}
	return nil
}

// pause counts a read error and waits a little, so that a persistent error
// does not spin. Errors: ErrClosed when the feed closes or done is closed,
// and ctx's.
func (f *feed) pause(ctx context.Context, done <-chan struct{}) error {
	f.stats.readErrors.Add(1)
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-f.done:
		return ErrClosed
	case <-done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// readBatch reads one batch of datagrams and queues their messages,
// signalling the members that got some, except reader: the consumer
// reading, if it is one, which looks at its queue next anyway. It returns
// by limit when that is not zero, and before blocking it asks stop whether
// to read at all, so that a kick that raced with setting the deadline is
// not lost. readMu is held.
func (f *feed) readBatch(reader *Subscriber, limit time.Time, stop func() error) error {
	rd := &f.rd
	// While fragments wait, the deadline also wakes the read to expire
	// them even if nothing more arrives, so their memory is not held
	// forever.
	if rd.fragments {
		if pending, _ := f.reasm.Pending(); pending == 0 {
			rd.expireAt, rd.fragments = time.Time{}, false
		} else if rd.expireAt.IsZero() {
			rd.expireAt = time.Now().Add(rd.expireEvery)
		}
	}
	want := limit
	if !rd.expireAt.IsZero() && (want.IsZero() || rd.expireAt.Before(want)) {
		want = rd.expireAt
	}
	if !rd.deadlineOK || !want.Equal(rd.deadline) {
		f.r.SetReadDeadline(want)
		rd.deadline, rd.deadlineOK = want, true
	}
	if err := stop(); err != nil {
		return err
	}
	// Buffers the consumers are done with come back first: receive
	// buffers for this read, and reassembly buffers for the messages it
	// starts, so that their pieces can be read into place.
	f.refill(*f.members.Load())
	asked := f.plan()
	n, err := f.r.ReadBatch(rd.ms[:asked])
	if asked == rd.batch {
		// A plain read asks for as many datagrams as the last one got,
		// doubling while they fill the batch: one at a time on a quiet
		// socket (recvmmsg's look for a second datagram costs a round
		// trip about 5%), sixteen under load.
		rd.batch = max(1, n)
		if n == asked {
			rd.batch = min(2*n, len(rd.ms))
		}
	}
	placed := f.unplan(n)
	now := time.Now()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		rd.deadlineOK = false // a kick may have set it in the past
		if !rd.expireAt.IsZero() && !now.Before(rd.expireAt) {
			f.reasm.Expire(now)
			rd.expireAt = time.Time{}
		}
	}
	members := *f.members.Load() // again: one may have joined during the read
	wall := now.UnixNano()
	for i := range rd.ms[:n] {
		m := &rd.ms[i]
		// Reassembly wants to know when each datagram arrived and whether
		// the kernel dropped any before it (wire.Reassembler.Lost).
		rd.arrived = arrival(now, wall, m.Stamp)
		f.reasm.Lost(uint64(m.Drops))
		if i < placed {
			f.handlePlaced(members, i, now)
			continue
		}
		if f.handle(members, reader, m, now); m.Buf == nil {
			rd.taken = max(rd.taken, i+1) // a queue took the buffer
		}
	}
	for i := range rd.ms[:asked] {
		rd.ms[i].Head, rd.ms[i].Body = 0, nil // the next plan lays out afresh
	}
	woke := false
	for _, s := range members {
		if s.pushed {
			s.pushed = false
			if s != reader {
				s.signal()
				woke = true
			}
		}
	}
	if woke {
		// The consumers just woken wait in this thread's run queue, and
		// while traffic keeps the reader from blocking, and the other
		// threads are busy, they would wait there until the scheduler
		// preempts the reader, 10 ms on: let them run now. A publisher
		// that waits for its subscribers (the benchmark's 1 MB rows with
		// four of them) went a fifth faster.
		runtime.Gosched()
	}
	f.stats.kernelDrops.Store(f.r.KernelDrops())
	return err
}

// arrival returns when a datagram that the kernel stamped (ns since the
// epoch; 0 if it did not) arrived, on the clock of now, which was read at
// wall: times from time.Now carry a monotonic reading that a stamp lacks,
// and Gap and Timeout are measured on it. A wall clock stepped between
// the two moves the result by at most a few seconds.
func arrival(now time.Time, wall, stamp int64) time.Time {
	if stamp == 0 {
		return now
	}
	return now.Add(-time.Duration(min(max(wall-stamp, 0), int64(5*time.Second))))
}

// handle filters, decodes and queues one datagram, read into m.Buf, or
// hands it to reader (see direct). It leaves m.Buf nil when a queue took
// the buffer, for the caller to refill.
func (f *feed) handle(members []*Subscriber, reader *Subscriber, m *sock.Message, now time.Time) {
	b, from := m.Buf[:m.N], m.Addr
	f.stats.datagrams.Add(1)
	f.stats.bytes.Add(uint64(len(b)))
	topic, err := wire.Topic(b)
	if err != nil {
		f.stats.malformed.Add(1)
		return
	}
	takers := f.takers(members, topic)
	if len(takers) == 0 {
		return
	}
	fr, err := wire.Decode(b)
	if err != nil {
		f.stats.malformed.Add(1)
		return
	}
	if fr.IsFragment() {
		f.fragment(takers, fr, len(b)-len(fr.Payload), from, now)
		return
	}
	f.rd.stream.on = false
	t := f.intern(topic)
	if f.direct(reader, takers, t, fr.Payload, &m.Buf, from, now) {
		return
	}
	// A large payload stays in the receive buffer, which goes to the
	// queues with it; copying is cheaper for small ones.
	if len(fr.Payload) < lendMin {
		for _, s := range takers {
			s.pushed = s.q.push(t, fr.Payload, from, now) || s.pushed
		}
		return
	}
	if f.lend(takers, t, fr.Payload, m.Buf, from, now) {
		m.Buf = nil
	}
}

// direct hands a message straight to s, the consumer reading (nil when
// the backup reads), when it is the only taker and has nothing queued, so
// that the message is neither copied nor queued: in the round-trip
// benchmark the queue's copy, locks and cache lines cost about 1.5% of a
// round trip. The consumer keeps *slot, the receive buffer the payload
// lies in, until the next message it takes this way, and puts in its
// place the buffer it kept before, done with now that it reads again (nil
// the first time). direct reports whether it took the message.
func (f *feed) direct(s *Subscriber, takers []*Subscriber, topic string, payload []byte, slot *[]byte, from netip.AddrPort, now time.Time) bool {
	if len(takers) != 1 || takers[0] != s || s.direct || !s.q.handOff() {
		return false
	}
	s.held, *slot = *slot, s.held
	s.cur = Message{Topic: topic, Payload: payload, Sender: from, Received: now}
	s.direct = true
	return true
}

// takers returns the members that take messages of topic, and counts the
// datagram as filtered for the others. The slice is reused.
func (f *feed) takers(members []*Subscriber, topic []byte) []*Subscriber {
	if len(members) == 1 && members[0].wants(topic) {
		return members // never changed in place: joining and leaving replace it
	}
	takers := f.rd.takers[:0]
	for _, s := range members {
		if s.wants(topic) {
			takers = append(takers, s)
		} else {
			s.stats.filtered.Add(1)
		}
	}
	f.rd.takers = takers
	return takers
}

// fragment reassembles fragment fr, whose header was head bytes long,
// and queues its message to takers if it completes one.
func (f *feed) fragment(takers []*Subscriber, fr wire.Frame, head int, from netip.AddrPort, now time.Time) {
	f.stats.fragments.Add(1)
	f.rd.fragments = true
	payload, err := f.reasm.Add(from, fr, f.rd.arrived)
	if payload == nil {
		if err == nil {
			f.follow(fr, head, from, false)
		}
		return // stored, or dropped and counted by the reassembler
	}
	f.follow(fr, head, from, true)
	// A reassembled payload is queued as it is, not copied: its buffer
	// leaves the reassembler and comes back once the consumers are done.
	f.reasm.Keep(payload)
	if !f.lend(takers, f.intern(fr.Topic), payload, payload, from, now) {
		f.reasm.Recycle(payload)
	}
}

// lend queues payload, which lies in buf, to takers without copying it.
// It reports whether any queue took it.
func (f *feed) lend(takers []*Subscriber, topic string, payload, buf []byte, from netip.AddrPort, now time.Time) bool {
	l := f.newLease(buf)
	for _, s := range takers {
		if s.q.pushLent(topic, payload, l, from, now) {
			l.refs++
			s.pushed = true
		}
	}
	if l.refs == 0 {
		f.freeLease(l)
		return false
	}
	return true
}

func (f *feed) newLease(buf []byte) *lease {
	rd := &f.rd
	if n := len(rd.leases); n > 0 {
		l := rd.leases[n-1]
		rd.leases[n-1] = nil
		rd.leases = rd.leases[:n-1]
		l.buf = buf
		return l
	}
	return &lease{buf: buf}
}

func (f *feed) freeLease(l *lease) {
	*l = lease{}
	if len(f.rd.leases) < maxPool {
		f.rd.leases = append(f.rd.leases, l)
	}
}

// refill takes back the buffers the consumers are done with: receive
// buffers replace those lent to queues (or wait in the pool), others go
// back to reassembly.
func (f *feed) refill(members []*Subscriber) {
	rd := &f.rd
	for _, s := range members {
		for l := s.q.takeReturned(); l != nil; l = s.q.takeReturned() {
			if l.refs--; l.refs > 0 {
				continue
			}
			switch b := l.buf; {
			case cap(b) != wire.MaxDatagram:
				f.reasm.Recycle(b)
			case len(rd.pool) < maxPool:
				rd.pool = append(rd.pool, b[:wire.MaxDatagram])
			}
			f.freeLease(l)
		}
	}
	// Only the slots of the last reads can be empty: looking at all of
	// them missed the cache on most.
	for i := range rd.ms[:rd.taken] {
		if rd.ms[i].Buf != nil {
			continue
		}
		if n := len(rd.pool); n > 0 {
			rd.ms[i].Buf, rd.pool[n-1] = rd.pool[n-1], nil
			rd.pool = rd.pool[:n-1]
		} else {
			rd.ms[i].Buf = sock.Buffer(wire.MaxDatagram)
		}
	}
	rd.taken = 0
}

// intern returns topic as a string, allocating only for topics not seen
// before (and not at all once maxInterned topics are known).
func (f *feed) intern(topic []byte) string {
	// Most datagrams have the topic of the one before: comparing it is
	// cheaper than hashing it, and leaves the map's memory alone.
	if string(topic) == f.rd.lastTopic {
		return f.rd.lastTopic
	}
	t, ok := f.rd.interned[string(topic)]
	if !ok {
		t = string(topic)
		if len(f.rd.interned) < maxInterned {
			f.rd.interned[t] = t
		}
	}
	f.rd.lastTopic = t
	return t
}
