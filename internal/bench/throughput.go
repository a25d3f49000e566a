package bench

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

// publishFor calls publish as fast as it can for d and returns how many
// times it did, reading the clock every few calls for small messages.
func publishFor(d time.Duration, size int, publish func() error) (uint64, time.Time, error) {
	every := max(1, 64*1024/size)
	start := time.Now()
	end := start.Add(d)
	var sent uint64
	for time.Now().Before(end) {
		for range every {
			if err := publish(); err != nil {
				return sent, start, err
			}
			sent++
		}
	}
	return sent, start, nil
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
	sent, start, err := publishFor(d, size, func() error { return pub.PublishRaw("bench", p) })
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
	sent, start, err := publishFor(d, size, send)
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
