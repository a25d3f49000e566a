package mcl

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tinylib/msgp/msgp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

// Publisher sends messages to a group. It is safe for concurrent use;
// messages from concurrent calls go out whole, one after the other.
//
// In the seed framing (the default), each message goes out in the call
// that publishes it. In mcl/2 (WithFraming(FramingMCL2)), unless Express:
// when traffic is light (nothing queued or being sent, and the caller did
// something else since its last Publish, such as wait for a reply), the
// message goes out in the call too. Published in a run, one call right
// after another, messages queue, and a goroutine of the Publisher sends
// them: those published while a send is in flight join the next datagram
// (flush on idle: no timer ever holds a message back for a datagram to
// fill). A message waits at most for the datagrams queued before it, at
// most 64, after which Publish waits for room. Messages too large for one
// datagram go out in the call, in fragments, after those queued before
// them. Flush waits until all are sent; Close sends them first. An error
// of a send that failed after Publish returned is returned by the next
// Publish, Flush or Close.
type Publisher struct {
	conn *Connection
	s    *sock.Sender

	mu     sync.Mutex // guards everything below and the socket's writes
	closed bool
	frame  []byte       // a message's header, or its fragments' headers back to back
	ends   []int        // where each fragment header ends in frame
	frames [][]byte     // the fragment headers of one message, slices of frame
	pieces [][]byte     // the pieces of the payload they go with
	enc    bytes.Buffer // Publish's msgpack encoding of a value
	encr   *msgpack.Encoder
	rate   int         // bytes per second, or 0: see Pace
	next   time.Time   // when the next datagram may go, with a rate
	timer  *time.Timer // waits for next

	done      chan struct{} // closed by Close, to end a wait for the rate
	closeOnce sync.Once

	framing   Framing
	express   bool
	dgramSize int      // mcl/2 datagram size, or 0 for the path's
	b         *batcher // mcl/2's state; nil in the seed framing

	stats pubCounters
}

type pubCounters struct {
	messages, datagrams, bytes, errors atomic.Uint64
}

// PublisherStats counts what a Publisher sent.
type PublisherStats struct {
	Messages  uint64 // messages published
	Datagrams uint64 // datagrams sent (more than Messages when fragmented)
	Bytes     uint64 // bytes sent in datagrams
	Errors    uint64 // publishes that failed
}

// PublishOption configures a Publisher.
type PublishOption func(*Publisher) error

// MinPace is the lowest rate Pace accepts, in bytes per second: slower,
// the fragments of a message would come 60 ms apart or more, too close to
// the 200 ms after which receivers give up on the rest of a message
// (wire.Limits.Gap) for a sender that the scheduler may hold up a while.
const MinPace = 1_000_000

// Pace caps the rate at which the Publisher sends, in bytes of datagrams
// per second: each datagram leaves no sooner than the previous one's
// length at that rate after it. The fragments of a large message then
// reach receivers spread out, instead of in one burst that their socket
// receive buffers must hold whole (a 50 MB message is 834 datagrams of
// 60 KB; a receiver's kernel drops what its buffer cannot hold, and with
// one fragment lost the message is lost). Publish waits for its turn, as
// long as that takes; Close ends the wait. In mcl/2 the datagrams queued
// for the sender goroutine wait their turn there, and Close's wait for
// them: those it cuts short are not sent, and Close says how many. Runs of
// fragments go 64 KB at a time. NewPublisher returns ErrBadOption for a
// rate under MinPace.
func Pace(bytesPerSecond int) PublishOption {
	return func(p *Publisher) error {
		if bytesPerSecond < MinPace {
			return fmt.Errorf("%w: pace of %d bytes/s: at least %d, or the fragments of a message come so far apart that receivers drop it", ErrBadOption, bytesPerSecond, MinPace)
		}
		p.rate = bytesPerSecond
		return nil
	}
}

