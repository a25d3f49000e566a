package mcl_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
)

// BenchmarkMCL2Flood publishes 64-byte messages flat out from one
// goroutine to a subscriber in the same process, batched in mcl/2 and,
// for comparison, in the seed framing; it reports messages received per
// second and the share lost (mcl bench has the rows against a baseline).
func BenchmarkMCL2Flood(b *testing.B) {
	for _, tc := range benchFramings {
		b.Run(tc.name, func(b *testing.B) {
			s, p := benchPair(b, "ff15::7799", tc.opts, mcl.QueueLimits(1<<20, 1<<30))
			payload := binOf(1, 59) // 64 bytes of msgpack
			got := make(chan int, 1)
			var last time.Time // when the last message came
			go func() {
				n := 0
				for {
					m, err := s.Next(context.Background())
					if err != nil || m.Topic == "end" {
						break
					}
					n++
					last = m.Received
				}
				got <- n
			}()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if err := p.PublishRaw("bench", payload); err != nil {
					b.Fatal(err)
				}
			}
			p.PublishRaw("end", payload)
			p.Flush()
			var n int
			select {
			case n = <-got:
			case <-time.After(2 * time.Second): // the end was lost
				s.Close()
				n = <-got
			}
			elapsed := last.Sub(start)
			b.StopTimer()
			b.ReportMetric(float64(n)/elapsed.Seconds(), "recv/s")
			b.ReportMetric(100*float64(b.N-n)/float64(b.N), "%lost")
			st := s.Stats()
			b.Logf("publisher %+v; subscriber: datagrams %d, lost %d, kernel drops %d, dropped %d", p.Stats(), st.Datagrams, st.Lost, st.KernelDrops, st.Dropped)
		})
	}
}

// BenchmarkLarge sends 1 MB messages, four in flight at most (credits
// from the subscriber), in the seed framing and in mcl/2 with datagrams
// of 65 KB and of 1452 bytes (GSO and GRO where the kernel offers them).
func BenchmarkLarge(b *testing.B) {
	for _, tc := range benchFramings {
		b.Run(tc.name, func(b *testing.B) {
			s, p := benchPair(b, "ff15::7798", tc.opts)
			payload := binOf(1, 1_000_000)
			credits := make(chan struct{}, 4)
			for range cap(credits) {
				credits <- struct{}{}
			}
			got := make(chan int, 1)
			go func() {
				n := 0
				for {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					_, err := s.Next(ctx)
					cancel()
					if err != nil {
						break
					}
					n++
					credits <- struct{}{}
				}
				got <- n
			}()
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for range b.N {
				select {
				case <-credits:
				case <-time.After(time.Second): // one was lost: go on
				}
				if err := p.PublishRaw("big", payload); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			s.Close()
			n := <-got
			st := s.Stats()
			b.ReportMetric(100*float64(b.N-n)/float64(b.N), "%lost")
			b.Logf("delivered %d of %d; kernel drops %d, lost %d, stalled %d", n, b.N, st.KernelDrops, st.Lost, st.Stalled)
		})
	}
}

// benchFramings are the publishers the benchmarks above compare.
var benchFramings = []struct {
	name string
	opts []mcl.PublishOption
}{
	{"seed", nil},
	{"mcl2", []mcl.PublishOption{mcl.WithFraming(mcl.FramingMCL2)}},
	{"mcl2-1452", []mcl.PublishOption{mcl.WithFraming(mcl.FramingMCL2), mcl.DatagramSize(1452)}},
}

// benchPair opens a subscriber and a publisher on group, on a port of
// their own, closed with the benchmark.
func benchPair(b *testing.B, group string, opts []mcl.PublishOption, subOpts ...mcl.SubscribeOption) (*mcl.Subscriber, *mcl.Publisher) {
	b.Helper()
	c, err := mcl.NewConnection(group, mcl.Port(int(nextPort.Add(1))), mcl.ReadBuffer(16<<20))
	if err != nil {
		b.Fatal(err)
	}
	s, err := mcl.SubscribeSync(c, subOpts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	p, err := mcl.NewPublisher(c, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return s, p
}
