package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

// window is how many bytes of messages a throughput row lets be in flight
// (published, not yet received by every subscriber): half the receive
// buffer mcl requests, so a receiver that keeps up never overflows it. The
// rows measure the rate a receiver sustains without loss, not how fast a
// sender can overrun it.
const window = 2 << 20

// publishFor calls publish as fast as the window allows for d and returns
// how many times it did. received reports the fewest messages any
// subscriber has had; wait is called while the window is full.
func publishFor(d time.Duration, size int, received func() uint64, publish func() error, wait func()) (uint64, time.Time, error) {
	inFlight := int64(max(1, window/size))
	start := time.Now()
	end := start.Add(d)
	var sent uint64
	var lost int64
	for i := 0; ; i++ {
		if i%64 == 0 && !time.Now().Before(end) {
			return sent, start, nil
		}
		// A lost message never arrives: after a stall, count the oldest
		// in flight as lost and go on.
		var stalled time.Time
		// Signed: a message counted lost may still arrive.
		for int64(sent)-lost-int64(received()) >= inFlight {
			switch {
			case stalled.IsZero():
				stalled = time.Now()
			case time.Since(stalled) > 20*time.Millisecond:
				lost++
				stalled = time.Time{}
			}
			wait()
		}
		if err := publish(); err != nil {
			return sent, start, err
		}
		sent++
	}
}

// fewest returns the count of the subscriber that has received least.
func fewest(cs []*counter) func() uint64 {
	return func() uint64 {
		n := cs[0].msgs.Load()
		for _, c := range cs[1:] {
			n = min(n, c.msgs.Load())
		}
		return n
	}
}

// A side is one implementation of a throughput row, set up: publish sends
// one message, and the counters count what each subscriber received.
type side struct {
	publish func() error
	cs      []*counter
	close   func()
	tally   tally
	// wait gives the processor up while the window is full, to the
	// subscribers if they need it: runtime.Gosched when they are
	// goroutines of this process (nil), yieldCPU when they are processes.
	wait func()
}

// tally adds up a side's turns.
type tally struct {
	sent uint64
	busy time.Duration // from each turn's first publish to its last message received
}

// turns is how many turns each side of a throughput row takes. mcl and
// the baseline take turns through a row, as in the latency rows, so that
// a spell of noise from the rest of the machine falls on both: measured
// one after the other, a second each, the ratio of one row moved by a
// third between runs.
const turns = 5

// throughputRow measures mcl on c and the baseline on bc, publishing
// payloads of size bytes to subs subscribers, each side for d in all.
func throughputRow(ctx context.Context, c, bc *mcl.Connection, size, subs int, d time.Duration) (m, base Result, err error) {
	ms, err := sideMCL(c, size, subs)
	if err != nil {
		return m, base, err
	}
	defer ms.close()
	bs, err := sideBaseline(bc, size, subs)
	if err != nil {
		return m, base, err
	}
	defer bs.close()
	return takeTurns(ctx, ms, bs, size, d, nil)
}

// takeTurns has mcl (ms) and the baseline (bs) publish payloads of size
// bytes for d each, in turns, and returns what each side's subscribers
// received. check, when not nil, is called after every turn: an error from
// it (a subscriber's process that died) ends the row, as does the end of
// ctx.
func takeTurns(ctx context.Context, ms, bs *side, size int, d time.Duration, check func() error) (m, base Result, err error) {
	for range turns {
		for _, s := range []*side{ms, bs} {
			if err := s.turn(size, d/turns); err != nil {
				return m, base, err
			}
			if err := ctx.Err(); err != nil {
				return m, base, err
			}
			if check != nil {
				if err := check(); err != nil {
					return m, base, err
				}
			}
		}
	}
	return ms.result(size), bs.result(size), nil
}

