package mcl_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/netfault"
	"github.com/mcl-go/mcl/internal/relay"
	"github.com/mcl-go/mcl/sandbox"
	"github.com/mcl-go/mcl/wire/mcl2"
)

func publisher2(t *testing.T, c *mcl.Connection, opts ...mcl.PublishOption) *mcl.Publisher {
	t.Helper()
	p, err := mcl.NewPublisher(c, append([]mcl.PublishOption{mcl.WithFraming(mcl.FramingMCL2)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// binOf returns a msgpack bin value of n bytes (at least 4), which start
// with i and then tell i and their position apart.
func binOf(i, n int) []byte {
	b := []byte{0xc6, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
	for k := 4; k < n; k++ {
		b = append(b, byte(i*31+k*7))
	}
	return b
}

// TestMCL2 publishes in mcl/2, batched and express, whole and in
// fragments, from goroutines at once: every message arrives once, exact,
// in each publisher's order, and nothing is counted lost.
func TestMCL2(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group string
		opts  []mcl.PublishOption
	}{
		{"batched/ipv6", "ff15::7701", nil},
		{"batched/ipv4", group4, nil},
		{"express", "ff15::7702", []mcl.PublishOption{mcl.Express()}},
		{"batched/1500", "ff15::7703", []mcl.PublishOption{mcl.DatagramSize(1452)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := conn(t, tc.group)
			s := syncSubscriber(t, c, mcl.QueueLimits(100000, 1<<30))
			const pubs, each = 3, 400
			sizes := []int{10, 100, 3000, 70000}
			// Credits keep what is in flight within the socket's buffer:
			// a flood would be lost in the kernel, and counted so.
			credits := make(chan struct{}, 16)
			for range cap(credits) {
				credits <- struct{}{}
			}
			var wg sync.WaitGroup
			for g := range pubs {
				p := publisher2(t, c, tc.opts...)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						<-credits
						if err := p.PublishRaw(fmt.Sprint("p", g), binOf(g*each+i, sizes[i%len(sizes)])); err != nil {
							t.Error(err)
							return
						}
					}
					if err := p.Flush(); err != nil {
						t.Error(err)
					}
				}()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			next := make([]int, pubs)
			for range pubs * each {
				m, err := s.Next(ctx)
				if err != nil {
					t.Fatalf("after %v: %v; stats %+v", next, err, s.Stats())
				}
				var g int
				fmt.Sscanf(m.Topic, "p%d", &g)
				i := next[g]
				if want := binOf(g*each+i, sizes[i%len(sizes)]); !bytes.Equal(m.Payload, want) {
					t.Fatalf("publisher %d message %d: %d bytes, not the %d sent; stats %+v", g, i, len(m.Payload), len(want), s.Stats())
				}
				next[g]++
				credits <- struct{}{}
			}
			wg.Wait()
			st := s.Stats()
			if st.Lost != 0 || st.Repeated != 0 || st.Senders != pubs || st.Malformed != 0 || st.Unsupported != 0 {
				t.Fatalf("stats %+v", st)
			}
			if len(s.Senders()) != pubs {
				t.Fatalf("senders %+v", s.Senders())
			}
		})
	}
}

// TestMCL2Close: what a batching Publisher accepted goes out before
// Close returns, and later calls say it is closed.
func TestMCL2Close(t *testing.T) {
	c := conn(t, "ff15::7704")
	s := syncSubscriber(t, c, mcl.QueueLimits(100000, 1<<30))
	p, err := mcl.NewPublisher(c, mcl.WithFraming(mcl.FramingMCL2))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if err := p.Publish("n", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	nextInts(t, s, seq(1000)...)
	if err := p.Publish("n", 1); !errors.Is(err, mcl.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if err := p.Flush(); !errors.Is(err, mcl.ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if st := p.Stats(); st.Messages != 1000 || st.Datagrams >= 1000 {
		t.Fatalf("publisher stats %+v: 1000 messages in fewer datagrams expected", st)
	}
	// A Publisher opened again, as a restarted process would, is a new
	// sender: its numbers start over without a jump or a loss.
	p = publisher2(t, c)
	for i := range 10 {
		if err := p.Publish("n", i); err != nil {
			t.Fatal(err)
		}
	}
	nextInts(t, s, seq(10)...)
	if st, ss := s.Stats(), s.Senders(); st.Senders != 2 || len(ss) != 2 || st.Jumps != 0 || st.Lost != 0 || ss[0].ID == ss[1].ID {
		t.Fatalf("after a second Publisher: stats %+v, senders %+v", st, ss)
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// TestMCL2Options checks the options' refusals.
func TestMCL2Options(t *testing.T) {
	c := conn(t, "ff15::7705")
	for _, opts := range [][]mcl.PublishOption{
		{mcl.WithFraming(7)},
		{mcl.WithFraming(mcl.FramingMCL2), mcl.DatagramSize(100)},
		{mcl.WithFraming(mcl.FramingMCL2), mcl.DatagramSize(70000)},
	} {
		if _, err := mcl.NewPublisher(c, opts...); !errors.Is(err, mcl.ErrBadOption) {
			t.Errorf("NewPublisher: %v, want ErrBadOption", err)
		}
	}
}

// TestMCL2BesidePython shares a group between a Python seed listener,
// mcl/2 publishers (batched, express, fragmented) and a seed publisher:
// the Python node drops what it cannot read and keeps receiving the seed
// messages, in order, exact.
func TestMCL2BesidePython(t *testing.T) {
	requirePython(t)
	c := conn(t, mcl.DefaultGroup)
	seedPub := publisher(t, c)
	batched := publisher2(t, c)
	express := publisher2(t, c, mcl.Express())
	peer := startPeerSub(t, c, "--topic", "t")
	const n, window = 300, 20
	got := 0
	check := func() {
		l := peer.next(t)
		if want := hex.EncodeToString(seedPayload(7, got, 0)); l.PayloadHex != want {
			t.Fatalf("python got %+v as seed message %d, want payload %s", l, got, want)
		}
		got++
	}
	for i := range n {
		if err := batched.PublishRaw("t", binOf(i, 50)); err != nil {
			t.Fatal(err)
		}
		if err := express.PublishRaw("t", binOf(i, 50)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			if err := batched.PublishRaw("t", binOf(i, 150_000)); err != nil {
				t.Fatal(err)
			}
		}
		if err := seedPub.PublishRaw("t", seedPayload(7, i, 0)); err != nil {
			t.Fatal(err)
		}
		if i-got >= window { // so that the listener's buffer never overflows
			check()
		}
	}
	for got < n {
		check()
	}
}

// TestMCL2Loss drops 5 % of the group's datagrams on the way with
// nftables: the subscriber's Lost equals what the rule dropped plus what
// its kernel dropped, exactly, and every message delivered is exact, in
// order, once. Fragmented messages missing a piece are dropped whole.
func TestMCL2Loss(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []mcl.PublishOption
	}{
		{"batched", []mcl.PublishOption{mcl.DatagramSize(1452)}}, // about 12 messages a datagram
		{"express", []mcl.PublishOption{mcl.Express()}},
		{"fragments", []mcl.PublishOption{mcl.DatagramSize(1452)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := sandbox.Require(t)
			c := conn(t, "ff15::7706", mcl.ReadBuffer(16<<20))
			rule := netfault.DropRandom(t, n.Iface, c.Group().Port(), 5)
			s := syncSubscriber(t, c, mcl.QueueLimits(1<<20, 1<<30))
			p := publisher2(t, c, tc.opts...)
			const count = 3000
			// Each packet the rule sees is one datagram, but for the
			// fragments: 4 of them, sent together with UDP GSO, which
			// the veth carries as one packet, and the rule drops whole.
			size, perPacket := 100, uint64(1)
			if tc.name == "fragments" {
				size, perPacket = 5000, 4
			}
			marker := binOf(-1, size)
			// Losses show only between datagrams that arrived: the
			// subscriber cannot know of those before the first it hears.
			// Send a marker, a datagram each, until one arrives.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			before := 0
			for arrived := false; !arrived; before++ {
				if err := p.PublishRaw("start", marker); err != nil {
					t.Fatal(err)
				}
				if err := p.Flush(); err != nil {
					t.Fatal(err)
				}
				wait, stop := context.WithTimeout(ctx, 200*time.Millisecond)
				_, err := s.Next(wait)
				stop()
				arrived = err == nil
				if ctx.Err() != nil {
					t.Fatal("no start marker arrived")
				}
			}
			for i := range count {
				if err := p.PublishRaw("t", binOf(i, size)); err != nil {
					t.Fatal(err)
				}
			}
			// The last datagram must arrive for the losses before it to
			// show: send markers until one does.
			next, ended := 0, false
			for !ended {
				if err := p.PublishRaw("end", marker); err != nil {
					t.Fatal(err)
				}
				if err := p.Flush(); err != nil {
					t.Fatal(err)
				}
				wait, stop := context.WithTimeout(ctx, 200*time.Millisecond)
				for {
					m, err := s.Next(wait)
					if err != nil {
						if ctx.Err() != nil {
							t.Fatalf("no marker arrived: %v", err)
						}
						break // this marker was dropped: send another
					}
					if m.Topic == "end" {
						ended = true
						break
					}
					var i int
					for i = next; i < count && !bytes.Equal(m.Payload, binOf(i, size)); i++ {
					}
					if i == count {
						t.Fatalf("a message that is none of those sent after #%d: %d bytes", next, len(m.Payload))
					}
					next = i + 1
				}
				stop()
			}
			dropped, err := rule.Dropped()
			if err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			t.Logf("sent %d datagrams; rule dropped %d, kernel %d; lost %d; delivered %d of %d messages; stalled %d", p.Stats().Datagrams, dropped, st.KernelDrops, st.Lost, st.Delivered, count, st.Stalled)
			dropped -= uint64(before - 1) // the start markers that did not arrive
			// The kernel's drops count packets too, which GRO coalesced.
			if dropped == 0 || st.Lost != perPacket*(dropped+st.KernelDrops) || st.Repeated != 0 || st.Jumps != 0 || st.Late != 0 {
				t.Fatalf("rule dropped %d after the first datagram to arrive, kernel %d; stats %+v", dropped, st.KernelDrops, st)
			}
		})
	}
}

// TestMCL2FaultyPath sends express messages, a datagram each, through a
// relay that loses, duplicates and delays datagrams: the subscriber's
// counters equal what the relay's log says it did, and every message
// delivered is one sent, exact, once.
func TestMCL2FaultyPath(t *testing.T) {
	for _, sc := range faultScenarios {
		t.Run(sc.name, func(t *testing.T) {
			in, out := conn(t, mcl.DefaultGroup), conn(t, mcl.DefaultGroup, mcl.ReadBuffer(16<<20))
			rl := startRelay(t, in.Group(), out.Group(), sc.faults)
			s := syncSubscriber(t, out, mcl.QueueLimits(1<<20, 1<<30))
			p := publisher2(t, in, mcl.Express())
			const n = 2000
			for i := range n {
				if err := p.PublishRaw("t", binOf(i, 20)); err != nil {
					t.Fatal(err)
				}
			}
			var log relay.Log
			eventually(t, "the relay to send on every datagram", func() bool {
				log = rl.Log()
				return len(log.Fates) == n && len(log.Sent) >= n-countFates(log, relay.Lost)+countFates(log, relay.Duplicated)
			})
			if err := rl.Err(); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the subscriber to read every datagram sent on", func() bool { return s.Stats().Datagrams == uint64(len(log.Sent)) })

			// What the subscriber must count, by docs/mcl2.md's rules
			// applied to what the relay sent, in order: datagram k is the
			// publisher's sequence number k. A datagram held so long that
			// 1024 later ones overtook it is late, and dropped.
			// Numbers before the first to arrive were never counted lost.
			var lost, reordered, repeated, late uint64
			highest, seen := -1, map[int]bool{}
			first := log.Sent[0]
			for _, k := range log.Sent {
				switch {
				case highest < 0:
					highest = k
				case k > highest:
					lost += uint64(k - highest - 1)
					highest = k
				case highest-k >= 1024:
					late++
					continue
				case seen[k]:
					repeated++
				default:
					reordered++
					if k > first {
						lost--
					}
				}
				seen[k] = true
			}
			delivered := map[int]bool{}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for range len(seen) {
				m, err := s.Next(ctx)
				if err != nil {
					t.Fatalf("after %d messages: %v; stats %+v", len(delivered), err, s.Stats())
				}
				i := int(binary.BigEndian.Uint32(m.Payload[5:]))
				if !bytes.Equal(m.Payload, binOf(i, 20)) || delivered[i] || !seen[i] {
					t.Fatalf("delivered message %d (sent on: %v, delivered before: %v)", i, i >= 0 && seen[i], delivered[i])
				}
				delivered[i] = true
			}
			st := s.Stats()
			t.Logf("relay: %d lost, %d duplicated, %d delayed; subscriber: lost %d, reordered %d, repeated %d, late %d", countFates(log, relay.Lost), countFates(log, relay.Duplicated), countFates(log, relay.Delayed), st.Lost, st.Reordered, st.Repeated, st.Late)
			if st.Lost != lost || st.Reordered != reordered || st.Repeated != repeated || st.Late != late || st.Jumps != 0 {
				t.Fatalf("want lost %d, reordered %d, repeated %d, late %d; stats %+v", lost, reordered, repeated, late, st)
			}
		})
	}
}

func countFates(l relay.Log, f relay.Fate) int {
	n := 0
	for _, x := range l.Fates {
		if x == f {
			n++
		}
	}
	return n
}

// TestMCL2Hostile sends a subscriber crafted mcl/2 datagrams: truncated,
// lying about lengths, of unknown versions, flags and record types,
// claiming huge messages, from thousands of sender ids, with sequence
// numbers that jump. Each is counted and dropped, memory stays within
// the bounds, and a genuine publisher's messages still arrive.
func TestMCL2Hostile(t *testing.T) {
	c := conn(t, "ff15::7707", mcl.ReadBuffer(16<<20))
	s := syncSubscriber(t, c, mcl.QueueLimits(1<<20, 1<<30))
	raw, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(c.Group()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	send := func(d []byte) {
		if _, err := raw.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	msg := mcl2.AppendMessage(nil, "t", []byte{0x01})
	sent := 0
	// Malformed and unsupported.
	bad := [][]byte{
		{mcl2.Magic},
		mcl2.AppendHeader(nil, 9, 0),
		append(mcl2.AppendHeader(nil, 9, 1), 0x01, 0xff, 0xff, 0xff, 0xff, 0x00),
		append(mcl2.AppendHeader(nil, 9, 2), mcl2.AppendMessage(nil, "t", nil)...),
		append(mcl2.AppendHeader(nil, 9, 3), mcl2.AppendMessage(nil, "t", []byte{0xc4, 0x09})...), // not one value
	}
	unsupported := [][]byte{
		append([]byte{mcl2.Magic, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 4}, msg...),
		append([]byte{mcl2.Magic, 2, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 5}, msg...),
		append(mcl2.AppendHeader(nil, 9, 6), 0x7f, 0, 0, 0, 0),
	}
	for _, d := range append(bad, unsupported...) {
		send(d)
		sent++
	}
	// Thousands of senders, each claiming a 60 MiB message.
	for id := uint64(100); id < 3100; id++ {
		d := mcl2.AppendHeader(nil, id, 0)
		d = append(mcl2.AppendFragmentHeader(d, "t", id, 0, 44939, 60<<20, 1400), make([]byte, 1400)...)
		send(d)
		sent++
		if id%500 == 0 { // let the subscriber keep up, so the kernel drops nothing
			eventually(t, "the subscriber to read what was sent", func() bool { return s.Stats().Datagrams == uint64(sent) })
		}
	}
	// A sender whose numbers jump by 2^40 and back.
	for _, seq := range []uint64{0, 1, 1 << 40, 2, 3} {
		send(append(mcl2.AppendHeader(nil, 7, seq), msg...))
		sent++
	}
	eventually(t, "the subscriber to read what was sent", func() bool { return s.Stats().Datagrams == uint64(sent) })
	st := s.Stats()
	if st.Malformed != uint64(len(bad)) || st.Unsupported != uint64(len(unsupported)) {
		t.Errorf("malformed %d, unsupported %d; want %d and %d", st.Malformed, st.Unsupported, len(bad), len(unsupported))
	}
	if st.Senders > 1024 || len(s.Senders()) > 1024 {
		t.Errorf("%d senders tracked, %d listed: over the bound of 1024", st.Senders, len(s.Senders()))
	}
	if m, b := mcl.JoinerPending(s); m > 64 || b > 64<<20 {
		t.Errorf("joining %d messages in %d bytes: over the bounds", m, b)
	}
	// Sender 9's numbers 4 and 5 were of another version and flags,
	// dropped before their numbers were read: lost, as far as tracking
	// can tell. Sender 7's jumps cost no losses.
	if st.Jumps != 2 || st.Lost != 2 {
		t.Errorf("jumps %d, lost %d; want 2 and 2", st.Jumps, st.Lost)
	}
	if st.Evicted == 0 {
		t.Errorf("3000 messages of 60 MiB began, none evicted: %+v", st)
	}
	// Five messages on topic "t" from sender 7 were delivered; a genuine
	// publisher still gets through.
	nextPayloads := func(n int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for range n {
			if _, err := s.Next(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	nextPayloads(5)
	p := publisher2(t, c)
	if err := p.Publish("t", 42); err != nil {
		t.Fatal(err)
	}
	nextInts(t, s, 42)
}

// TestMCL2Pace: a paced mcl/2 Publisher delivers batched and fragmented
// messages exact, and Close cuts a long paced message short.
func TestMCL2Pace(t *testing.T) {
	c := conn(t, "ff15::7708")
	s := syncSubscriber(t, c, mcl.QueueLimits(10000, 1<<30))
	p, err := mcl.NewPublisher(c, mcl.WithFraming(mcl.FramingMCL2), mcl.DatagramSize(1452), mcl.Pace(mcl.MinPace))
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		size := 100
		if i%10 == 9 {
			size = 20_000 // 15 datagrams
		}
		if err := p.PublishRaw("paced", binOf(i, size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range n {
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		size := 100
		if i%10 == 9 {
			size = 20_000
		}
		if !bytes.Equal(m.Payload, binOf(i, size)) {
			t.Fatalf("message %d: %d bytes, not those sent", i, len(m.Payload))
		}
	}
	// 40 MB takes 40 s at this pace; once its first datagrams are out,
	// Close cuts it short.
	errc := make(chan error, 1)
	go func() { errc <- p.PublishRaw("paced", binOf(0, 40_000_000)) }()
	before := s.Stats().Fragments
	eventually(t, "the big message's first fragments", func() bool { return s.Stats().Fragments > before+2 })
	if err := p.Close(); err != nil && !errors.Is(err, mcl.ErrClosed) {
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
