package mcl

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

// Who reads a feed's socket.
//
// A feed is the socket a process's Subscribers of one group share (its
// members): one kernel copy of each datagram and one reassembly, however
// many Subscribers there are. Its demux (demux.go) turns datagrams into
// messages in the members' queues. Two kinds of goroutine read:
//
//   - The consumer of a sole member (the goroutine running its callback,
//     or calling Next) reads whenever its queue is empty, so that a message
//     that finds it waiting is delivered on the goroutine the kernel woke,
//     with no hand-off: in the round-trip benchmark a hand-off cost about
//     5 µs, a third of mcl's latency over the bare socket.
//   - The feed's backup goroutine reads while the feed has several
//     members, and while the sole member's consumer stays away from the
//     socket (a slow callback, a program busy between calls to Next),
//     queuing what arrives so that the kernel's buffer does not overflow.
//
// The rules, which the code below keeps and owner_test.go checks:
//
//  1. The token is a channel holding one value while nobody reads. A
//     goroutine reads the socket and touches the demux only between
//     taking that value and putting it back. So one goroutine at a time.
//  2. While the feed is shared, only the backup takes the token. Joining
//     a second member kicks the reading consumer out (a kick ends a read
//     at once, see kick) and it puts the token back.
//  3. A consumer that finds the token taken (the backup reads) says it
//     wants it (wantRead), kicks the read, and waits for the token, or
//     for a message queued meanwhile, whichever comes first. The backup
//     puts the token back before it reads another batch.
//  4. The backup looks at a sole member's consumer every look. It takes
//     the token only if the token is free and the consumer has not come
//     to the socket since the last look (visits): a stuck consumer is
//     noticed within two looks, and one that comes and goes is left alone.
//  5. When the consumer has waited at an idle socket (consuming) for
//     parkIdle, the backup parks: no timer, so an idle Subscriber costs
//     no wakeups. A consumer leaving the socket wakes a parked backup.
//  6. Closing the last member closes the socket: every read ends with
//     net.ErrClosed, the reader puts the token back, and the backup,
//     waiting or not, sees done and ends.
type feed struct {
	key  feedKey
	sock packetSocket
	dm   *demux // the token holder's

	token chan struct{}

	members atomic.Pointer[[]*Subscriber] // replaced whole under feeds.mu
	shared  atomic.Bool                   // several members: the backup reads

	wantRead  atomic.Bool   // the sole member's consumer waits for the token
	consuming atomic.Bool   // that consumer is at the socket: reading, or waiting to
	visits    atomic.Uint64 // times that consumer came to the socket
	parked    atomic.Bool   // the backup waits for wake, with no timer
	wake      chan struct{} // the consumer left the socket, or the members changed
	done      chan struct{} // closed with the last member
	backing   sync.WaitGroup

	stats feedCounters
}

type feedCounters struct {
	datagrams, bytes, malformed, fragments, readErrors, kernelDrops atomic.Uint64
	unsupported                                                     atomic.Uint64 // mcl/2 datagrams and records of another version or kind
	placed                                                          atomic.Uint64 // pieces read into place
	placedFirst                                                     atomic.Uint64 // of them, first pieces (Reassembler.First)
	backupReads                                                     atomic.Uint64 // batches the backup read, not a consumer
}

// feedKey says which Subscribers can share a socket.
type feedKey struct {
	netns      uint64 // where the socket belongs (netNamespace)
	group      netip.AddrPort
	ifindex    int
	readBuffer int
	spin       time.Duration
	limits     wire.Limits
}

// look is how often the backup looks at a sole member's consumer, and
// parkIdle how long that consumer waits at an idle socket before the
// backup parks. Each look wakes a goroutine, which showed in the tail of
// round trips when looks came every millisecond; every 16 ms, a stuck
// consumer is noticed within 32 ms, in which a 4 MiB receive buffer holds
// 100 MB/s of traffic.
const (
	look     = 16 * time.Millisecond
	parkIdle = 16 * time.Millisecond
)

// errPreempted says a read stopped because another reader is to have the
// socket.
var errPreempted = errors.New("mcl: read preempted")

// feeds holds the process's open feeds.
var feeds = struct {
	sync.Mutex
	m map[feedKey]*feed
}{m: make(map[feedKey]*feed)}

// keyOf returns the key of the feed that c's Subscribers with limits
// share, opened on the calling thread.
func keyOf(c *Connection, limits wire.Limits) feedKey {
	key := feedKey{netns: netNamespace(), group: c.group, readBuffer: c.readBuffer, spin: c.spin, limits: limits}
	if c.ifi != nil {
		key.ifindex = c.ifi.Index
	}
	return key
}

