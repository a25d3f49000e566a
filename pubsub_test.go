package mcl_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
	"github.com/mcl-go/mcl/wire"
)

const group4 = "239.192.0.1"

var nextPort atomic.Int32

func init() { nextPort.Store(27000) }

// conn returns a Connection on a port no other test uses, so sockets of
// one test never see another's traffic.
func conn(t *testing.T, group string, opts ...mcl.Option) *mcl.Connection {
	t.Helper()
	sandbox.Require(t)
	opts = append([]mcl.Option{mcl.Port(int(nextPort.Add(1))), mcl.Logger(slog.New(slog.DiscardHandler))}, opts...)
	c, err := mcl.NewConnection(group, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func publisher(t *testing.T, c *mcl.Connection) *mcl.Publisher {
	t.Helper()
	p, err := mcl.NewPublisher(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func chanSubscriber(t *testing.T, c *mcl.Connection, opts ...mcl.SubscribeOption) (*mcl.Subscriber, chan *mcl.Message) {
	t.Helper()
	ch := make(chan *mcl.Message, 10000)
	s, err := mcl.SubscribeChan(c, ch, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ch
}

// receive waits for n messages, failing the test after a deadline.
func receive(t *testing.T, ch <-chan *mcl.Message, n int) []*mcl.Message {
	t.Helper()
	var got []*mcl.Message
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case m := <-ch:
			got = append(got, m)
		case <-deadline:
			t.Fatalf("received %d of %d messages before the deadline", len(got), n)
		}
	}
	return got
}

// eventually polls cond until it holds or a deadline passes: for counters
// that have no event to wait on.
// syncSubscriber returns a SubscribeSync Subscriber on c, closed when the
// test ends.
func syncSubscriber(t *testing.T, c *mcl.Connection, opts ...mcl.SubscribeOption) *mcl.Subscriber {
	t.Helper()
	s, err := mcl.SubscribeSync(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// nextInts receives len(want) messages with s.Next and checks that they
// decode to want, in order.
func nextInts(t *testing.T, s *mcl.Subscriber, want ...int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, w := range want {
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var v int
		if err := m.Decode(&v); err != nil || v != w {
			t.Fatalf("got %d (%v), want %d", v, err, w)
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPublishSubscribe(t *testing.T) {
	for _, group := range []string{mcl.DefaultGroup, group4} {
		t.Run(group, func(t *testing.T) {
			c := conn(t, group)
			sub, ch := chanSubscriber(t, c)
			pub := publisher(t, c)
			const n = 100
			for i := range n {
				if err := pub.Publish("gps", map[string]any{"seq": i, "name": "fix"}); err != nil {
					t.Fatal(err)
				}
			}
			for i, m := range receive(t, ch, n) {
				var v struct {
					Seq  int    `msgpack:"seq"`
					Name string `msgpack:"name"`
				}
				if err := m.Decode(&v); err != nil {
					t.Fatal(err)
				}
				if m.Topic != "gps" || v.Seq != i || v.Name != "fix" {
					t.Fatalf("message %d: topic %q payload %+v", i, m.Topic, v)
				}
				if m.Sender != pub.LocalAddr() {
					t.Errorf("Sender = %s, want the publisher's %s", m.Sender, pub.LocalAddr())
				}
				if m.Received.IsZero() {
					t.Error("Received is zero")
				}
			}
			if st := sub.Stats(); st.Delivered != n || st.Datagrams != n || st.Malformed != 0 {
				t.Errorf("stats %+v", st)
			}
			if st := pub.Stats(); st.Messages != n || st.Datagrams != n || st.Errors != 0 {
				t.Errorf("publisher stats %+v", st)
			}
		})
	}
}

// bin returns the msgpack bin encoding of n bytes whose values vary, so
// misplaced fragments show.
func bin(n int) []byte {
	b := []byte{0xc6, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	for i := range n {
		b = append(b, byte(i*7+i/251))
	}
	return b
}

func TestFragmented(t *testing.T) {
	for _, group := range []string{mcl.DefaultGroup, group4} {
		t.Run(group, func(t *testing.T) {
			c := conn(t, group)
			sub, ch := chanSubscriber(t, c)
			pub := publisher(t, c)
			payloads := [][]byte{
				bin(200_000),        // 4 fragments
				bin(120_000 - 5),    // exactly 2*MTU encoded: the seed's empty last piece
				bin(60_000 - 5),     // exactly MTU encoded: 2 fragments, the second empty
				bin(59_990),         // fits alone, but not with the frame around it: N = 1
				bin(1<<20 + 12_345), // 18 fragments
			}
			for _, p := range payloads {
				if err := pub.PublishRaw("camera", p); err != nil {
					t.Fatal(err)
				}
			}
			for i, m := range receive(t, ch, len(payloads)) {
				if !bytes.Equal(m.Payload, payloads[i]) {
					t.Fatalf("payload %d (%d bytes) differs: got %d bytes", i, len(payloads[i]), len(m.Payload))
				}
			}
			wantFrags := uint64(0)
			for _, p := range payloads {
				wantFrags += uint64(wire.FragmentCount(len(p)))
			}
			st := sub.Stats()
			if st.Fragments != wantFrags || st.Reassembled != uint64(len(payloads)) || st.Malformed+st.Rejected+st.Evicted != 0 {
				t.Errorf("stats %+v, want %d fragments", st, wantFrags)
			}
		})
	}
}

func TestManySubscribers(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	var chans []chan *mcl.Message
	for range 4 {
		_, ch := chanSubscriber(t, c)
		chans = append(chans, ch)
	}
	pub := publisher(t, c)
	const n = 50
	for i := range n {
		if err := pub.Publish("t", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.PublishRaw("big", bin(300_000)); err != nil {
		t.Fatal(err)
	}
	for k, ch := range chans {
		got := receive(t, ch, n+1)
		for i, m := range got[:n] {
			var v int
			if err := m.Decode(&v); err != nil || v != i {
				t.Fatalf("subscriber %d message %d = %d (%v)", k, i, v, err)
			}
		}
		if len(got[n].Payload) != 300_005 {
			t.Errorf("subscriber %d: big message %d bytes", k, len(got[n].Payload))
		}
	}
}

func TestTopicFilter(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	sub, ch := chanSubscriber(t, c, mcl.Topics("a", "c"))
	pub := publisher(t, c)
	for _, topic := range []string{"a", "b", "", "c", "ab"} {
		if err := pub.Publish(topic, topic); err != nil {
			t.Fatal(err)
		}
	}
	// A fragmented message of a filtered topic is dropped fragment by
	// fragment, never reassembled.
	if err := pub.PublishRaw("b", bin(150_000)); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("a", "end"); err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, m := range receive(t, ch, 3) {
		topics = append(topics, m.Topic)
	}
	if got := strings.Join(topics, ","); got != "a,c,a" {
		t.Errorf("topics delivered %s, want a,c,a", got)
	}
	if st := sub.Stats(); st.Filtered != 6 || st.Fragments != 0 {
		t.Errorf("stats %+v: want 6 filtered, no fragments", st)
	}
}

// TestOnlyGroupTraffic checks the traps of net.ListenMulticastUDP are
// avoided: unicast to the port and another group on the same port do not
// reach a subscriber.
func TestOnlyGroupTraffic(t *testing.T) {
	netw := sandbox.Require(t)
	for _, tc := range []struct {
		group, other, network string
		unicast               netip.Addr
	}{
		{mcl.DefaultGroup, "ff15::1:2", "udp6", netw.Addr6},
		{group4, "239.192.0.2", "udp4", netw.Addr4},
	} {
		t.Run(tc.group, func(t *testing.T) {
			c := conn(t, tc.group)
			sub, ch := chanSubscriber(t, c)
			port := int(c.Group().Port())

			// Unicast first, while sub is the only socket on the port: a
			// socket bound to the wildcard address would get it.
			u, err := net.DialUDP(tc.network, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(tc.unicast, uint16(port))))
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if _, err := u.Write(wire.AppendMessage(nil, "unicast", []byte{0x01})); err != nil {
				t.Fatal(err)
			}

			other, err := mcl.NewConnection(tc.other, mcl.Port(port))
			if err != nil {
				t.Fatal(err)
			}
			_, otherCh := chanSubscriber(t, other) // makes the host a member of the other group
			publisher(t, other).Publish("other", 1)
			receive(t, otherCh, 1)

			publisher(t, c).Publish("mine", 2)
			if m := receive(t, ch, 1)[0]; m.Topic != "mine" {
				t.Fatalf("first message on topic %q, want mine", m.Topic)
			}
			if st := sub.Stats(); st.Datagrams != 1 {
				t.Errorf("subscriber read %d datagrams, want only its group's 1", st.Datagrams)
			}
		})
	}
}

func TestInterface(t *testing.T) {
	netw := sandbox.Require(t)
	for _, group := range []string{mcl.DefaultGroup, group4} {
		t.Run(group, func(t *testing.T) {
			base := conn(t, group)
			port := mcl.Port(int(base.Group().Port()))
			on := func(iface string, opts ...mcl.Option) *mcl.Connection {
				c, err := mcl.NewConnection(group, append([]mcl.Option{port, mcl.Interface(iface)}, opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				if c.Interface() != iface {
					t.Fatalf("Interface() = %q", c.Interface())
				}
				return c
			}
			// Sent out of Iface with loopback off, a datagram reaches this
			// host only by crossing the veth pair to Peer.
			_, peerCh := chanSubscriber(t, on(netw.Peer))
			ifaceSub, err := mcl.SubscribeSync(on(netw.Iface))
			if err != nil {
				t.Fatal(err)
			}
			defer ifaceSub.Close()
			pub := publisher(t, on(netw.Iface, mcl.Loopback(false)))
			if err := pub.Publish("x", "hello"); err != nil {
				t.Fatal(err)
			}
			receive(t, peerCh, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if m, err := ifaceSub.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("subscriber on %s got %v (%v); with loopback off it must not", netw.Iface, m, err)
			}
		})
	}
}

func TestCloseAndLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := conn(t, mcl.DefaultGroup)
	s1, err := mcl.Subscribe(c, func(*mcl.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := mcl.SubscribeSync(c)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *mcl.Message) // never read: the sender goroutine must still stop
	s3, err := mcl.SubscribeChan(c, ch)
	if err != nil {
		t.Fatal(err)
	}
	p, err := mcl.NewPublisher(c)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		p.Publish("t", 1)
	}
	eventually(t, "delivery to the channel subscriber", func() bool { return s3.Stats().Datagrams == 10 })
	for _, closer := range []io.Closer{s1, s2, s3, p} {
		if err := closer.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := closer.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
	if err := p.Publish("t", 1); !errors.Is(err, mcl.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := p.PublishRaw("t", []byte{0xc0}); !errors.Is(err, mcl.ErrClosed) {
		t.Errorf("PublishRaw after Close: %v, want ErrClosed", err)
	}
	if _, err := s2.Next(context.Background()); !errors.Is(err, mcl.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
}

func TestCloseFromCallback(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := conn(t, mcl.DefaultGroup)
	closed := make(chan error, 1)
	var s *mcl.Subscriber
	ready := make(chan struct{})
	s, err := mcl.Subscribe(c, func(*mcl.Message) {
		<-ready
		closed <- s.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	publisher(t, c).Publish("t", 1)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from the callback did not return")
	}
}

func TestCallbackPanic(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	got := make(chan int, 10)
	s, err := mcl.Subscribe(c, func(m *mcl.Message) {
		var v int
		m.Decode(&v)
		if v == 0 {
			panic("boom")
		}
		got <- v
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pub := publisher(t, c)
	for i := range 3 {
		pub.Publish("t", i)
	}
	for want := 1; want <= 2; want++ {
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("got %d, want %d", v, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the subscriber stopped after a callback panic")
		}
	}
	if st := s.Stats(); st.Panics != 1 || st.Delivered != 3 {
		t.Errorf("stats %+v: want 1 panic, 3 delivered", st)
	}
}

func TestSlowConsumer(t *testing.T) {
	for _, tc := range []struct {
		policy mcl.Overflow
		want   []int
	}{
		{mcl.DropNewest, []int{0, 1, 2, 3}},
		{mcl.DropOldest, []int{6, 7, 8, 9}},
	} {
		t.Run(fmt.Sprint(tc.policy), func(t *testing.T) {
			c := conn(t, mcl.DefaultGroup)
			s := syncSubscriber(t, c, mcl.QueueLimits(4, 1<<20), mcl.OnOverflow(tc.policy))
			pub := publisher(t, c)
			for i := range 10 {
				pub.Publish("t", i)
			}
			eventually(t, "all datagrams read", func() bool { return s.Stats().Datagrams == 10 })
			if st := s.Stats(); st.Dropped != 6 {
				t.Errorf("Dropped = %d, want 6", st.Dropped)
			}
			nextInts(t, s, tc.want...)
		})
	}
}

func TestMessagesIterator(t *testing.T) {
	c := conn(t, group4)
	s, err := mcl.SubscribeSync(c, mcl.Topics("it"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pub := publisher(t, c)
	for i := range 5 {
		pub.Publish("it", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := 0
	for m := range s.Messages(ctx) {
		var v int
		if err := m.Decode(&v); err != nil || v != want {
			t.Fatalf("got %d (%v), want %d", v, err, want)
		}
		if want++; want == 5 {
			break
		}
	}
	if want != 5 {
		t.Fatalf("iterator ended after %d messages", want)
	}
}

func TestPublishErrors(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	pub := publisher(t, c)
	if err := pub.Publish(strings.Repeat("x", wire.MaxTopic+1), 1); !errors.Is(err, mcl.ErrTopicTooLong) {
		t.Errorf("long topic: %v, want ErrTopicTooLong", err)
	}
	for _, raw := range [][]byte{nil, {0x92, 0x01}, {0x01, 0x02}, {0xc1}} {
		if err := pub.PublishRaw("t", raw); !errors.Is(err, mcl.ErrBadPayload) {
			t.Errorf("PublishRaw(% x): %v, want ErrBadPayload", raw, err)
		}
	}
	if err := pub.Publish("t", make(chan int)); err == nil {
		t.Error("Publish(chan) succeeded")
	}
	if st := pub.Stats(); st.Messages != 0 || st.Errors != 6 {
		t.Errorf("stats %+v: want 0 messages, 6 errors", st)
	}
}

// fragment encodes [topic, n, N, piece] with any n and N, which
// wire.AppendFragment refuses to do.
func fragment(n, count int64) []byte {
	b := msgp.AppendArrayHeader(nil, 4)
	b = msgp.AppendString(b, "t")
	b = msgp.AppendInt64(b, n)
	b = msgp.AppendInt64(b, count)
	return msgp.AppendString(b, "x")
}

// TestHostileDatagrams sends malformed frames and impossible fragments to a
// subscriber: each is counted and dropped, and the subscriber keeps working.
func TestHostileDatagrams(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	sub, ch := chanSubscriber(t, c)
	u, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(c.Group()))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	malformed := [][]byte{
		{},
		{0xc1},
		{0x92},
		{0x93, 0xa1, 't', 0x01, 0x02},
		{0xdd, 0xff, 0xff, 0xff, 0xff, 0xa1, 't'}, // array32 claiming 4 billion elements
		{0x92, 0x01, 0x02},                        // topic of the wrong type
		{0x92, 0xa1, 't', 0xc1},                   // payload is not msgpack
		{0x92, 0xa1, 't', 0x01, 0x00},             // trailing byte
		{0x94, 0xa1, 't', 0xa1, 'x', 0x01, 0xa0},  // n of the wrong type
	}
	rejected := [][]byte{
		fragment(1, 0),     // N = 0
		fragment(0, 3),     // n = 0
		fragment(4, 3),     // n > N
		fragment(-1, 3),    // n < 0
		fragment(1, 1<<31), // absurd N
		fragment(1, 1<<40), // absurder N
	}
	for _, d := range append(malformed, rejected...) {
		if _, err := u.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	publisher(t, c).Publish("ok", 1)
	if m := receive(t, ch, 1)[0]; m.Topic != "ok" {
		t.Fatalf("delivered topic %q", m.Topic)
	}
	st := sub.Stats()
	if st.Malformed+st.Rejected != uint64(len(malformed)+len(rejected)) || st.Delivered != 1 {
		t.Errorf("stats %+v: want %d malformed or rejected", st, len(malformed)+len(rejected))
	}
	if st.Malformed < uint64(len(malformed)) {
		t.Errorf("Malformed = %d, want at least %d", st.Malformed, len(malformed))
	}
}

// TestIdleExpiry checks that an incomplete message is dropped after the
// reassembly gap or timeout even when nothing else arrives.
func TestIdleExpiry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limits  wire.Limits
		counter func(mcl.SubscriberStats) uint64
	}{
		{"gap", wire.Limits{Gap: 50 * time.Millisecond}, func(s mcl.SubscriberStats) uint64 { return s.Stalled }},
		{"timeout", wire.Limits{Timeout: 50 * time.Millisecond, Gap: time.Minute}, func(s mcl.SubscriberStats) uint64 { return s.Expired }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := conn(t, mcl.DefaultGroup)
			sub, err := mcl.SubscribeSync(c, mcl.ReassemblyLimits(tc.limits))
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			u, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(c.Group()))
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if _, err := u.Write(wire.AppendFragment(nil, "t", 1, 3, []byte("piece"))); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the lone fragment to expire", func() bool { return tc.counter(sub.Stats()) == 1 })
			if st := sub.Stats(); st.Fragments != 1 || st.Delivered != 0 || st.Stalled+st.Expired != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestReadBufferWarning asks for more receive buffer than the kernel allows
// (net.core.rmem_max caps SO_RCVBUF, even for root) and expects one warning
// that names the sysctl to raise.
func TestReadBufferWarning(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	// A size no other test (nor another run of this one) asks for: the
	// warning is once per process and size.
	huge := 1<<30 + int(nextPort.Add(1))
	c := conn(t, mcl.DefaultGroup, mcl.ReadBuffer(huge), mcl.Logger(logger))
	for range 2 {
		s, err := mcl.SubscribeSync(c)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if n := strings.Count(logs.String(), "net.core.rmem_max="+strconv.Itoa(huge)); n != 1 {
		t.Errorf("got %d warnings naming net.core.rmem_max, want 1:\n%s", n, logs.String())
	}
}

// TestPace checks that a paced Publisher refuses rates too slow for
// reassembly, delivers a large message whole at its rate, and that Close
// ends a publish waiting for its turn.
func TestPace(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	if _, err := mcl.NewPublisher(c, mcl.Pace(mcl.MinPace-1)); !errors.Is(err, mcl.ErrBadOption) {
		t.Fatalf("Pace under MinPace: %v, want ErrBadOption", err)
	}
	sub, ch := chanSubscriber(t, c)
	defer sub.Close()
	pub, err := mcl.NewPublisher(c, mcl.Pace(mcl.MinPace))
	if err != nil {
		t.Fatal(err)
	}
	payload := wire.AppendStr(nil, bytes.Repeat([]byte{7}, 5*wire.MTU)) // 6 fragments
	if err := pub.PublishRaw("paced", payload); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ch, 1)[0]; !bytes.Equal(m.Payload, payload) {
		t.Fatalf("paced message arrived as %d bytes", len(m.Payload))
	}
	// A message of 667 fragments takes 20 s at this pace; once its first
	// fragments are out, Close cuts it short.
	big := wire.AppendStr(nil, make([]byte, 40_000_000))
	errc := make(chan error, 1)
	go func() { errc <- pub.PublishRaw("paced", big) }()
	eventually(t, "the big message's first fragments", func() bool { return sub.Stats().Fragments > 6+2 })
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, mcl.ErrClosed) {
			t.Errorf("publish cut short by Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a paced publish")
	}
}
