package mcl

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

// The ownership protocol of owner.go, tested on a fake socket in a
// synctest bubble: time is the bubble's, advancing only when every
// goroutine waits, so that who reads when is exact, not a matter of luck.

// fakeSocket is a packetSocket whose datagrams come from send, with
// deadlines on the bubble's clock, blocking on channels only.
type fakeSocket struct {
	in      chan []byte
	lock    chan struct{} // a mutex that blocks durably: guards deadline and deaf
	changed chan struct{} // the deadline changed
	closed  chan struct{}
	once    sync.Once

	deadline time.Time
	deaf     bool // kicks do not end a read: to hold a reader in place
	kicks    int  // deadlines set in the past
}

func newFakeSocket() *fakeSocket {
	return &fakeSocket{
		in:      make(chan []byte, 1024),
		lock:    make(chan struct{}, 1),
		changed: make(chan struct{}, 1),
		closed:  make(chan struct{}),
	}
}

var fakeSender = netip.MustParseAddrPort("[fd00::1]:4000")

func (s *fakeSocket) send(topic string, v int) {
	s.in <- wire.AppendMessage(nil, topic, []byte{byte(v)})
}

func (s *fakeSocket) ReadBatch(ms []sock.Message) (int, error) {
	for {
		s.lock <- struct{}{}
		dl := s.deadline
		<-s.lock
		var timeout <-chan time.Time
		if !dl.IsZero() {
			if !time.Now().Before(dl) {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(time.Until(dl))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case d := <-s.in:
			n := 0
			for {
				fill(&ms[n], d)
				n++
				if n == len(ms) {
					return n, nil
				}
				select {
				case d = <-s.in:
					continue
				default:
				}
				return n, nil
			}
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		case <-s.changed:
		case <-s.closed:
			return 0, net.ErrClosed
		}
	}
}

// fill reads d into m as recvmmsg would, scattered when m.Body is set.
func fill(m *sock.Message, d []byte) {
	m.N, m.Addr, m.Drops, m.Stamp = len(d), fakeSender, 0, 0
	if m.Body == nil {
		copy(m.Buf, d)
		return
	}
	head := copy(m.Buf[:m.Head], d)
	body := copy(m.Body, d[head:])
	copy(m.Buf[m.Head:], d[head+body:])
}

func (s *fakeSocket) SetReadDeadline(t time.Time) error {
	s.lock <- struct{}{}
	kick := t.Equal(time.Unix(1, 0))
	if kick {
		s.kicks++
	}
	deaf := s.deaf && kick
	if !deaf {
		s.deadline = t
	}
	<-s.lock
	if !deaf {
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
	return nil
}

func (s *fakeSocket) setDeaf(deaf bool) {
	s.lock <- struct{}{}
	s.deaf = deaf
	<-s.lock
}

func (s *fakeSocket) KernelDrops() uint64 { return 0 }
func (s *fakeSocket) ReadBufferSize() int { return 4 << 20 }
func (s *fakeSocket) Close() error        { s.once.Do(func() { close(s.closed) }); return nil }

var fakePort atomic.Int32

func init() { fakePort.Store(40000) }

// fakeFeed opens, in the bubble, a feed on a fake socket for a
// Connection of a port of its own, which Subscribers of it join.
func fakeFeed(t *testing.T) (*Connection, *fakeSocket, *feed) {
	t.Helper()
	c, err := NewConnection(DefaultGroup, Port(int(fakePort.Add(1))), Logger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	key := keyOf(c, wire.DefaultLimits())
	s := newFakeSocket()
	f := newFeed(key, s, key.limits)
	feeds.Lock()
	feeds.m[key] = f
	feeds.Unlock()
	f.backing.Add(1)
	go f.backup()
	return c, s, f
}

// next runs Next in a goroutine and returns where its outcome goes.
func next(s *Subscriber, ctx context.Context) <-chan int {
	out := make(chan int, 1)
	go func() {
		m, err := s.Next(ctx)
		if err != nil {
			out <- -1
			return
		}
		out <- int(m.Payload[0])
	}()
	return out
}

// recv receives from ch, failing after a second of the bubble's time: a
// protocol that stalls fails at once instead of hanging.
func recv(t *testing.T, ch <-chan int) int {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Second):
		t.Fatal("nothing came within a second")
		return -2
	}
}

// recvInOrder expects 0..n-1 on ch.
func recvInOrder(t *testing.T, ch <-chan int, n int) {
	t.Helper()
	for want := range n {
		if v := recv(t, ch); v != want {
			t.Fatalf("got %d, want %d", v, want)
		}
	}
}

// readByConsumer sends v, expects it on got, and checks that the backup
// read nothing meanwhile: the consumer read it.
func readByConsumer(t *testing.T, fs *fakeSocket, f *feed, got <-chan int, v int) {
	t.Helper()
	synctest.Wait()
	before := f.stats.backupReads.Load()
	fs.send("t", v)
	if g := recv(t, got); g != v {
		t.Fatalf("got %d, want %d", g, v)
	}
	synctest.Wait()
	if n := f.stats.backupReads.Load(); n != before {
		t.Errorf("the backup read %d batches for a consumer at the socket", n-before)
	}
}

// TestOwnerConsumerReads: a consumer waiting in Next reads the socket
// itself, and the backup, seeing it wait on an idle socket, parks.
func TestOwnerConsumerReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fs, f := fakeFeed(t)
		s, err := SubscribeSync(c)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			readByConsumer(t, fs, f, next(s, context.Background()), i)
		}
		next(s, context.Background())
		time.Sleep(look + parkIdle + time.Millisecond)
		synctest.Wait()
		if n := f.stats.backupReads.Load(); n != 0 {
			t.Errorf("the backup read %d batches while the consumer waited", n)
		}
		if !f.parked.Load() {
			t.Error("the backup did not park while the consumer waited on an idle socket")
		}
		s.Close()
	})
}