// turn publishes for d as fast as the window allows, then waits for what
// is in flight.
func (s *side) turn(size int, d time.Duration) error {
	least := fewest(s.cs)
	before, total := least(), uint64(0)
	for _, c := range s.cs {
		total += c.msgs.Load()
	}
	wait := s.wait
	if wait == nil {
		wait = runtime.Gosched
	}
	sent, start, err := publishFor(d, size, func() uint64 { return least() - before }, s.publish, wait)
	if err != nil {
		return err
	}
	settle(s.cs, total+sent*uint64(len(s.cs)))
	end := start
	for _, c := range s.cs {
		if t := time.Unix(0, c.last.Load()); t.After(end) {
			end = t
		}
	}
	s.tally.sent += sent
	s.tally.busy += end.Sub(start)
	return nil
}

func (s *side) result(size int) Result {
	got := make([]uint64, len(s.cs))
	for i, c := range s.cs {
		got[i] = c.msgs.Load()
	}
	return delivered(s.tally.sent, got, size, s.tally.busy)
}

// delivered is the Result of a throughput side that published sent
// messages of size bytes in busy, of which each subscriber received
// got[i]. Rates count what the subscribers received, per subscriber (the
// total over the number of subscribers), so that a side that drops
// messages is not credited with them; Lost adds up what each missed.
func delivered(sent uint64, got []uint64, size int, busy time.Duration) Result {
	r := Result{Sent: sent}
	for _, n := range got {
		r.Messages += n
		r.Lost += sent - min(n, sent)
	}
	if len(got) == 0 {
		return r
	}
	perSub := float64(r.Messages) / float64(len(got))
	if secs := busy.Seconds(); secs > 0 {
		r.MsgsPerSec = perSub / secs
		r.MBPerSec = perSub * float64(size) / secs / 1e6
	}
	if sent > 0 {
		r.Loss = float64(r.Lost) / float64(sent*uint64(len(got)))
	}
	return r
}

// newCounters returns n counters, one per subscriber.
func newCounters(n int) []*counter {
	cs := make([]*counter, n)
	for i := range cs {
		cs[i] = &counter{}
	}
	return cs
}

// sideMCL sets up subs mcl Subscribers on c, which share a socket, and a
// Publisher. Errors: those of opening the sockets.
func sideMCL(c *mcl.Connection, size, subs int) (*side, error) {
	cs := newCounters(subs)
	closeSubs, err := subscribeMCL(c, cs)
	if err != nil {
		return nil, err
	}
	publish, closePub, err := publisherMCL(c, size)
	if err != nil {
		closeSubs()
		return nil, err
	}
	return &side{publish: publish, cs: cs, close: func() { closeSubs(); closePub() }}, nil
}

// subscribeMCL subscribes one mcl Subscriber on c for each counter, which
// counts what it receives. Subscribers of one process share a socket.
// Errors: those of opening the socket.
func subscribeMCL(c *mcl.Connection, cs []*counter) (func(), error) {
	var subs []*mcl.Subscriber
	closeAll := func() {
		for _, s := range subs {
			s.Close()
		}
	}
	for _, n := range cs {
		sub, err := mcl.Subscribe(c, func(m *mcl.Message) { n.add(len(m.Payload)) },
			mcl.QueueLimits(1<<16, 512<<20))
		if err != nil {
			closeAll()
			return nil, err
		}
		subs = append(subs, sub)
	}
	return closeAll, nil
}

// publisherMCL returns a function that publishes a payload of size bytes
// on c, and one that closes its Publisher.
func publisherMCL(c *mcl.Connection, size int) (func() error, func(), error) {
	pub, err := mcl.NewPublisher(c)
	if err != nil {
		return nil, nil, err
	}
	p := payload(size)
	return func() error { return pub.PublishRaw("bench", p) }, func() { pub.Close() }, nil
}

// sideBaseline sets up subs bare sockets on c, each read by a goroutine of
// its own, and a sending socket. Errors: those of opening the sockets.
func sideBaseline(c *mcl.Connection, size, subs int) (*side, error) {
	cs := newCounters(subs)
	closeSubs, err := subscribeBaseline(c, size, cs)
	if err != nil {
		return nil, err
	}
	publish, closePub, err := publisherBaseline(c, size)
	if err != nil {
		closeSubs()
		return nil, err
	}
	return &side{publish: publish, cs: cs, close: func() { closeSubs(); closePub() }}, nil
}

