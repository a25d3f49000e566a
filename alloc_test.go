package mcl_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
)

// TestAllocations checks the steady-state cost of a round trip through the
// kernel: publishing a message and receiving it allocate nothing when it
// fits one datagram, and a constant independent of the fragment count when
// it does not; with Spin too.
func TestAllocations(t *testing.T) {
	t.Run("sleeps", func(t *testing.T) { allocations(t, conn(t, mcl.DefaultGroup)) })
	t.Run("spins", func(t *testing.T) { allocations(t, conn(t, mcl.DefaultGroup, mcl.Spin(50*time.Microsecond))) })
}

func allocations(t *testing.T, c *mcl.Connection) {
	pub := publisher(t, c)
	sub := syncSubscriber(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	roundTrip := func(payload []byte) func() {
		return func() {
			if err := pub.PublishRaw("alloc", payload); err != nil {
				t.Fatal(err)
			}
			if _, err := sub.Next(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 100 bytes are copied into the queue; 20000 stay in the receive
	// buffer, which goes to the queue and comes back.
	for _, size := range []int{100, 20_000} {
		if n := testing.AllocsPerRun(1000, roundTrip(bin(size))); n != 0 {
			t.Errorf("publish and receive of one datagram of %d bytes: %.2f allocations, want 0", size, n)
		}
	}
	perSize := map[int]float64{}
	for _, size := range []int{61_440, 200_000, 1_000_000} {
		perSize[size] = testing.AllocsPerRun(50, roundTrip(bin(size)))
	}
	t.Logf("fragmented allocations per message: %v", perSize)
	if perSize[61_440] != perSize[1_000_000] || perSize[200_000] != perSize[1_000_000] {
		t.Errorf("allocations depend on the fragment count: %v", perSize)
	}
}

// TestAllocationsMCL2 does the same in mcl/2, batched and express: a
// message that fits a datagram allocates nothing in steady state, and a
// batch of them neither. Large messages cost a constant, whatever their
// fragment count.
func TestAllocationsMCL2(t *testing.T) {
	for _, express := range []bool{false, true} {
		c := conn(t, mcl.DefaultGroup)
		opts := []mcl.PublishOption{mcl.DatagramSize(1452)}
		if express {
			opts = append(opts, mcl.Express())
		}
		pub := publisher2(t, c, opts...)
		// A short queue: each slot keeps its payload buffer, and the
		// first round through the ring allocates them.
		sub := syncSubscriber(t, c, mcl.QueueLimits(64, 64<<20))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		roundTrip := func(payload []byte, n int) func() {
			return func() {
				for range n {
					if err := pub.PublishRaw("alloc", payload); err != nil {
						t.Fatal(err)
					}
				}
				for range n {
					if _, err := sub.Next(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if n := testing.AllocsPerRun(1000, roundTrip(bin(100), 1)); n != 0 {
			t.Errorf("express %v: publish and receive of a 100-byte message: %.2f allocations, want 0", express, n)
		}
		if n := testing.AllocsPerRun(200, roundTrip(bin(60), 20)); n != 0 {
			t.Errorf("express %v: 20 messages of 60 bytes: %.2f allocations, want 0", express, n)
		}
		perSize := map[int]float64{}
		for _, size := range []int{20_000, 200_000, 1_000_000} {
			perSize[size] = testing.AllocsPerRun(20, roundTrip(bin(size), 1))
		}
		t.Logf("express %v: fragmented allocations per message: %v", express, perSize)
		if perSize[20_000] != perSize[1_000_000] || perSize[200_000] != perSize[1_000_000] {
			t.Errorf("express %v: allocations depend on the fragment count: %v", express, perSize)
		}
	}
}