// TestOwnerStuckConsumer: a callback stuck on a message; within two looks
// the backup reads what arrives, and queues it; once the callback is free
// and the queue empty, the consumer gets the token back and reads again.
func TestOwnerStuckConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fs, f := fakeFeed(t)
		release := make(chan struct{})
		got := make(chan int, 100)
		s, err := Subscribe(c, func(m *Message) {
			if m.Payload[0] == 0 {
				<-release
			}
			got <- int(m.Payload[0])
		})
		if err != nil {
			t.Fatal(err)
		}
		fs.send("t", 0)
		synctest.Wait() // the callback is stuck on message 0
		for i := 1; i <= 5; i++ {
			fs.send("t", i)
		}
		time.Sleep(look - time.Millisecond)
		synctest.Wait()
		if n := f.stats.datagrams.Load(); n != 1 {
			t.Fatalf("%d datagrams read within a look of the consumer leaving, want 1", n)
		}
		time.Sleep(look + 2*time.Millisecond)
		synctest.Wait()
		if n := f.stats.datagrams.Load(); n != 6 {
			t.Fatalf("%d datagrams read within two looks, want 6", n)
		}
		close(release)
		recvInOrder(t, got, 6)
		// The consumer has asked for the token, and has it.
		readByConsumer(t, fs, f, got, 6)
		s.Close()
	})
}

// TestOwnerBusyConsumer: a callback that takes 5 ms a message, with one
// arriving every 6 ms, comes back to the socket between every two looks:
// the backup leaves the socket to it.
func TestOwnerBusyConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fs, f := fakeFeed(t)
		got := make(chan int, 100)
		s, err := Subscribe(c, func(m *Message) {
			time.Sleep(5 * time.Millisecond)
			got <- int(m.Payload[0])
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := range 50 {
			fs.send("t", i)
			time.Sleep(6 * time.Millisecond)
		}
		recvInOrder(t, got, 50)
		if n := f.stats.backupReads.Load(); n != 0 {
			t.Errorf("the backup read %d batches for a consumer that kept coming back", n)
		}
	})
}

// TestOwnerShared: a second member kicks the reading consumer out of the
// socket; the backup reads for both, and both get every message.
func TestOwnerShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fs, f := fakeFeed(t)
		a, err := SubscribeSync(c)
		if err != nil {
			t.Fatal(err)
		}
		gotA := next(a, context.Background())
		synctest.Wait() // a's consumer reads
		b, err := SubscribeSync(c)
		if err != nil {
			t.Fatal(err)
		}
		gotB := next(b, context.Background())
		synctest.Wait()
		fs.send("t", 7)
		if va, vb := recv(t, gotA), recv(t, gotB); va != 7 || vb != 7 {
			t.Fatalf("shared: a got %d, b %d, want 7", va, vb)
		}
		synctest.Wait()
		if f.stats.backupReads.Load() == 0 {
			t.Error("the backup did not read while the feed was shared")
		}
		// With b gone, a reads alone again.
		b.Close()
		readByConsumer(t, fs, f, next(a, context.Background()), 8)
		a.Close()
	})
}

