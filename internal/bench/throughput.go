package bench

import (
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
// subscriber has had.
func publishFor(d time.Duration, size int, received func() uint64, publish func() error) (uint64, time.Time, error) {
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
			runtime.Gosched()
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

func throughputMCL(c *mcl.Connection, size, subs int, d time.Duration) (Result, error) {
	cs := make([]*counter, subs)
	for i := range cs {
		cs[i] = &counter{}
		s, err := mcl.Subscribe(c, func(m *mcl.Message) { cs[i].add(len(m.Payload)) },
			mcl.QueueLimits(1<<16, 512<<20))
		if err != nil {
			return Result{}, err
		}
		defer s.Close()
	}
	pub, err := mcl.NewPublisher(c)
	if err != nil {
		return Result{}, err
	}
	defer pub.Close()
	p := payload(size)
	sent, start, err := publishFor(d, size, fewest(cs), func() error { return pub.PublishRaw("bench", p) })
	if err != nil {
		return Result{}, err
	}
	settle(cs, sent*uint64(subs))
	return summarize(cs, sent, size, start), nil
}

func throughputBaseline(c *mcl.Connection, size, subs int, d time.Duration) (Result, error) {
	cs := make([]*counter, subs)
	var wg sync.WaitGroup
	var rs []*sock.Receiver
	defer func() {
		for _, r := range rs {
			r.Close()
		}
		wg.Wait()
	}()
	for i := range cs {
		cs[i] = &counter{}
		r, err := sock.Listen(sockConfig(c))
		if err != nil {
			return Result{}, err
		}
		rs = append(rs, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			receiveAll(r, cs[i], size)
		}()
	}
	s, err := sock.Dial(sockConfig(c))
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	ds := datagrams(payload(size))
	send := func() error { return s.WriteBatch(ds) }
	if len(ds) == 1 {
		send = func() error { return s.Write(ds[0]) }
	}
	sent, start, err := publishFor(d, size, fewest(cs), send)
	if err != nil {
		return Result{}, err
	}
	settle(cs, sent*uint64(subs))
	return summarize(cs, sent, size, start), nil
}

// receiveAll counts whole messages of size bytes from datagrams until the
// socket is closed: a message is counted when its bytes have all arrived.
func receiveAll(r *sock.Receiver, c *counter, size int) {
	ms := make([]sock.Message, 16)
	for i := range ms {
		ms[i].Buf = make([]byte, wire.MaxDatagram)
	}
	got := 0
	for {
		n, err := r.ReadBatch(ms)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		for _, m := range ms[:n] {
			if got += m.N; got >= size {
				got = 0
				c.add(size)
			}
		}
	}
}
