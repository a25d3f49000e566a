package bench

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

const warmup = 100

// block is how many round trips one side makes before the other has its
// turn. mcl and the baseline take turns through a latency row, so that a
// stretch of noise from the rest of the machine (another tenant, a
// daemon's timer) falls on both and not on whichever ran at the time: run
// one after the other, the two p99s of a row moved by a factor of 1.5
// between runs, each on its own.
const block = 50

// lossWait is how long a ping waits for its pong before counting it lost.
const lossWait = time.Second

// A pinger makes one round trip per call: ping out, pong back. Round trips
// that time out report context.DeadlineExceeded or os.ErrDeadlineExceeded.
type pinger func() error

// latencyRow measures mcl's round trips over ping and pong (two
// Connections) and the baseline's over bping and bpong, taking turns.
func latencyRow(ctx context.Context, ping, pong, bping, bpong *mcl.Connection, size, rounds int) (m, base Result, err error) {
	// The throughput rows leave megabytes of garbage behind; collected
	// during the row, it would show in the tail of both sides.
	runtime.GC()
	mp, closeMCL, err := pingMCL(ping, pong, size, Variant{Framing: FramingSeed})
	if err != nil {
		return m, base, err
	}
	defer closeMCL()
	bp, closeBase, err := pingBaseline(bping, bpong, size)
	if err != nil {
		return m, base, err
	}
	defer closeBase()
	rs, err := pingPong(ctx, rounds, mp, bp)
	if err != nil {
		return m, base, err
	}
	return rs[0], rs[1], nil
}

// pingMCL sets up an echo over mcl (see echoMCL) and a pinger through it,
// both publishing as v says. Errors: those of opening the sockets.
func pingMCL(ping, pong *mcl.Connection, size int, v Variant) (pinger, func(), error) {
	closeEcho, err := echoMCL(ping, pong, v)
	if err != nil {
		return nil, nil, err
	}
	p, closePinger, err := pingerMCL(ping, pong, size, v)
	if err != nil {
		closeEcho()
		return nil, nil, err
	}
	return p, func() { closePinger(); closeEcho() }, nil
}

// echoMCL sets up an echo over mcl: a Subscriber on ping that publishes
// what it gets on pong, as v says. Errors: those of opening the sockets.
func echoMCL(ping, pong *mcl.Connection, v Variant) (func(), error) {
	back, err := mcl.NewPublisher(pong, v.options()...)
	if err != nil {
		return nil, err
	}
	echo, err := mcl.Subscribe(ping, func(m *mcl.Message) { back.PublishRaw("pong", m.Payload) })
	if err != nil {
		back.Close()
		return nil, err
	}
	return func() { echo.Close(); back.Close() }, nil
}

// pingerMCL returns a pinger that publishes on ping, as v says, and waits
// for the reply on pong. Errors: those of opening the sockets.
func pingerMCL(ping, pong *mcl.Connection, size int, v Variant) (pinger, func(), error) {
	replies, err := mcl.SubscribeSync(pong)
	if err != nil {
		return nil, nil, err
	}
	out, err := mcl.NewPublisher(ping, v.options()...)
	if err != nil {
		replies.Close()
		return nil, nil, err
	}
	p := payload(size)
	// One context for the row: a context per round trip would allocate in
	// the measured path, which the baseline's deadline does not.
	ctx, cancel := context.WithCancel(context.Background())
	lost := time.AfterFunc(lossWait, cancel)
	lost.Stop()
	closeAll := func() {
		lost.Stop()
		cancel()
		out.Close()
		replies.Close()
	}
	return func() error {
		if err := out.PublishRaw("ping", p); err != nil {
			return err
		}
		lost.Reset(lossWait)
		_, err := replies.Next(ctx)
		if lost.Stop() {
			return err
		}
		// The timer fired and cancelled ctx: the next round trip needs a
		// fresh one.
		ctx, cancel = context.WithCancel(context.Background())
		lost = time.AfterFunc(lossWait, cancel)
		lost.Stop()
		if errors.Is(err, context.Canceled) {
			return context.DeadlineExceeded
		}
		return err
	}, closeAll, nil
}

