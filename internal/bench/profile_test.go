package bench

import (
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
)

// BenchmarkThroughput1KB and 1MB are for profiling the mcl path:
// go test -run=^$ -bench=Throughput1KB -cpuprofile cpu.out ./internal/bench
func BenchmarkThroughput1KB(b *testing.B)  { benchmarkThroughput(b, 1<<10) }
func BenchmarkThroughput1MB(b *testing.B)  { benchmarkThroughput(b, 1<<20) }
func BenchmarkThroughput60KB(b *testing.B) { benchmarkThroughput(b, 60<<10) }
func BenchmarkThroughput16KB(b *testing.B) { benchmarkThroughput(b, 16<<10) }

func benchmarkThroughput(b *testing.B, size int) {
	sandbox.Require(b)
	c, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(29999))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r, err := throughputMCL(c, size, 1, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.MsgsPerSec, "msgs/s")
		b.ReportMetric(100*r.Loss, "loss%")
	}
}
