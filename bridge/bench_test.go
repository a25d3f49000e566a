package bridge

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mcl-go/mcl"
)

// BenchmarkBridgePair measures messages through a bridge pair (publisher
// on site A, bridge, NATS server, bridge, subscriber on site B): msgs/s
// of b.N 100-byte messages sent as fast as the publisher goes, and the
// one-way latency of 2000 messages sent 1 ms apart, against a NATS
// publisher and subscriber on the same server in the same run.
func BenchmarkBridgePair(b *testing.B) {
	srv := natsServer(b, nil)
	url := srv.ClientURL()
	a, bs := site(b, "239.192.50.1"), site(b, "239.192.50.2")
	ba := start(b, a, url)
	bb := start(b, bs, url)
	sub, err := mcl.SubscribeSync(bs, mcl.Topics("bench", "lat"))
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	pub := publisher(b, a)
	payload := make([]byte, 100)
	payload[0] = 0xc4 // msgpack bin 8
	payload[1] = 98

	// Latency through the bridges.
	lat := func(send func(stamp []byte) error, recv func() ([]byte, error)) (p50, p99 time.Duration) {
		var ds []time.Duration
		for i := range 2000 {
			binary.LittleEndian.PutUint64(payload[2:], uint64(time.Now().UnixNano()))
			if err := send(payload); err != nil {
				b.Fatal(err)
			}
			got, err := recv()
			if err != nil {
				b.Fatalf("message %d: %v", i, err)
			}
			ds = append(ds, time.Duration(time.Now().UnixNano()-int64(binary.LittleEndian.Uint64(got[2:]))))
			time.Sleep(time.Millisecond)
		}
		slices.Sort(ds)
		return ds[len(ds)/2], ds[len(ds)*99/100]
	}
	next := func() ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		m, err := sub.Next(ctx)
		if err != nil {
			return nil, err
		}
		return m.Payload, nil
	}
	bp50, bp99 := lat(func(p []byte) error { return pub.PublishRaw("lat", p) }, next)

	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	ns, err := nc.SubscribeSync("direct")
	if err != nil {
		b.Fatal(err)
	}
	nc2, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc2.Close()
	nc.Flush()
	np50, np99 := lat(func(p []byte) error { return nc2.Publish("direct", p) }, func() ([]byte, error) {
		m, err := ns.NextMsg(time.Second)
		if err != nil {
			return nil, err
		}
		return m.Data, nil
	})

	// Throughput.
	got := make(chan int)
	go func() {
		n := 0
		for n < b.N {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := sub.Next(ctx)
			cancel()
			if err != nil {
				break
			}
			n++
		}
		got <- n
	}()
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		if err := pub.PublishRaw("bench", payload); err != nil {
			b.Fatal(err)
		}
	}
	offered := time.Since(t0)
	n := <-got
	el := time.Since(t0)
	if n < b.N {
		el -= 2 * time.Second // the wait for more
	}
	b.ReportMetric(float64(b.N)/offered.Seconds(), "offered-msgs/s")
	b.ReportMetric(float64(n)/el.Seconds(), "delivered-msgs/s")
	b.ReportMetric(float64(b.N-n)/float64(b.N)*100, "%lost")
	if n < b.N {
		b.Logf("lost %d of %d: bridge A %+v; bridge B %+v; subscriber %+v", b.N-n, b.N, ba.Stats(), bb.Stats(), sub.Stats())
	}
	b.ReportMetric(float64(bp50.Microseconds()), "bridge-p50-µs")
	b.ReportMetric(float64(bp99.Microseconds()), "bridge-p99-µs")
	b.ReportMetric(float64(np50.Microseconds()), "nats-p50-µs")
	b.ReportMetric(float64(np99.Microseconds()), "nats-p99-µs")
}
