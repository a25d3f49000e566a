package bench

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
)

const warmup = 100

// lossWait is how long a ping waits for its pong before counting it lost.
const lossWait = time.Second

func latencyMCL(ping, pong *mcl.Connection, size, rounds int) (Result, error) {
	back, err := mcl.NewPublisher(pong)
	if err != nil {
		return Result{}, err
	}
	defer back.Close()
	echo, err := mcl.Subscribe(ping, func(m *mcl.Message) { back.PublishRaw("pong", m.Payload) })
	if err != nil {
		return Result{}, err
	}
	defer echo.Close()
	replies, err := mcl.SubscribeSync(pong)
	if err != nil {
		return Result{}, err
	}
	defer replies.Close()
	out, err := mcl.NewPublisher(ping)
	if err != nil {
		return Result{}, err
	}
	defer out.Close()
	p := payload(size)
	// One context for the run: a context per round trip would allocate in
	// the measured path, which the baseline's deadline does not.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lost := time.AfterFunc(lossWait, cancel)
	return pingPong(rounds, func() error {
		if err := out.PublishRaw("ping", p); err != nil {
			return err
		}
		lost.Reset(lossWait)
		_, err := replies.Next(ctx)
		if errors.Is(err, context.Canceled) {
			return context.DeadlineExceeded
		}
		return err
	})
}

func latencyBaseline(ping, pong *mcl.Connection, size, rounds int) (Result, error) {
	in, err := sock.Listen(sockConfig(ping))
	if err != nil {
		return Result{}, err
	}
	back, err := sock.Dial(sockConfig(pong))
	if err != nil {
		in.Close()
		return Result{}, err
	}
	defer back.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer in.Close()
	wg.Add(1)
	go func() { // the echo
		defer wg.Done()
		ms := buffers(1)
		for {
			n, err := in.ReadBatch(ms)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			for _, m := range ms[:n] {
				back.Write(m.Buf[:m.N])
			}
		}
	}()
	replies, err := sock.Listen(sockConfig(pong))
	if err != nil {
		return Result{}, err
	}
	defer replies.Close()
	out, err := sock.Dial(sockConfig(ping))
	if err != nil {
		return Result{}, err
	}
	defer out.Close()
	p := payload(size)
	ms := buffers(1)
	return pingPong(rounds, func() error {
		if err := out.Write(p); err != nil {
			return err
		}
		replies.SetReadDeadline(time.Now().Add(lossWait))
		_, err := replies.ReadBatch(ms)
		return err
	})
}

func buffers(n int) []sock.Message {
	ms := make([]sock.Message, n)
	for i := range ms {
		ms[i].Buf = make([]byte, wire.MaxDatagram)
	}
	return ms
}

// pingPong times rounds round trips after a warm-up; a round trip that
// times out is counted as loss.
func pingPong(rounds int, roundTrip func() error) (Result, error) {
	rtts := make([]time.Duration, 0, rounds)
	lost := 0
	for i := range warmup + rounds {
		t0 := time.Now()
		err := roundTrip()
		rtt := time.Since(t0)
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
			lost++
			continue
		case err != nil:
			return Result{}, err
		}
		if i >= warmup {
			rtts = append(rtts, rtt)
		}
	}
	if len(rtts) == 0 {
		return Result{}, errors.New("every round trip was lost")
	}
	var r Result
	percentiles(&r, rtts)
	r.Sent = uint64(rounds + lost)
	r.Loss = float64(lost) / float64(rounds+lost)
	return r, nil
}