// NewPublisher opens a socket that sends to c's group. Errors: those of
// the options (ErrBadOption), and the operating system's, wrapped with the
// group and interface.
func NewPublisher(c *Connection, opts ...PublishOption) (*Publisher, error) {
	p := &Publisher{conn: c, done: make(chan struct{})}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, err
		}
	}
	s, err := sock.Dial(c.sockConfig())
	if err != nil {
		return nil, fmt.Errorf("mcl: publisher for %s: %w", c, err)
	}
	p.s = s
	p.encr = msgpack.NewEncoder(&p.enc)
	if p.framing == FramingMCL2 {
		if err := p.startBatcher(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return p, nil
}

// Publish encodes v with msgpack (github.com/vmihailenco/msgpack/v5: maps,
// slices, structs with `msgpack` tags, strings as str, []byte as bin) and
// publishes it on topic. Errors: ErrClosed, ErrTopicTooLong, an encoding
// error for values msgpack cannot represent, and socket errors.
func (p *Publisher) Publish(topic string, v any) error {
	called := p.callTime()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.enc.Reset()
	if err := p.encr.Encode(v); err != nil {
		p.stats.errors.Add(1)
		return fmt.Errorf("mcl: encode payload for topic %q: %w", topic, err)
	}
	return p.send(topic, p.enc.Bytes(), called)
}

// PublishRaw publishes payload, which must be exactly one msgpack-encoded
// value, on topic. The bytes go on the wire unchanged, so what was received
// can be republished byte-exact. Errors: ErrClosed, ErrTopicTooLong,
// ErrBadPayload, and socket errors.
func (p *Publisher) PublishRaw(topic string, payload []byte) error {
	called := p.callTime()
	if rest, err := msgp.Skip(payload); err != nil || len(rest) != 0 {
		p.stats.errors.Add(1)
		if err == nil {
			return fmt.Errorf("%w: %d bytes follow the first value", ErrBadPayload, len(rest))
		}
		return fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return p.send(topic, payload, called)
}

// callTime returns the time of a call to publish, for a batching mcl/2
// Publisher whose sender goroutine waits, which tells light traffic by it
// (see publish2); the zero time otherwise. A clock read costs about as
// much as queueing a small message: a run of Publish calls, the sender
// goroutine at work, reads none.
func (p *Publisher) callTime() time.Time {
	if p.b != nil && p.b.waiting.Load() {
		return time.Now()
	}
	return time.Time{}
}

// send frames payload as the seed does, whole or in fragments, and writes
// the datagrams; called is when the call to publish came (see callTime).
// p.mu is held.
func (p *Publisher) send(topic string, payload []byte, called time.Time) error {
	if err := wire.CheckTopic(topic); err != nil {
		p.stats.errors.Add(1)
		return fmt.Errorf("%w: %d bytes: keep topics under %d bytes", ErrTopicTooLong, len(topic), wire.MaxTopic)
	}
	if p.b != nil {
		return p.publish2(topic, payload, called)
	}
	var err error
	if wire.Fits(topic, payload) {
		// The payload goes out from where it lies if the kernel copies
		// it fast from there: on AMD Zen a bad place makes that copy
		// three times slower, and then it is copied behind its header
		// (sock.WriteOne).
		p.frame = wire.AppendMessage(p.frame[:0], topic, nil)
		if err = p.pace(len(p.frame) + len(payload)); err == nil {
			err = p.s.WriteOne(p.frame, payload)
		}
		p.count(err, 1, len(p.frame)+len(payload))
	} else {
		err = p.sendFragments(topic, payload)
	}
	if err != nil {
		return fmt.Errorf("mcl: publish on %s: %w", p.conn, err)
	}
	return nil
}

// sendFragments sends payload in fragments. p.mu is held.
func (p *Publisher) sendFragments(topic string, payload []byte) error {
	// Headers go into frame back to back; pieces are sent from the
	// payload where they lie.
	n := wire.FragmentCount(len(payload))
	p.frame, p.ends, p.pieces = p.frame[:0], p.ends[:0], p.pieces[:0]
	for i := 1; i <= n; i++ {
		piece := wire.Piece(payload, i)
		p.frame = wire.AppendFragmentHeader(p.frame, topic, i, n, len(piece))
		p.ends = append(p.ends, len(p.frame))
		p.pieces = append(p.pieces, piece)
	}
	p.frames = p.frames[:0]
	start := 0
	for _, end := range p.ends {
		p.frames = append(p.frames, p.frame[start:end:end])
		start = end
	}
	var err error
	if p.rate == 0 {
		err = p.s.WriteGather(p.frames, p.pieces)
	} else {
		for i := range p.frames {
			if err = p.pace(len(p.frames[i]) + len(p.pieces[i])); err != nil {
				break
			}
			if err = p.s.WriteGather(p.frames[i:i+1], p.pieces[i:i+1]); err != nil {
				break
			}
		}
	}
	clear(p.pieces) // the caller's payload is not ours to keep
	p.count(err, n, len(p.frame)+len(payload))
	return err
}

// pace waits, with a rate set, until a datagram of n bytes may go, and
// books the time it takes at that rate. p.mu is held, or, in mcl/2, the
// caller is the one sending (batcher.busy). Errors: ErrClosed once Close
// is called.
func (p *Publisher) pace(n int) error {
	if p.rate == 0 {
		return nil
	}
	now := time.Now()
	if wait := p.next.Sub(now); wait > 0 {
		if p.timer == nil {
			p.timer = time.NewTimer(wait)
		} else {
			p.timer.Reset(wait)
		}
		select {
		case <-p.timer.C:
		case <-p.done:
			p.timer.Stop()
			return ErrClosed
		}
		now = p.next
	}
	// A Publisher that was idle does not make up for it with a burst.
	p.next = now.Add(time.Duration(int64(n) * int64(time.Second) / int64(p.rate)))
	return nil
}

func (p *Publisher) count(err error, datagrams, bytes int) {
	if err != nil {
		p.stats.errors.Add(1)
		return
	}
	p.stats.messages.Add(1)
	p.stats.datagrams.Add(uint64(datagrams))
	p.stats.bytes.Add(uint64(bytes))
}

// LocalAddr is the address and port the Publisher sends from, which
// subscribers see as Message.Sender.
func (p *Publisher) LocalAddr() netip.AddrPort { return p.s.LocalAddr() }

// Stats returns the Publisher's counters.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{
		Messages:  p.stats.messages.Load(),
		Datagrams: p.stats.datagrams.Load(),
		Bytes:     p.stats.bytes.Load(),
		Errors:    p.stats.errors.Load(),
	}
}

// Close closes the socket; later publishes return ErrClosed, and so does
// one waiting for its turn at the Pace. A batching mcl/2 Publisher first
// sends what was published, and returns the error of a send that failed
// since Publish or Flush last returned one. It is safe to call more than
// once.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() { close(p.done) })
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	var err error
	if p.b != nil {
		err = p.close2() // what was published goes out first
	}
	if cerr := p.s.Close(); err == nil {
		err = cerr
	}
	return err
}
