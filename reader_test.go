package mcl_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/wire"
)

// intSubscriber subscribes with a callback that decodes each payload as an
// int, calls work with it (which may be slow), and sends it on the
// returned channel, which holds n.
func intSubscriber(t *testing.T, c *mcl.Connection, n int, work func(v int)) (*mcl.Subscriber, <-chan int) {
	t.Helper()
	got := make(chan int, n)
	s, err := mcl.Subscribe(c, func(m *mcl.Message) {
		var v int
		m.Decode(&v)
		work(v)
		got <- v
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, got
}

// inOrder expects 0..n-1 on got, in order, each within a deadline.
func inOrder(t *testing.T, s *mcl.Subscriber, got <-chan int, n int) {
	t.Helper()
	for want := range n {
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("got %d, want %d", v, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d messages; stats %+v", want, n, s.Stats())
		}
	}
}

// TestSlowCallbackKeepsReading blocks a callback and expects the socket to
// be read meanwhile: the backup reader queues what arrives, and the
// callback sees every message, in order, once released.
func TestSlowCallbackKeepsReading(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	release := make(chan struct{})
	s, got := intSubscriber(t, c, 50, func(int) { <-release })
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before Close, which waits for the callback
	pub := publisher(t, c)
	for i := range 50 {
		pub.Publish("t", i)
	}
	eventually(t, "the backup to read while the callback is blocked", func() bool { return s.Stats().Datagrams == 50 })
	unblock()
	inOrder(t, s, got, 50)
}

// TestBackupWakesAfterIdle lets the backup reader park (the consumer waits
// long on an idle socket), then stops consuming and publishes: the backup
// must wake and read without the consumer.
func TestBackupWakesAfterIdle(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	s := syncSubscriber(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waited := make(chan error, 1)
	go func() {
		_, err := s.Next(ctx)
		waited <- err
	}()
	eventually(t, "the backup to park while the consumer waits on an idle socket", func() bool { return mcl.Parked(s) })
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next on an idle socket: %v, want context.Canceled", err)
	}
	pub := publisher(t, c)
	for i := range 10 {
		pub.Publish("t", i)
	}
	eventually(t, "the backup to read with no consumer", func() bool { return s.Stats().Datagrams == 10 })
	if mcl.BackupReads(s) == 0 {
		t.Error("the datagrams were read, but not by the backup")
	}
	nextInts(t, s, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
}

// TestNextInterrupted checks that a Next blocked on the socket returns on
// its context's cancellation and deadline, and on Close, and that a later
// Next with a fresh context still receives; with Spin too, where the
// last two come right after a message, while the read spins.
func TestNextInterrupted(t *testing.T) {
	t.Run("sleeps", func(t *testing.T) { nextInterrupted(t, conn(t, mcl.DefaultGroup)) })
	t.Run("spins", func(t *testing.T) { nextInterrupted(t, conn(t, mcl.DefaultGroup, mcl.Spin(time.Millisecond))) })
}

func nextInterrupted(t *testing.T, c *mcl.Connection) {
	s := syncSubscriber(t, c)
	next := func(ctx context.Context) <-chan error {
		errc := make(chan error, 1)
		go func() {
			_, err := s.Next(ctx)
			errc <- err
		}()
		return errc
	}
	wait := func(what string, errc <-chan error, want error) {
		t.Helper()
		select {
		case err := <-errc:
			if !errors.Is(err, want) {
				t.Fatalf("%s: Next returned %v, want %v", what, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Next did not return", what)
		}
	}

	// Cancelled most likely while Next waits in the socket; before that
	// it must return all the same.
	ctx, cancel := context.WithCancel(context.Background())
	errc := next(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	wait("cancel", errc, context.Canceled)

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	wait("deadline", next(ctx), context.DeadlineExceeded)

	errc = next(context.Background())
	publisher(t, c).Publish("t", 7)
	wait("publish", errc, nil)

	errc = next(context.Background())
	s.Close()
	wait("Close", errc, mcl.ErrClosed)
}

// TestHandOver has a callback that is slow now and then, so the socket
// passes between the consumer and the backup reader many times while
// messages arrive: every message must be delivered, once, in order.
func TestHandOver(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	const n = 3000
	s, got := intSubscriber(t, c, n, func(v int) {
		if v%500 == 250 {
			time.Sleep(40 * time.Millisecond) // slow work: the backup takes the socket
		}
	})
	pub := publisher(t, c)
	for i := range n {
		pub.Publish("t", i)
		if i%500 == 0 {
			time.Sleep(5 * time.Millisecond) // and idle spells: the consumer takes it back
		}
	}
	inOrder(t, s, got, n)
	if st := s.Stats(); st.Delivered != n || st.Dropped != 0 || st.KernelDrops != 0 {
		t.Errorf("stats %+v", st)
	}
	if mcl.BackupReads(s) == 0 {
		t.Error("no hand-over: the backup never read")
	}
}

// pattern is a payload of n bytes (a msgpack bin) whose content depends on
// seed, so a buffer reused too early shows.
func pattern(seed, n int) []byte {
	p := bin(n)
	for i := 5; i < len(p); i++ {
		p[i] = byte(seed*7 + i)
	}
	return p
}

// TestSharedSocket has Subscribers of one group share a socket as they come
// and go: each gets the topics it asked for, large payloads shared by
// several queues stay intact while one of them drops, and the socket's
// datagrams are counted once.
func TestSharedSocket(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	pub := publisher(t, c)
	all, allCh := chanSubscriber(t, c)
	onlyB, bCh := chanSubscriber(t, c, mcl.Topics("b"))
	// A Subscriber that never reads, with room for two messages: it drops
	// the oldest of the payloads the others hold too.
	stuck, err := mcl.SubscribeSync(c, mcl.QueueLimits(2, 1<<30), mcl.OnOverflow(mcl.DropOldest))
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{100, 20_000, 200_000} // copied, lent in its datagram, reassembled
	for i := range 30 {
		topic := "a"
		if i%2 == 1 {
			topic = "b"
		}
		if err := pub.PublishRaw(topic, pattern(i, sizes[i%3])); err != nil {
			t.Fatal(err)
		}
	}
	check := func(who string, got []*mcl.Message, want []int) {
		t.Helper()
		for k, m := range got {
			i := want[k]
			if !bytes.Equal(m.Payload, pattern(i, sizes[i%3])) {
				t.Fatalf("%s: message %d (%d bytes) is not what was sent", who, i, len(m.Payload))
			}
		}
	}
	var every, odd []int
	for i := range 30 {
		every = append(every, i)
		if i%2 == 1 {
			odd = append(odd, i)
		}
	}
	check("all", receive(t, allCh, 30), every)
	check("only b", receive(t, bCh, 15), odd)
	if st := stuck.Stats(); st.Dropped != 28 || st.Datagrams != all.Stats().Datagrams {
		t.Errorf("stuck subscriber %+v: want 28 dropped, and the datagrams the others count", st)
	}
	// Topic a went out as datagrams of 100 and 20000 bytes, and as
	// 200000-byte messages in len/MTU+1 fragments.
	filtered := uint64(0)
	for i := 0; i < 30; i += 2 {
		if n := len(pattern(i, sizes[i%3])); n > wire.MTU {
			filtered += uint64(n/wire.MTU + 1)
		} else {
			filtered++
		}
	}
	if st := onlyB.Stats(); st.Filtered != filtered || st.Delivered != 15 {
		t.Errorf("only-b subscriber %+v: want %d filtered, 15 delivered", st, filtered)
	}
	if st := all.Stats(); st.Filtered != 0 || st.Delivered != 30 {
		t.Errorf("all-topics subscriber %+v: want 0 filtered, 30 delivered", st)
	}

	// Down to one Subscriber, which reads the socket itself, then up to
	// two again.
	stuck.Close()
	onlyB.Close()
	pub.PublishRaw("a", pattern(32, sizes[32%3]))
	check("all, alone", receive(t, allCh, 1), []int{32})
	_, b2Ch := chanSubscriber(t, c, mcl.Topics("b"))
	pub.PublishRaw("b", pattern(31, sizes[31%3]))
	check("all, shared again", receive(t, allCh, 1), []int{31})
	check("new b", receive(t, b2Ch, 1), []int{31})
}

// TestPiecesInPlace sends large messages whose pieces the subscriber reads
// straight into place, with the cases where a datagram is not the piece
// expected: a short last piece (its header is shorter), an empty one (a
// payload that is an exact multiple of the MTU), small messages between,
// and then two publishers whose fragments interleave. Every message must
// arrive whole, and pieces must have been read into place.
func TestPiecesInPlace(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	s, ch := chanSubscriber(t, c)
	expect := func(seed, size int) {
		t.Helper()
		m := receive(t, ch, 1)[0]
		if !bytes.Equal(m.Payload, pattern(seed, size)) {
			t.Fatalf("message %d (%d bytes) arrived as %d different bytes", seed, size, len(m.Payload))
		}
	}
	pub := publisher(t, c)
	// pattern adds a 5-byte header: 3*MTU-5 ends in an empty piece.
	sizes := []int{1 << 20, 3*wire.MTU - 5, 3*wire.MTU + 10, 1 << 20, 200, 1 << 20}
	for round := range 4 {
		for i, size := range sizes {
			seed := round*len(sizes) + i
			if err := pub.PublishRaw("big", pattern(seed, size)); err != nil {
				t.Fatal(err)
			}
			expect(seed, size)
		}
	}
	if mcl.PlacedPieces(s) == 0 {
		t.Fatal("no piece was read into place")
	}

	// Two publishers, one message each in flight at a time.
	const each = 10
	pubs := []*mcl.Publisher{pub, publisher(t, c)}
	turn := []chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	errs := make(chan error, 2)
	for p := range pubs {
		turn[p] <- struct{}{}
		go func() {
			for i := range each {
				<-turn[p]
				if err := pubs[p].PublishRaw("big", pattern(1000*(p+1)+i, 1<<20)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	next := []int{0, 0}
	for range 2 * each {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		m := receive(t, ch, 1)[0]
		matched := false
		for p := range pubs {
			if next[p] < each && bytes.Equal(m.Payload, pattern(1000*(p+1)+next[p], 1<<20)) {
				next[p]++
				turn[p] <- struct{}{}
				matched = true
				break
			}
		}
		if !matched {
			t.Fatalf("a message of %d bytes matches neither publisher's next (received %v)", len(m.Payload), next)
		}
	}
	if st := s.Stats(); st.Rejected != 0 || st.Evicted != 0 || st.Malformed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestChurn has Subscribers join and leave a group again and again while a
// long-lived one receives a steady stream: the socket passes between that
// one's consumer and the shared reader every time, and no message may be
// lost, duplicated or reordered, nor may anything hang.
func TestChurn(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	const n = 2000
	s, got := intSubscriber(t, c, n, func(int) {})
	pub := publisher(t, c)
	done := make(chan struct{})
	churned := make(chan error, 1)
	go func() {
		defer close(churned)
		for {
			select {
			case <-done:
				return
			default:
			}
			other, err := mcl.SubscribeSync(c)
			if err != nil {
				churned <- err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			other.Next(ctx) // take a message, or not
			cancel()
			other.Close()
		}
	}()
	for i := range n {
		if err := pub.Publish("t", i); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // a steady stream, not a flood
		}
	}
	inOrder(t, s, got, n)
	close(done)
	if err := <-churned; err != nil {
		t.Fatal(err)
	}
}

// TestFirstPieceInPlace sends a stream of messages of four pieces, one at
// a time, and checks that their first pieces were read into place too:
// into the buffer their message was going to take.
func TestFirstPieceInPlace(t *testing.T) {
	s, send := sendAndReceive(t, conn(t, mcl.DefaultGroup))
	const messages, size = 30, 3*wire.MTU + 100
	for i := range messages {
		if m := send(pattern(i, size)); !bytes.Equal(m.Payload, pattern(i, size)) {
			t.Fatalf("message %d arrived as %d different bytes", i, len(m.Payload))
		}
	}
	// Piece 1 of a message goes into place once the buffer of a message
	// two back is free for it: from the third message on, on a quiet
	// machine. How often under load is a benchmark's matter; here, that
	// it happens, and that the messages so read are whole.
	if mcl.FirstPiecesPlaced(s) == 0 {
		t.Errorf("no first piece of %d messages read into place", messages)
	}
}

// TestPayloadPlaces publishes single-datagram payloads from every kind of
// place in a page: where the kernel would copy them slowly, and so they
// are copied behind their header first, and where they go out as they lie.
// Each must arrive intact, and so must what is republished as received.
func TestPayloadPlaces(t *testing.T) {
	_, send := sendAndReceive(t, conn(t, mcl.DefaultGroup))
	const size = 16000                  // pattern adds 5 bytes
	page := make([]byte, 3*4096+size+5) // a large allocation starts a page
	for i, off := range []int{0, 9, 100, 600, 2048, 4000} {
		p := page[off : off+size+5]
		copy(p, pattern(i, size))
		m := send(p)
		if !bytes.Equal(m.Payload, pattern(i, size)) {
			t.Fatalf("payload at %d in its page arrived as %d different bytes", off, len(m.Payload))
		}
		if m := send(m.Payload); !bytes.Equal(m.Payload, pattern(i, size)) {
			t.Fatalf("payload at %d, republished, arrived as %d different bytes", off, len(m.Payload))
		}
	}
}

// sendAndReceive returns a SubscribeSync Subscriber on c and a function
// that publishes a payload on c and returns the next message, failing the
// test on any error.
func sendAndReceive(t *testing.T, c *mcl.Connection) (*mcl.Subscriber, func([]byte) *mcl.Message) {
	t.Helper()
	s := syncSubscriber(t, c)
	pub := publisher(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return s, func(p []byte) *mcl.Message {
		t.Helper()
		if err := pub.PublishRaw("t", p); err != nil {
			t.Fatal(err)
		}
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

// TestDirectPayloadKept takes a message that Next read itself (waiting on
// an empty queue), then stays away while the backup reader reads more into
// the feed's buffers: the message taken must stay intact until the next
// call to Next, and the later ones arrive intact too.
func TestDirectPayloadKept(t *testing.T) {
	for _, size := range []int{100, 16000} {
		c := conn(t, mcl.DefaultGroup)
		s, send := sendAndReceive(t, c)
		first := send(pattern(0, size))
		pub := publisher(t, c)
		const more = 40
		for i := 1; i <= more; i++ {
			if err := pub.PublishRaw("t", pattern(i, size)); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "the backup to read while the consumer is away", func() bool { return s.Stats().Datagrams == 1+more })
		if !bytes.Equal(first.Payload, pattern(0, size)) {
			t.Fatalf("%d B: the message taken changed while the backup read more", size)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := 1; i <= more; i++ {
			m, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Payload, pattern(i, size)) {
				t.Fatalf("%d B: message %d arrived changed", size, i)
			}
		}
	}
}

// TestSpinExact sends messages one at a time to a Subscriber that spins,
// small, lent in their datagram and reassembled, each read while the read
// before still spins: every one arrives exact, and Connections that spin
// differently do not share a socket.
func TestSpinExact(t *testing.T) {
	c := conn(t, mcl.DefaultGroup, mcl.Spin(time.Millisecond))
	if c.Spin() != time.Millisecond {
		t.Fatalf("Spin() = %v, want 1ms", c.Spin())
	}
	pub := publisher(t, c)
	s := syncSubscriber(t, c)
	sizes := []int{100, 20_000, 200_000}
	for i := range 60 {
		if err := pub.PublishRaw("t", pattern(i, sizes[i%3])); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := s.Next(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Payload, pattern(i, sizes[i%3])) {
			t.Fatalf("message %d (%d bytes) is not what was sent", i, sizes[i%3])
		}
	}
	other, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(int(c.Group().Port())))
	if err != nil {
		t.Fatal(err)
	}
	if s2 := syncSubscriber(t, other); mcl.SameFeed(s, s2) {
		t.Error("a Subscriber that does not spin shares a socket with one that does")
	}
}
