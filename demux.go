package mcl

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/mcl-go/mcl/internal/reassembly"
	"github.com/mcl-go/mcl/internal/senders"
	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
	"github.com/mcl-go/mcl/wire/mcl2"
)

// packetSocket is the socket a demux reads: a *sock.Receiver, or a fake
// in tests.
type packetSocket interface {
	ReadBatch(ms []sock.Message) (int, error)
	SetReadDeadline(t time.Time) error
	KernelDrops() uint64
	ReadBufferSize() int
	Close() error
}

// A demux turns the datagrams of a feed's socket into messages in its
// members' queues: it reads a batch, decodes, filters on topics,
// reassembles (reading pieces of large messages straight into place, see
// placement.go), and queues each message to every member that takes it,
// large payloads in one buffer lent to them all. It runs on one goroutine
// at a time, the holder of the feed's token (see owner.go), and nothing in
// it is safe for concurrent use but the counters.
type demux struct {
	sock    packetSocket
	reasm   *reassembly.Reassembler // the seed format's fragments
	joiner  *reassembly.Joiner      // mcl/2's fragments
	senders *senders.Table          // mcl/2's senders, by id
	stats   *feedCounters
	members *atomic.Pointer[[]*Subscriber] // the feed's, replaced whole as they join and leave

	ms        []sock.Message
	pool      [][]byte          // receive buffers back from the queues, for refill
	leases    []*lease          // unused leases
	takers    []*Subscriber     // members a datagram goes to
	woken     []*Subscriber     // members given messages in this batch
	interned  map[string]string // topic strings, so delivery needn't allocate one
	lastTopic string            // the topic intern returned last
	stream    stream            // the fragmented message read last, for reads into place
	stamp     int64             // the kernel's arrival stamp of the datagram being handled
	wall      int64             // the batch's read time, ns since the epoch (see arrival)
	batch     int               // datagrams a plain read asks for
	taken     int               // ms[:taken] may have lent their Buf

	expireEvery time.Duration // how often waiting fragments are checked for expiry
	expireAt    time.Time     // next expiry check; zero while no fragment waits
	fragments   bool          // the reassembler has been given fragments since it last held none
	deadline    time.Time     // the socket's read deadline, when deadlineOK
	deadlineOK  bool          // false when a kick may have changed the deadline
}

// lease is a buffer of the demux's lent to members' queues: a receive
// buffer holding a large payload, or a reassembled payload. It returns to
// the demux when refs falls to zero; refs is counted by the token holder
// only. A lease that a closed Subscriber held never returns, and the
// garbage collector takes it.
type lease struct {
	buf    []byte
	refs   int
	joined bool // buf is the Joiner's, not the Reassembler's or a receive buffer
}

func newDemux(s packetSocket, limits wire.Limits, members *atomic.Pointer[[]*Subscriber], stats *feedCounters) *demux {
	r := reassembly.New(reassembly.Limits(limits))
	d := &demux{
		sock:        s,
		reasm:       r,
		joiner:      reassembly.NewJoiner(reassembly.Limits(limits)),
		senders:     senders.New(0),
		stats:       stats,
		members:     members,
		ms:          make([]sock.Message, batchSize),
		batch:       1,
		interned:    make(map[string]string),
		expireEvery: max(time.Millisecond, min(r.Limits().Timeout/2, r.Limits().Gap)),
	}
	for i := range d.ms {
		d.ms[i].Buf = sock.Buffer(wire.MaxDatagram)
	}
	return d
}

// read reads one batch of datagrams and queues their messages to the
// members, signalling those that got some, except reader: the consumer
// reading, if it is one, which looks at its queue next anyway. It returns
// by limit when that is not zero, and before blocking it asks stop whether
// to read at all, so that a kick that raced with setting the deadline is
// not lost. Errors: stop's, and the socket's (os.ErrDeadlineExceeded when
// kicked or past limit, net.ErrClosed once closed).
func (d *demux) read(reader *Subscriber, limit time.Time, stop func() error) error {
	d.setDeadline(limit)
	if err := stop(); err != nil {
		return err
	}
	// Buffers the consumers are done with come back first: receive
	// buffers for this read, and reassembly buffers for the messages it
	// starts, so that their pieces can be read into place.
	d.refill(*d.members.Load())
	asked := d.plan()
	n, err := d.sock.ReadBatch(d.ms[:asked])
	if asked == d.batch {
		d.sizeBatch(n)
	}
	placed := d.unplan(n)
	now := time.Now()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		d.deadlineOK = false // a kick may have set it in the past
		if !d.expireAt.IsZero() && !now.Before(d.expireAt) {
			d.reasm.Expire(now)
			d.joiner.Expire(now)
			d.expireAt = time.Time{}
		}
	}
	// Members again: one may have joined during the read.
	d.dispatch(*d.members.Load(), n, placed, now)
	for i := range d.ms[:asked] {
		d.ms[i].Head, d.ms[i].Body = 0, nil // the next plan lays out afresh
	}
	d.wake(reader)
	d.stats.kernelDrops.Store(d.sock.KernelDrops())
	return err
}