// join adds s to the feed for its Connection and limits, opening one if
// there is none. Errors: those of opening the socket (sock.Listen).
func join(s *Subscriber, limits wire.Limits) (*feed, error) {
	c := s.conn
	key := keyOf(c, limits)
	feeds.Lock()
	defer feeds.Unlock()
	f := feeds.m[key]
	if f == nil {
		cfg := c.sockConfig()
		// mcl/2 senders send runs of datagrams with UDP GSO; with GRO the
		// kernel hands a run over in one buffer (see demux.handle).
		cfg.GRO = true
		r, err := sock.Listen(cfg)
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
		f.kick()       // out of the socket, sole member's consumer (rule 2)
		f.wakeBackup() // and in, backup
	}
	return f, nil
}

func newFeed(key feedKey, s packetSocket, limits wire.Limits) *feed {
	f := &feed{
		key:   key,
		sock:  s,
		token: make(chan struct{}, 1),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	f.token <- struct{}{}
	f.members.Store(&[]*Subscriber{}) // never nil, even to a backup that starts first
	f.dm = newDemux(s, limits, &f.members, &f.stats)
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
	err := f.sock.Close()
	f.backing.Wait()
	return err
}

// kick makes the current read return now, with a deadline error; the
// reader then sees why and restores its deadline.
func (f *feed) kick() { f.sock.SetReadDeadline(time.Unix(1, 0)) }

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

// consume is the sole member s's consumer at the socket: it reads until a
// message is queued for s, the feed becomes shared, or the backup, which
// had the token, queued one. Errors: ErrClosed, and ctx's.
func (f *feed) consume(s *Subscriber, ctx context.Context) error {
	f.visits.Add(1)
	f.consuming.Store(true)
	defer f.leaveSocket()
	select {
	case <-f.token:
	default:
		if got, err := f.askForToken(s, ctx); !got {
			return err
		}
	}
	// Few returns here, and the loop in a function of its own: with more,
	// the compiler stops open-coding the defers (-gcflags=-d=defer), and
	// running them cost a few hundred nanoseconds a message.
	defer f.putToken()
	return f.readFor(s, ctx)
}

// askForToken asks the backup for the token (rule 3) and waits for it, or
// for a message queued meanwhile; it reports whether it got the token.
// Errors: ErrClosed, and ctx's.
func (f *feed) askForToken(s *Subscriber, ctx context.Context) (bool, error) {
	f.wantRead.Store(true)
	defer f.wantRead.Store(false)
	f.kick()
	select {
	case <-f.token:
		return true, nil
	case <-s.ready:
		return false, nil
	case <-s.done:
		return false, ErrClosed
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (f *feed) putToken() { f.token <- struct{}{} }

// readFor reads for s, the sole member's consumer, holding the token,
// until s has a message queued, the feed becomes shared, or it must stop.
// Errors: ErrClosed, and ctx's.
func (f *feed) readFor(s *Subscriber, ctx context.Context) error {
	s.reading.Store(true)
	defer s.reading.Store(false)
	if err := s.watch(ctx); err != nil {
		return err
	}
	limit, _ := ctx.Deadline()
	stop := func() error {
		select {
		case <-s.done:
			return ErrClosed
		default:
		}
		if f.shared.Load() {
			return errPreempted
		}
		return ctx.Err()
	}
	for s.q.empty() {
		err := f.dm.read(s, limit, stop)
		switch {
		case err == nil:
			continue
		case errors.Is(err, net.ErrClosed):
			return ErrClosed
		}
		if err := stop(); err != nil && err != errPreempted {
			return err // closed, or ctx's
		}
		if f.shared.Load() {
			return nil
		}
		if !limit.IsZero() && !time.Now().Before(limit) {
			// ctx's own timer is due: wait for it, so that ctx.Err() agrees.
			<-ctx.Done()
			return ctx.Err()
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			if err := f.pause(ctx, s.done); err != nil {
				return err
			}
		}
	}
	return nil
}

// leaveSocket marks the sole member's consumer away from the socket, and
// wakes the backup if it parked: the consumer may now stay away (rule 5).
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
	t := time.NewTimer(look)
	defer t.Stop()
	var (
		seen uint64        // visits at the last look
		idle time.Duration // how long the consumer has waited at an idle socket
	)
	for {
		select {
		case <-t.C:
		case <-f.wake:
		case <-f.done:
			return
		}
		visits := f.visits.Load()
		read := false
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
				idle = 0
			}
		case !moved:
			read = true // rule 4
		}
		if read && !f.read() {
			return
		}
		seen = f.visits.Load()
		t.Reset(look)
	}
}

// park waits until the consumer leaves the socket (rule 5). It reports
// false once the feed is closed.
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
		select {
		case <-f.token: // the former sole consumer, kicked out, puts it back
		case <-f.done:
			return false
		}
	} else {
		select {
		case <-f.token:
		default:
			return true // the consumer came back and reads
		}
	}
	defer f.putToken()
	for f.shared.Load() || !f.wantRead.Load() {
		err := f.dm.read(nil, time.Time{}, f.preempted)
		f.stats.backupReads.Add(1)
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
