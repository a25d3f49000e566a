// Package relay is a test tool: a relay between two multicast groups that
// drops, duplicates and delays the datagrams it forwards, as a faulty
// network would, with faults drawn from a seeded generator so that a
// failing test reproduces.
//
// Run it inside the sandbox network (package sandbox), like everything
// that sends multicast in tests:
//
//	r, err := relay.Start(from, to, ifi, relay.Faults{Loss: 0.05, Seed: 1})
//	// publish to from, subscribe to to
//	log := r.Log() // what became of each datagram, in the order they came
//
// Each datagram meets one fate, drawn independently: lost, sent twice back
// to back, held for Faults.DelayBy while later datagrams overtake it, or
// forwarded as it is. For one sender the fates depend only on the seed and
// the order of its datagrams, not on timing.
package relay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mcl-go/mcl/internal/sock"
)

// Faults says what a Relay does to the datagrams it forwards. The shares
// are probabilities, each datagram meeting at most one fault: their sum
// must be at most 1.
type Faults struct {
	Loss      float64       // share of datagrams dropped
	Duplicate float64       // share sent twice, back to back
	Delay     float64       // share held for DelayBy before they are sent
	DelayBy   time.Duration // how long a delayed datagram is held (default 1 ms)
	Seed      uint64        // seeds the generator the fates are drawn from
}

// Fate is what a Relay did with one datagram.
type Fate uint8

// The fates of a datagram.
const (
	Forwarded  Fate = iota // sent on at once
	Lost                   // dropped
	Duplicated             // sent twice, back to back
	Delayed                // sent DelayBy later
)

func (f Fate) String() string {
	switch f {
	case Forwarded:
		return "forwarded"
	case Lost:
		return "lost"
	case Duplicated:
		return "duplicated"
	case Delayed:
		return "delayed"
	}
	return fmt.Sprintf("Fate(%d)", uint8(f))
}

// ErrBadFaults is returned by Start for shares outside 0..1 or adding up
// to more than 1.
var ErrBadFaults = errors.New("relay: fault shares must be in 0..1 and add up to at most 1")

// Relay forwards datagrams from one group to another with faults.
type Relay struct {
	in     *sock.Receiver
	out    *sock.Sender
	faults Faults
	rng    *rand.Rand

	mu     sync.Mutex // guards what follows, and out's writes
	fates  []Fate
	held   []time.Duration // how long each delayed datagram was held in the end
	sent   []int           // indexes into fates of the datagrams sent, in the order sent
	last   time.Time       // when the relay last sent a datagram
	drops  uint32          // datagrams the kernel dropped on the relay's socket
	err    error           // why forwarding stopped or went wrong, other than Close
	closed bool

	holding sync.WaitGroup // delayed datagrams not sent yet
	done    chan struct{}  // closed when run returns
}

// Start joins from on ifi and forwards what arrives to to, sent from ifi,
// until Close. Errors: ErrBadFaults, and those of opening the sockets.
func Start(from, to netip.AddrPort, ifi *net.Interface, f Faults) (*Relay, error) {
	for _, p := range []float64{f.Loss, f.Duplicate, f.Delay} {
		if p < 0 || p > 1 {
			return nil, ErrBadFaults
		}
	}
	if f.Loss+f.Duplicate+f.Delay > 1 {
		return nil, ErrBadFaults
	}
	if f.DelayBy <= 0 {
		f.DelayBy = time.Millisecond
	}
	// A relay that drops what it was not told to would make the faults a
	// test counts wrong: give it room for long bursts.
	in, err := sock.Listen(sock.Config{Group: from, Interface: ifi, ReadBuffer: 64 << 20})
	if err != nil {
		return nil, err
	}
	out, err := sock.Dial(sock.Config{Group: to, Interface: ifi, Hops: 1, Loopback: true, WriteBuffer: 4 << 20})
	if err != nil {
		in.Close()
		return nil, err
	}
	r := &Relay{in: in, out: out, faults: f, rng: rand.New(rand.NewPCG(f.Seed, 0x6d636c)), done: make(chan struct{})}
	go r.run()
	return r, nil
}

