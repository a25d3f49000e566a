package bench

import (
	"bytes"
	"cmp"
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
	// drain, when not nil, hands to the kernel what the side has
	// published and not yet sent: mcl/2's batching Publisher flushes, the
	// baseline sends the datagram it is filling. It is called while the
	// window is full, before wait, and at the end of each turn.
	drain func() error
	cs    []*counter
	close func()
	tally tally
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

// A flow is the workload of a throughput row: payloads of size bytes to
// subs subscribers, each side publishing for d in all, mcl as v says, the
// baseline laid out as lay says (see seedLayout and mcl2Layout).
type flow struct {
	size, subs int
	d          time.Duration
	v          Variant // as configured: DatagramSize 0 is the path's
	lay        layout
}

// throughputFunc measures a throughput row: mcl on c and the baseline on
// bc. The in-process throughputRow is one, processes.throughputRow the
// other.
type throughputFunc func(ctx context.Context, c, bc *mcl.Connection, f flow) (m, base Result, err error)

// throughputRow measures mcl on c and the baseline on bc, publishing
// f's payloads to its subscribers, each side for f.d in all.
func throughputRow(ctx context.Context, c, bc *mcl.Connection, f flow) (m, base Result, err error) {
	ms, err := sideMCL(c, f)
	if err != nil {
		return m, base, err
	}
	defer ms.close()
	bs, err := sideBaseline(bc, f)
	if err != nil {
		return m, base, err
	}
	defer bs.close()
	return takeTurns(ctx, ms, bs, f.size, f.d, nil)
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
	var drainErr error
	if s.drain != nil {
		yield := wait
		wait = func() {
			if err := s.drain(); err != nil && drainErr == nil {
				drainErr = err
			}
			yield()
		}
	}
	sent, start, err := publishFor(d, size, func() uint64 { return least() - before }, s.publish, wait)
	if err == nil && s.drain != nil {
		err = cmp.Or(drainErr, s.drain())
	}
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

// sideMCL sets up f.subs mcl Subscribers on c, which share a socket, and
// a Publisher. Errors: those of opening the sockets.
func sideMCL(c *mcl.Connection, f flow) (*side, error) {
	cs := newCounters(f.subs)
	closeSubs, err := subscribeMCL(c, cs, f.v.Framing == FramingMCL2)
	if err != nil {
		return nil, err
	}
	s, err := publisherMCL(c, f)
	if err != nil {
		closeSubs()
		return nil, err
	}
	s.cs = cs
	closePub := s.close
	s.close = func() { closeSubs(); closePub() }
	return s, nil
}

// subscribeMCL subscribes one mcl Subscriber on c for each counter, which
// counts what it receives. Subscribers of one process share a socket.
// With received, a counter takes the time of a message from
// Message.Received, when mcl read its datagram, instead of reading the
// clock for each (see counter.at). Errors: those of opening the socket.
func subscribeMCL(c *mcl.Connection, cs []*counter, received bool) (func(), error) {
	var subs []*mcl.Subscriber
	closeAll := func() {
		for _, s := range subs {
			s.Close()
		}
	}
	for _, n := range cs {
		count := func(m *mcl.Message) { n.add(len(m.Payload)) }
		if received {
			count = func(m *mcl.Message) { n.at(len(m.Payload), m.Received) }
		}
		sub, err := mcl.Subscribe(c, count, mcl.QueueLimits(1<<16, 512<<20))
		if err != nil {
			closeAll()
			return nil, err
		}
		subs = append(subs, sub)
	}
	return closeAll, nil
}

// publisherMCL returns the publishing part of mcl's side of a row (publish,
// drain and close; no counters): a Publisher on c that publishes payloads
// of f.size bytes as f.v says.
func publisherMCL(c *mcl.Connection, f flow) (*side, error) {
	pub, err := mcl.NewPublisher(c, f.v.options()...)
	if err != nil {
		return nil, err
	}
	p := payload(f.size)
	s := &side{publish: func() error { return pub.PublishRaw(benchTopic, p) }, close: func() { pub.Close() }}
	if f.v.batched() {
		s.drain = pub.Flush
	}
	return s, nil
}

// benchTopic is the topic of a throughput row's messages.
const benchTopic = "bench"

// sideBaseline sets up f.subs bare sockets on c, each read by a goroutine
// of its own, and a sending socket. Errors: those of opening the sockets.
func sideBaseline(c *mcl.Connection, f flow) (*side, error) {
	cs := newCounters(f.subs)
	closeSubs, err := subscribeBaseline(c, f.lay, cs)
	if err != nil {
		return nil, err
	}
	s, err := publisherBaseline(c, f.lay)
	if err != nil {
		closeSubs()
		return nil, err
	}
	s.cs = cs
	closePub := s.close
	s.close = func() { closeSubs(); closePub() }
	return s, nil
}

// subscribeBaseline opens a bare socket on c for each counter, read by a
// goroutine of its own that counts the whole messages that arrive, laid
// out as lay says. The function it returns closes the sockets and waits
// for the goroutines. Errors: those of opening the sockets.
func subscribeBaseline(c *mcl.Connection, lay layout, cs []*counter) (func(), error) {
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
			receiveAll(r, n, lay)
		}()
	}
	return closeAll, nil
}

// publisherBaseline returns the publishing part of the baseline's side of
// a row (publish, drain and close; no counters): a socket on c that sends
// payloads laid out in datagrams as lay says, as mcl lays them out.
func publisherBaseline(c *mcl.Connection, lay layout) (*side, error) {
	snd, err := sock.Dial(sockConfig(c))
	if err != nil {
		return nil, err
	}
	if lay.Record > 0 {
		b := newBatchSender(snd, lay)
		return &side{publish: b.publish, drain: b.drain, close: func() { snd.Close() }}, nil
	}
	heads, bodies := lay.frames(payload(lay.Size))
	publish := func() error { return snd.Write(heads[0]) }
	if len(heads) > 1 {
		// Each piece carries its number in the stream, so that a
		// subscriber tells a whole message from pieces of several.
		var seq uint64
		number := func() {
			for _, d := range heads {
				stamp(d, seq)
				seq++
			}
		}
		publish = func() error {
			number()
			return snd.WriteBatch(heads)
		}
		if bodies != nil {
			// mcl/2's pieces: the headers and the pieces taking turns,
			// sent as one run of datagrams with UDP GSO, as its Publisher
			// sends them.
			iov := make([][]byte, 0, 2*len(heads))
			for i := range heads {
				iov = append(iov, heads[i], bodies[i])
			}
			segment := lay.Extra + lay.Piece
			publish = func() error {
				number()
				return snd.WriteSegments(iov, segment)
			}
		}
	}
	return &side{publish: publish, close: func() { snd.Close() }}, nil
}

// receiveAll counts the whole messages that reach r, laid out as lay says,
// until r is closed. Counting bytes instead would credit the pieces of
// messages that lost others, which mcl's reassembly never delivers.
func receiveAll(r *sock.Receiver, c *counter, lay layout) {
	ms := make([]sock.Message, 16)
	for i := range ms {
		ms[i].Buf = make([]byte, wire.MaxDatagram)
	}
	w := wholes{n: uint64(max(1, lay.Pieces))}
	for {
		n, err := r.ReadBatch(ms)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		for i := range ms[:n] {
			for d := range ms[i].Datagrams { // one, or a run the kernel coalesced (GRO)
				switch {
				case lay.Record > 0: // many messages a datagram
					if k := (len(d) - lay.Header) / lay.Record; k > 0 {
						c.addN(k, k*lay.Size)
					}
				case w.add(d):
					c.add(lay.Size)
				}
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