// setDeadline sets the socket's read deadline to limit, or sooner while
// fragments wait, so that their memory is not held forever even if
// nothing more arrives.
func (d *demux) setDeadline(limit time.Time) {
	if d.fragments {
		pending, _ := d.reasm.Pending()
		joining, _ := d.joiner.Pending()
		if pending+joining == 0 {
			d.expireAt, d.fragments = time.Time{}, false
		} else if d.expireAt.IsZero() {
			d.expireAt = time.Now().Add(d.expireEvery)
		}
	}
	want := limit
	if !d.expireAt.IsZero() && (want.IsZero() || d.expireAt.Before(want)) {
		want = d.expireAt
	}
	if !d.deadlineOK || !want.Equal(d.deadline) {
		d.sock.SetReadDeadline(want)
		d.deadline, d.deadlineOK = want, true
	}
}

// sizeBatch sets how many datagrams the next plain read asks for, after
// one that got n: as many as the last one got, doubling while they fill
// the batch: one at a time on a quiet socket (recvmmsg's look for a second
// datagram costs a round trip about 5%), sixteen under load.
func (d *demux) sizeBatch(n int) {
	asked := d.batch
	d.batch = max(1, n)
	if n == asked {
		d.batch = min(2*n, len(d.ms))
	}
}

// dispatch handles the n datagrams read, the first placed of them pieces
// read into place.
func (d *demux) dispatch(members []*Subscriber, n, placed int, now time.Time) {
	d.wall = now.UnixNano()
	for i := range d.ms[:n] {
		m := &d.ms[i]
		// Reassembly wants to know when each datagram arrived (see
		// fragment) and whether the kernel dropped any before it
		// (reassembly.Reassembler.Lost).
		d.stamp = m.Stamp
		d.reasm.Lost(uint64(m.Drops))
		if i < placed {
			d.handlePlaced(members, i, now)
		} else if d.handle(members, m, now); m.Buf == nil {
			d.taken = max(d.taken, i+1) // a queue took the buffer
		}
	}
}

// wake signals the members given messages in this batch, but reader.
func (d *demux) wake(reader *Subscriber) {
	woke := false
	for _, s := range d.woken {
		if s != reader {
			s.signal()
			woke = true
		}
	}
	clear(d.woken)
	d.woken = d.woken[:0]
	if woke {
		// The consumers just woken wait in this thread's run queue, and
		// while traffic keeps the reader from blocking, and the other
		// threads are busy, they would wait there until the scheduler
		// preempts the reader, 10 ms on: let them run now. A publisher
		// that waits for its subscribers (the benchmark's 1 MB rows with
		// four of them) went a fifth faster.
		runtime.Gosched()
	}
}