// run reads, draws each datagram's fate and forwards it, until the
// receiving socket is closed.
func (r *Relay) run() {
	defer close(r.done)
	ms := make([]sock.Message, 16)
	for i := range ms {
		ms[i].Buf = make([]byte, 65536)
	}
	for {
		n, err := r.in.ReadBatch(ms)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.mu.Lock()
				r.err = fmt.Errorf("relay: read: %w", err)
				r.mu.Unlock()
			}
			return
		}
		for _, m := range ms[:n] {
			r.forward(m.Buf[:m.N], m.Drops)
		}
	}
}

// forward draws the fate of datagram d, which came after the kernel had
// dropped drops datagrams on the relay's socket, and meets it.
func (r *Relay) forward(d []byte, drops uint32) {
	fate := r.draw()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drops = max(r.drops, drops)
	k := len(r.fates)
	r.fates = append(r.fates, fate)
	r.held = append(r.held, 0)
	switch fate {
	case Forwarded:
		r.write(k, d)
	case Duplicated:
		r.write(k, d)
		r.write(k, d)
	case Delayed:
		held, since := append([]byte(nil), d...), time.Now()
		r.holding.Add(1)
		time.AfterFunc(r.faults.DelayBy, func() {
			defer r.holding.Done()
			r.mu.Lock()
			defer r.mu.Unlock()
			if !r.closed {
				r.held[k] = time.Since(since)
				r.write(k, held)
			}
		})
	}
}

// draw returns the next datagram's fate. Only run calls it, so the
// generator needs no lock.
func (r *Relay) draw() Fate {
	u := r.rng.Float64()
	switch f := r.faults; {
	case u < f.Loss:
		return Lost
	case u < f.Loss+f.Duplicate:
		return Duplicated
	case u < f.Loss+f.Duplicate+f.Delay:
		return Delayed
	}
	return Forwarded
}

// write sends d, datagram k; r.mu is held. A failed send is the relay's
// own loss, which a test could not tell from a fault it drew: Err reports
// it.
func (r *Relay) write(k int, d []byte) {
	r.last = time.Now()
	r.sent = append(r.sent, k)
	if err := r.out.Write(d); err != nil && r.err == nil {
		r.err = fmt.Errorf("relay: forward: %w", err)
	}
}

// Log is what a Relay did so far.
type Log struct {
	// Fates are what became of each datagram received, in the order they
	// came.
	Fates []Fate
	// Held says how long each delayed datagram was held in the end (0
	// for the others): on a loaded machine, it can be much longer than
	// DelayBy.
	Held []time.Duration
	// Sent are the datagrams sent, as indexes into Fates, in the order
	// sent: a duplicated one twice, a delayed one where its turn came.
	Sent []int
}

// Log returns what the relay did so far.
func (r *Relay) Log() Log {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Log{Fates: slices.Clone(r.fates), Held: slices.Clone(r.held), Sent: slices.Clone(r.sent)}
}

// LastSent returns when the relay last sent a datagram: a test that waits
// for the path to fall quiet waits for that to be long enough ago.
func (r *Relay) LastSent() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Outcome waits until the relay has seen and sent on every datagram of w
// (delayed ones included), then returns what it did to them, for a
// receiver whose reassembly gap is gap. Errors: the relay still short of
// that after timeout (Workload.Outcome's error says how short).
func (r *Relay) Outcome(w *Workload, gap, timeout time.Duration) (Outcome, error) {
	deadline := time.Now().Add(timeout)
	for {
		o, err := w.Outcome(r.Log(), gap)
		if err == nil || time.Now().After(deadline) {
			return o, err
		}
		time.Sleep(time.Millisecond)
	}
}

// WaitQuiet returns once the relay has sent nothing for d: a receiver with
// a reassembly gap under d has given up on what is incomplete.
func (r *Relay) WaitQuiet(d time.Duration) {
	for {
		idle := time.Since(r.LastSent())
		if idle > d {
			return
		}
		time.Sleep(d - idle + time.Millisecond)
	}
}

// Err reports a failure that made the relay lose datagrams it was not told
// to: a send that failed, a read that failed, or the kernel dropping
// datagrams on the relay's own socket.
func (r *Relay) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if r.drops != 0 {
		return fmt.Errorf("relay: the kernel dropped %d datagrams on the relay's socket", r.drops)
	}
	return nil
}

// Close stops the relay, after sending the datagrams it holds. It is safe
// to call more than once.
func (r *Relay) Close() error {
	err := r.in.Close()
	<-r.done
	r.holding.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return errors.Join(err, r.out.Close())
}