// TestOwnerClose closes a Subscriber at each point of the protocol: every
// goroutine of the bubble must end (synctest.Test fails otherwise), and a
// waiting Next returns ErrClosed.
func TestOwnerClose(t *testing.T) {
	t.Run("consumer reading", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, _, _ := fakeFeed(t)
			s, _ := SubscribeSync(c)
			got := next(s, context.Background())
			synctest.Wait()
			s.Close()
			if v := <-got; v != -1 {
				t.Errorf("Next = %d after Close, want an error", v)
			}
		})
	})
	t.Run("backup reading", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, fs, f := fakeFeed(t)
			release := make(chan struct{})
			s, _ := Subscribe(c, func(*Message) { <-release })
			defer s.Close()
			defer close(release)
			fs.send("t", 0)
			synctest.Wait()
			fs.send("t", 1)
			time.Sleep(3 * look)
			synctest.Wait()
			if f.stats.backupReads.Load() == 0 {
				t.Fatal("the backup is not reading")
			}
		})
	})
	t.Run("backup parked", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, _, f := fakeFeed(t)
			s, _ := SubscribeSync(c)
			got := next(s, context.Background())
			time.Sleep(look + parkIdle + time.Millisecond)
			synctest.Wait()
			if !f.parked.Load() {
				t.Fatal("the backup did not park")
			}
			s.Close()
			<-got
		})
	})
	t.Run("consumer waiting for the token", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, fs, f := fakeFeed(t)
			release := make(chan struct{})
			s, _ := Subscribe(c, func(m *Message) {
				if m.Payload[0] == 0 {
					<-release
				}
			})
			defer s.Close()
			fs.send("t", 0)
			time.Sleep(3 * look)
			synctest.Wait() // the backup reads, the callback is stuck
			fs.setDeaf(true)
			close(release)
			synctest.Wait() // the consumer asked for the token, in vain
			if !f.wantRead.Load() {
				t.Fatal("the consumer is not waiting for the token")
			}
		})
	})
	t.Run("context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, _, _ := fakeFeed(t)
			s, _ := SubscribeSync(c)
			ctx, cancel := context.WithCancel(context.Background())
			got := next(s, ctx)
			synctest.Wait()
			cancel()
			if v := <-got; v != -1 {
				t.Errorf("Next = %d after cancel, want an error", v)
			}
			_, err := s.Next(ctx)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Next on a cancelled context: %v", err)
			}
			s.Close()
		})
	})
}

func (s *fakeSocket) kicked() int {
	s.lock <- struct{}{}
	defer func() { <-s.lock }()
	return s.kicks
}

// TestOwnerContexts: a context cancelled while Next reads kicks the read;
// one cancelled after Next returned (a per-call timeout, cancelled by a
// deferred cancel) kicks nothing and was unregistered first, so its
// cancel starts no goroutine; one used call after call stays registered.
func TestOwnerContexts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fs, f := fakeFeed(t)
		s, err := SubscribeSync(c)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			readByConsumer(t, fs, f, next(s, ctx), i)
			s.ctxMu.Lock()
			registered := s.ctxStop != nil
			s.ctxMu.Unlock()
			if registered {
				t.Fatalf("call %d: a context used once is still registered after Next", i)
			}
			cancel()
			synctest.Wait()
		}
		if k := fs.kicked(); k != 0 {
			t.Errorf("contexts cancelled after Next returned kicked the socket %d times", k)
		}
		// Cancelled while Next reads: one kick, and Next returns.
		ctx, cancel := context.WithCancel(context.Background())
		got := next(s, ctx)
		synctest.Wait()
		cancel()
		if v := recv(t, got); v != -1 {
			t.Fatalf("Next = %d after cancel, want an error", v)
		}
		if k := fs.kicked(); k != 1 {
			t.Errorf("a cancel during Next kicked the socket %d times, want 1", k)
		}
		// One context for many calls: registered from the second on.
		ctx, cancel = context.WithCancel(context.Background())
		defer cancel()
		for i := range 3 {
			readByConsumer(t, fs, f, next(s, ctx), i)
		}
		s.ctxMu.Lock()
		registered := s.ctxStop != nil
		s.ctxMu.Unlock()
		if !registered {
			t.Error("a context used call after call is not kept registered")
		}
	})
}
