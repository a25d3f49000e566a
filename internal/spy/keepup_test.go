package spy

import (
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
)

// TestKeepsUp floods 64-byte messages in the seed framing, flat out, as
// mcl bench's 64 B row does, into a Subscriber that feeds a spy Server:
// the Server counts every message delivered to it, none sampled away. How
// many the kernel dropped (none, here, at 96000 msg/s) is logged: it
// depends on the machine's load, so it is not asserted.
func TestKeepsUp(t *testing.T) {
	sandbox.Require(t)
	c, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(27911), mcl.ReadBuffer(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{})
	sub, err := mcl.Subscribe(c, func(m *mcl.Message) { srv.Add(m.Topic, m.Payload, m.Sender, m.Received) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := mcl.NewPublisher(c)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	payload := append([]byte{0xc4, 59}, make([]byte, 59)...)
	const n = 200_000
	start := time.Now()
	for i := range n {
		if err := pub.PublishRaw([]string{"a", "b/c", "d"}[i%3], payload); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for sub.Stats().Delivered+sub.Stats().KernelDrops < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	var counted uint64
	for _, r := range srv.Census().Snapshot(time.Now()) {
		counted += r.Messages
	}
	st := sub.Stats()
	t.Logf("%d sent in %v (%.0f msg/s); delivered %d, kernel drops %d, dropped %d; spy counted %d", n, elapsed, n/elapsed.Seconds(), st.Delivered, st.KernelDrops, st.Dropped, counted)
	if counted != st.Delivered || st.Delivered == 0 {
		t.Fatalf("the spy counted %d of the %d messages delivered", counted, st.Delivered)
	}
}
