package bench

import (
	"context"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
)

// BenchmarkThroughput1KB and 1MB are for profiling the mcl path:
// go test -run=^$ -bench=Throughput1KB -cpuprofile cpu.out ./internal/bench
func BenchmarkThroughput1KB(b *testing.B)  { benchmarkThroughput(b, 1<<10, seedVariant) }
func BenchmarkThroughput1MB(b *testing.B)  { benchmarkThroughput(b, 1<<20, seedVariant) }
func BenchmarkThroughput60KB(b *testing.B) { benchmarkThroughput(b, 60<<10, seedVariant) }
func BenchmarkThroughput16KB(b *testing.B) { benchmarkThroughput(b, 16<<10, seedVariant) }

// The mcl/2 rows' mcl side, batched, in datagrams of the path's size and
// of 1452 bytes:
// go test -run=^$ -bench=Throughput64BMCL2 -cpuprofile cpu.out ./internal/bench
func BenchmarkThroughput64BMCL2(b *testing.B) { benchmarkThroughput(b, 64, mcl2Variant(0)) }
func BenchmarkThroughput64BMCL2Ethernet(b *testing.B) {
	benchmarkThroughput(b, 64, mcl2Variant(1452))
}
func BenchmarkThroughput1MBMCL2(b *testing.B) { benchmarkThroughput(b, 1<<20, mcl2Variant(0)) }
func BenchmarkThroughput1MBMCL2Ethernet(b *testing.B) {
	benchmarkThroughput(b, 1<<20, mcl2Variant(1452))
}

var seedVariant = Variant{Framing: FramingSeed}

func mcl2Variant(datagram int) Variant { return Variant{Framing: FramingMCL2, DatagramSize: datagram} }

func benchmarkThroughput(b *testing.B, size int, v Variant) {
	sandbox.Require(b)
	c, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(29999))
	if err != nil {
		b.Fatal(err)
	}
	s, err := sideMCL(c, flow{size: size, subs: 1, v: v})
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	for b.Loop() {
		s.tally = tally{}
		s.cs[0].msgs.Store(0)
		if err := s.turn(size, time.Second); err != nil {
			b.Fatal(err)
		}
		r := s.result(size)
		b.ReportMetric(r.MsgsPerSec, "msgs/s")
		b.ReportMetric(100*r.Loss, "loss%")
	}
}

// BenchmarkLatency64B runs the 64 B ping-pong row, mcl and baseline taking
// turns, and reports both p50s and the ratios of p50 and p99:
// go test -run=^$ -bench=Latency -count=5 ./internal/bench
func BenchmarkLatency64B(b *testing.B)  { benchmarkLatency(b, 64) }
func BenchmarkLatency16KB(b *testing.B) { benchmarkLatency(b, 16<<10) }

func benchmarkLatency(b *testing.B, size int) {
	sandbox.Require(b)
	conns := make([]*mcl.Connection, 4)
	for i := range conns {
		c, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(29990+i))
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	for b.Loop() {
		m, base, err := latencyRow(context.Background(), conns[0], conns[1], conns[2], conns[3], size, Default.Rounds)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(m.P50.Microseconds()), "mcl-p50-µs")
		b.ReportMetric(float64(base.P50.Microseconds()), "base-p50-µs")
		b.ReportMetric(float64(m.P50)/float64(base.P50), "ratio-p50")
		b.ReportMetric(float64(m.P99)/float64(base.P99), "ratio-p99")
	}
}
