package bridge

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
)

// A testSite is one site of a test: a network namespace of its own
// (sandbox.NewNamespace: lo and a veth pair like the sandbox's, and no
// route to the sandbox's namespace or another site's), and a group in it.
// The NATS servers listen on the sandbox's own loopback; a site's bridge
// opens its group sockets in the site and dials NATS from the sandbox's
// namespace (sandboxDialer), so the sites are joined through NATS only.
type testSite struct {
	name string
	ns   *sandbox.Namespace
	conn *mcl.Connection
}

// newSite makes a site with group, on mcl's default port: sites that are
// configured alike, as on separate hosts. The sites of one test process
// are apart as hosts are: each has its own network namespace, and mcl
// opens a socket per namespace even for the same group and port.
func newSite(t testing.TB, name, group string) *testSite {
	t.Helper()
	sandbox.Require(t)
	ns, err := sandbox.NewNamespace()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	c, err := mcl.NewConnection(group)
	if err != nil {
		t.Fatal(err)
	}
	return &testSite{name: name, ns: ns, conn: c}
}

// do runs fn in the site's namespace: the sockets that fn opens (directly
// or through constructors such as mcl.NewPublisher and New) and the
// processes it starts are the site's.
func (s *testSite) do(t testing.TB, fn func() error) {
	t.Helper()
	if err := s.ns.Do(fn); err != nil {
		t.Fatalf("site %s: %v", s.name, err)
	}
}

// sandboxDialer dials NATS from the sandbox's namespace, even when
// nats.Connect runs on a thread in a site's (in New, called from
// testSite.do): a goroutine never runs on a thread locked to another
// goroutine, and no other thread is in a site's namespace.
type sandboxDialer struct{}

func (sandboxDialer) Dial(network, address string) (net.Conn, error) {
	type dialed struct {
		c   net.Conn
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		c, err := net.DialTimeout(network, address, 2*time.Second)
		ch <- dialed{c, err}
	}()
	d := <-ch
	return d.c, d.err
}

// bridge makes a bridge of the site's group, runs it, and waits until it
// forwards; it is closed with the test.
func (s *testSite) bridge(t testing.TB, urls string, opts ...Option) *Bridge {
	t.Helper()
	var b *Bridge
	s.do(t, func() (err error) {
		b, err = New(s.conn, urls, append([]Option{
			AnnounceInterval(100 * time.Millisecond),
			NATSOptions(nats.SetCustomDialer(sandboxDialer{})),
		}, opts...)...)
		return err
	})
	b.cfg.settle = 100 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background()) }()
	t.Cleanup(func() {
		b.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-b.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("bridge not ready")
	}
	return b
}

// publisher returns a Publisher on the site's group, closed with the test.
func (s *testSite) publisher(t testing.TB) *mcl.Publisher {
	t.Helper()
	var p *mcl.Publisher
	s.do(t, func() (err error) {
		p, err = mcl.NewPublisher(s.conn)
		return err
	})
	t.Cleanup(func() { p.Close() })
	return p
}

// subscribe returns a SubscribeSync Subscriber of the site's group, closed
// with the test.
func (s *testSite) subscribe(t testing.TB, opts ...mcl.SubscribeOption) *mcl.Subscriber {
	t.Helper()
	var sub *mcl.Subscriber
	s.do(t, func() (err error) {
		sub, err = mcl.SubscribeSync(s.conn, opts...)
		return err
	})
	t.Cleanup(func() { sub.Close() })
	return sub
}

// endTopic carries the markers of collector.settle.
const endTopic = "_end"

type rec struct {
	topic   string
	payload string
}

// collector receives every message of a site's group but the bridges'
// hellos and settle's markers.
type collector struct {
	mu   sync.Mutex
	got  []rec
	ends map[string]bool
	more chan struct{} // a message came; never blocks the callback
	sub  *mcl.Subscriber
}

// collect starts a collector on the site's group.
func (s *testSite) collect(t testing.TB) *collector {
	t.Helper()
	col := &collector{ends: map[string]bool{}, more: make(chan struct{}, 1)}
	s.do(t, func() (err error) {
		col.sub, err = mcl.Subscribe(s.conn, col.add)
		return err
	})
	t.Cleanup(func() { col.sub.Close() })
	return col
}

func (c *collector) add(m *mcl.Message) {
	if m.Topic == HelloTopic {
		return
	}
	c.mu.Lock()
	if m.Topic == endTopic {
		c.ends[string(m.Payload)] = true
	} else {
		c.got = append(c.got, rec{m.Topic, string(m.Payload)})
	}
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

func (c *collector) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func (c *collector) snapshot() []rec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rec(nil), c.got...)
}

// until waits until ok holds, or timeout passes; it reports whether ok held.
func (c *collector) until(ok func() bool, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !ok() {
		select {
		case <-c.more:
		case <-deadline.C:
			return ok()
		}
	}
	return true
}

// wait waits for n messages, for up to timeout, and returns what came.
func (c *collector) wait(n int, timeout time.Duration) []rec {
	c.until(func() bool { return c.n() >= n }, timeout)
	return c.snapshot()
}

// settle publishes an end marker with p and waits until it came, then
// returns the messages. p must be where the messages that c waits for come
// from: they take the same path as the marker (one socket, one
// subscription, one NATS connection each way), which keeps their order,
// so whatever they caused before the marker, duplicates included, came
// before it.
func (c *collector) settle(t testing.TB, p *mcl.Publisher, timeout time.Duration) []rec {
	t.Helper()
	id := pack(t, fmt.Sprintf("%p %d", c, time.Now().UnixNano()))
	if err := p.PublishRaw(endTopic, id); err != nil {
		t.Fatal(err)
	}
	if !c.until(func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.ends[string(id)]
	}, timeout) {
		t.Fatalf("the end marker did not come through within %v (%d messages came)", timeout, c.n())
	}
	return c.snapshot()
}

// isolated fails unless site a's traffic does not reach site b: a
// publisher in a sends to b's group and port, then one in b does; b's
// subscriber gets b's message only. A subscriber in a then gets a's, so
// that a's network did carry it.
func isolated(t testing.TB, a, b *testSite) {
	t.Helper()
	send := func(from *testSite) {
		from.do(t, func() error {
			p, err := mcl.NewPublisher(b.conn)
			if err != nil {
				return err
			}
			defer p.Close()
			for i := range 3 {
				if err := p.Publish("isolation", from.name+" "+strconv.Itoa(i)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	first := func(sub *mcl.Subscriber) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if err := m.Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var sub *mcl.Subscriber
	b.do(t, func() (err error) {
		sub, err = mcl.SubscribeSync(b.conn, mcl.Topics("isolation"))
		return err
	})
	send(a)
	send(b)
	got := first(sub)
	st := sub.Stats()
	sub.Close()
	if got != b.name+" 0" || st.Datagrams > 3 {
		t.Fatalf("site %s heard site %s: first message %q, %d datagrams", b.name, a.name, got, st.Datagrams)
	}
	// One at a time: see newSite.
	a.do(t, func() (err error) {
		sub, err = mcl.SubscribeSync(b.conn, mcl.Topics("isolation"))
		return err
	})
	defer sub.Close()
	send(a)
	if got := first(sub); got != a.name+" 0" {
		t.Fatalf("site %s's own subscriber got %q", a.name, got)
	}
}