// gave notes that s was given a message in this batch.
func (d *demux) gave(s *Subscriber) {
	for _, w := range d.woken {
		if w == s {
			return
		}
	}
	d.woken = append(d.woken, s)
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

// handle filters, decodes and queues the datagrams read into m.Buf: one,
// or several of one sender that the kernel coalesced (GRO, see
// sock.Config), each handled on its own. It leaves m.Buf nil when a queue
// took the buffer, for refill.
func (d *demux) handle(members []*Subscriber, m *sock.Message, now time.Time) {
	if m.Segment > 0 && m.N > m.Segment {
		// Several datagrams in one buffer: none may lend it.
		for b := range m.Datagrams {
			d.handleOne(members, m, b, false, now)
		}
		return
	}
	d.handleOne(members, m, m.Buf[:m.N], true, now)
}

// handleOne handles datagram b, read into m.Buf; a large payload may stay
// there, the buffer lent to the queues, if mayLend.
func (d *demux) handleOne(members []*Subscriber, m *sock.Message, b []byte, mayLend bool, now time.Time) {
	from := m.Addr
	d.stats.datagrams.Add(1)
	d.stats.bytes.Add(uint64(len(b)))
	if mcl2.Is(b) {
		d.handle2(members, b, from, now)
		return
	}
	topic, err := wire.Topic(b)
	if err != nil {
		d.stats.malformed.Add(1)
		return
	}
	takers := d.takersOf(members, topic)
	if len(takers) == 0 {
		return
	}
	fr, err := wire.Decode(b)
	if err != nil {
		d.stats.malformed.Add(1)
		return
	}
	if fr.IsFragment() {
		d.fragment(takers, fr, len(b)-len(fr.Payload), from, now)
		return
	}
	d.stream.on = false
	t := d.intern(topic)
	// A large payload stays in the receive buffer, which goes to the
	// queues with it; copying is cheaper for small ones.
	if len(fr.Payload) < lendMin || !mayLend {
		for _, s := range takers {
			if s.q.push(t, fr.Payload, from, now) {
				d.gave(s)
			}
		}
		return
	}
	if d.lend(takers, t, fr.Payload, m.Buf, from, now) {
		m.Buf = nil
	}
}

// takersOf returns the members that take messages of topic, and counts
// the datagram as filtered for the others. The slice is reused.
func (d *demux) takersOf(members []*Subscriber, topic []byte) []*Subscriber {
	if len(members) == 1 && members[0].wants(topic) {
		return members // never changed in place: joining and leaving replace it
	}
	takers := d.takers[:0]
	for _, s := range members {
		if s.wants(topic) {
			takers = append(takers, s)
		} else {
			s.stats.filtered.Add(1)
		}
	}
	d.takers = takers
	return takers
}

// fragment reassembles fragment fr, whose header was head bytes long,
// and queues its message to takers if it completes one.
func (d *demux) fragment(takers []*Subscriber, fr wire.Frame, head int, from netip.AddrPort, now time.Time) {
	d.stats.fragments.Add(1)
	d.fragments = true
	payload, err := d.reasm.Add(from, reassembly.Frame(fr), arrival(now, d.wall, d.stamp))
	if payload == nil {
		if err == nil {
			d.follow(fr, head, from, false)
		}
		return // stored, or dropped and counted by the reassembler
	}
	d.follow(fr, head, from, true)
	// A reassembled payload is queued as it is, not copied: its buffer
	// leaves the reassembler and comes back once the consumers are done.
	d.reasm.Keep(payload)
	if !d.lend(takers, d.intern(fr.Topic), payload, payload, from, now) {
		d.reasm.Recycle(payload)
	}
}

// lend queues payload, which lies in buf, to takers without copying it.
// It reports whether any queue took it.
func (d *demux) lend(takers []*Subscriber, topic string, payload, buf []byte, from netip.AddrPort, now time.Time) bool {
	return d.lendLease(takers, topic, payload, d.newLease(buf), from, now)
}

// lendJoined lends a payload the Joiner joined, to which its buffer
// returns.
func (d *demux) lendJoined(takers []*Subscriber, topic string, payload []byte, from netip.AddrPort, now time.Time) bool {
	l := d.newLease(payload)
	l.joined = true
	return d.lendLease(takers, topic, payload, l, from, now)
}

func (d *demux) lendLease(takers []*Subscriber, topic string, payload []byte, l *lease, from netip.AddrPort, now time.Time) bool {
	for _, s := range takers {
		if s.q.pushLent(topic, payload, l, from, now) {
			l.refs++
			d.gave(s)
		}
	}
	if l.refs == 0 {
		d.freeLease(l)
		return false
	}
	return true
}

func (d *demux) newLease(buf []byte) *lease {
	if n := len(d.leases); n > 0 {
		l := d.leases[n-1]
		d.leases[n-1] = nil
		d.leases = d.leases[:n-1]
		l.buf = buf
		return l
	}
	return &lease{buf: buf}
}

func (d *demux) freeLease(l *lease) {
	*l = lease{}
	if len(d.leases) < maxPool {
		d.leases = append(d.leases, l)
	}
}

// release counts one queue done with l, and reports whether l was the
// last one. A lease released more often than it was lent would go back
// to the socket while a queue still holds its buffer, and the next read
// would overwrite a payload a consumer is reading: that is a bug, and it
// panics rather than corrupt a message in silence.
func (l *lease) release() bool {
	if l.refs <= 0 {
		panic(fmt.Sprintf("mcl: a %d-byte buffer released more often than it was lent", cap(l.buf)))
	}
	l.refs--
	return l.refs == 0
}

// refill takes back the buffers the consumers are done with: receive
// buffers replace those lent to queues (or wait in the pool), others go
// back to reassembly.
func (d *demux) refill(members []*Subscriber) {
	for _, s := range members {
		for l := s.q.takeReturned(); l != nil; l = s.q.takeReturned() {
			if !l.release() {
				continue
			}
			switch b := l.buf; {
			case l.joined:
				d.joiner.Recycle(b)
			case cap(b) != wire.MaxDatagram:
				d.reasm.Recycle(b)
			case len(d.pool) < maxPool:
				d.pool = append(d.pool, b[:wire.MaxDatagram])
			}
			d.freeLease(l)
		}
	}
	// Only the slots of the last reads can be empty: looking at all of
	// them missed the cache on most.
	for i := range d.ms[:d.taken] {
		if d.ms[i].Buf != nil {
			continue
		}
		if n := len(d.pool); n > 0 {
			d.ms[i].Buf, d.pool[n-1] = d.pool[n-1], nil
			d.pool = d.pool[:n-1]
		} else {
			d.ms[i].Buf = sock.Buffer(wire.MaxDatagram)
		}
	}
	d.taken = 0
}

// intern returns topic as a string, allocating only for topics not seen
// before (and not at all once maxInterned topics are known).
func (d *demux) intern(topic []byte) string {
	// Most datagrams have the topic of the one before: comparing it is
	// cheaper than hashing it, and leaves the map's memory alone.
	if string(topic) == d.lastTopic {
		return d.lastTopic
	}
	t, ok := d.interned[string(topic)]
	if !ok {
		t = string(topic)
		if len(d.interned) < maxInterned {
			d.interned[t] = t
		}
	}
	d.lastTopic = t
	return t
}