// subscribeBaseline opens a bare socket on c for each counter, read by a
// goroutine of its own that counts the whole messages of size bytes that
// arrive. The function it returns closes the sockets and waits for the
// goroutines. Errors: those of opening the sockets.
func subscribeBaseline(c *mcl.Connection, size int, cs []*counter) (func(), error) {
	var wg sync.WaitGroup
	var rs []*sock.Receiver
	closeAll := func() {
		for _, r := range rs {
			r.Close()
		}
		wg.Wait()
	}
	for _, n := range cs {
		r, err := sock.Listen(sockConfig(c))
		if err != nil {
			closeAll()
			return nil, err
		}
		rs = append(rs, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			receiveAll(r, n, size)
		}()
	}
	return closeAll, nil
}

// publisherBaseline returns a function that sends a payload of size bytes
// on c, cut as mcl cuts it, and one that closes the sending socket.
func publisherBaseline(c *mcl.Connection, size int) (func() error, func(), error) {
	snd, err := sock.Dial(sockConfig(c))
	if err != nil {
		return nil, nil, err
	}
	ds := datagrams(payload(size))
	publish := func() error { return snd.Write(ds[0]) }
	if len(ds) > 1 {
		// Each piece carries its number in the stream, so that a
		// subscriber tells a whole message from pieces of several.
		var seq uint64
		publish = func() error {
			for _, d := range ds {
				stamp(d, seq)
				seq++
			}
			return snd.WriteBatch(ds)
		}
	}
	return publish, func() { snd.Close() }, nil
}

// receiveAll counts the whole messages of size bytes that reach r, until
// r is closed. Counting bytes instead would credit the pieces of messages
// that lost others, which mcl's reassembly never delivers.
func receiveAll(r *sock.Receiver, c *counter, size int) {
	ms := make([]sock.Message, 16)
	for i := range ms {
		ms[i].Buf = make([]byte, wire.MaxDatagram)
	}
	w := wholes{n: uint64(max(1, (size+wire.MTU-1)/wire.MTU))} // as datagrams cuts
	for {
		n, err := r.ReadBatch(ms)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		for _, m := range ms[:n] {
			if w.add(m.Buf[:m.N]) {
				c.add(size)
			}
		}
	}
}

// wholes finds the whole messages in a baseline subscriber's datagrams:
// n pieces to a message, piece k of message m numbered m*n+k (see stamp).
// A message is whole when its pieces arrive one after the other, the first
// to the last.
type wholes struct {
	n    uint64 // pieces per message
	next uint64 // the number of the next piece, if none is lost
	have uint64 // pieces of the current message so far, in order
}

// add takes the next datagram and reports whether it completed a message.
func (w *wholes) add(d []byte) bool {
	if w.n == 1 {
		return true
	}
	seq, ok := number(d, w.next)
	switch {
	case !ok:
		w.have = 0
		return false
	case seq%w.n == 0:
		w.have = 1
	case seq == w.next && w.have == seq%w.n:
		w.have++
	default:
		w.have = 0
	}
	w.next = seq + 1
	if w.have == w.n {
		w.have = 0
		return true
	}
	return false
}

// stamp writes a baseline piece's number into its first 8 bytes,
// little-endian; a piece shorter than that (the last of a message can
// be) gets the low bytes.
func stamp(d []byte, seq uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seq)
	copy(d, b[:])
}

// number returns the number stamped on d. A piece too short to hold all
// of it is taken to be want if the bytes it holds agree.
func number(d []byte, want uint64) (uint64, bool) {
	if len(d) >= 8 {
		return binary.LittleEndian.Uint64(d), true
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], want)
	return want, bytes.Equal(d, b[:len(d)])
}
