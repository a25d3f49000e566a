package bench

import (
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
)

// BenchmarkThroughput1KB is for profiling the mcl path:
// go test -run=^$ -bench=Throughput1KB -cpuprofile cpu.out ./internal/bench
func BenchmarkThroughput1KB(b *testing.B) {
	sandbox.Require(b)
	c, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(29999))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r, err := throughputMCL(c, 1<<10, 1, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.MsgsPerSec, "msgs/s")
		b.ReportMetric(100*r.Loss, "loss%")
	}
}