// pingBaseline sets up the same echo and pinger over bare sockets. Errors:
// those of opening the sockets.
func pingBaseline(ping, pong *mcl.Connection, size int) (pinger, func(), error) {
	closeEcho, err := echoBaseline(ping, pong)
	if err != nil {
		return nil, nil, err
	}
	p, closePinger, err := pingerBaseline(ping, pong, size)
	if err != nil {
		closeEcho()
		return nil, nil, err
	}
	return p, func() { closePinger(); closeEcho() }, nil
}

// echoBaseline sets up an echo over bare sockets: a goroutine that reads
// what arrives on ping and sends it on pong. Errors: those of opening the
// sockets.
func echoBaseline(ping, pong *mcl.Connection) (func(), error) {
	in, err := sock.Listen(sockConfig(ping))
	if err != nil {
		return nil, err
	}
	back, err := sock.Dial(sockConfig(pong))
	if err != nil {
		in.Close()
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ms := buffers(1)
		for {
			n, err := in.ReadBatch(ms)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			for i := range ms[:n] {
				for d := range ms[i].Datagrams {
					back.Write(d)
				}
			}
		}
	}()
	return func() {
		in.Close()
		wg.Wait()
		back.Close()
	}, nil
}

// pingerBaseline returns a pinger that sends on ping and waits for the
// reply on pong. Errors: those of opening the sockets.
func pingerBaseline(ping, pong *mcl.Connection, size int) (pinger, func(), error) {
	replies, err := sock.Listen(sockConfig(pong))
	if err != nil {
		return nil, nil, err
	}
	out, err := sock.Dial(sockConfig(ping))
	if err != nil {
		replies.Close()
		return nil, nil, err
	}
	p := payload(size)
	ms := buffers(1)
	return func() error {
			if err := out.Write(p); err != nil {
				return err
			}
			replies.SetReadDeadline(time.Now().Add(lossWait))
			_, err := replies.ReadBatch(ms)
			return err
		}, func() {
			out.Close()
			replies.Close()
		}, nil
}

func buffers(n int) []sock.Message {
	ms := make([]sock.Message, n)
	for i := range ms {
		ms[i].Buf = make([]byte, wire.MaxDatagram)
	}
	return ms
}

// pingPong times rounds round trips of each pinger after a warm-up, the
// pingers taking turns a block at a time, and returns a Result for each.
// A round trip that times out is counted as loss. The end of ctx ends the
// row between two blocks.
func pingPong(ctx context.Context, rounds int, pingers ...pinger) ([]Result, error) {
	rtts := make([][]time.Duration, len(pingers))
	lost := make([]int, len(pingers))
	for i := range rtts {
		rtts[i] = make([]time.Duration, 0, rounds)
	}
	for _, p := range pingers {
		for range warmup {
			if err := p(); err != nil && !timedOut(err) {
				return nil, err
			}
		}
	}
	for done := 0; done < rounds; done += block {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(block, rounds-done)
		for i, p := range pingers {
			for range n {
				t0 := time.Now()
				err := p()
				rtt := time.Since(t0)
				switch {
				case timedOut(err):
					lost[i]++
				case err != nil:
					return nil, err
				default:
					rtts[i] = append(rtts[i], rtt)
				}
			}
		}
	}
	rs := make([]Result, len(pingers))
	for i := range pingers {
		if len(rtts[i]) == 0 {
			return nil, errors.New("every round trip was lost")
		}
		percentiles(&rs[i], rtts[i])
		rs[i].Sent = uint64(rounds)
		rs[i].Lost = uint64(lost[i])
		rs[i].Loss = float64(lost[i]) / float64(rounds)
	}
	return rs, nil
}

func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}
