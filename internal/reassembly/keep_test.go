package reassembly

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestKeepRecycle hands completed payloads out with Keep and back with
// Recycle, as a subscriber does: the payload kept survives later messages,
// and in steady state nothing is allocated.
func TestKeepRecycle(t *testing.T) {
	for _, size := range []int{1 << 20, 60 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { testKeepRecycle(t, size) })
	}
}

func testKeepRecycle(t *testing.T, size int) {
	r := New(Limits{})
	src := netip.MustParseAddrPort("[fd00::1]:1000")
	now := time.Unix(1, 0)
	frames := map[byte][]Frame{}
	for _, fill := range []byte{1, 2, 3} {
		p := append([]byte{0xc6, byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size)}, bytes.Repeat([]byte{fill}, size)...)
		n := len(p)/MTU + 1
		for i := 1; i <= n; i++ {
			piece := p[(i-1)*MTU : min(i*MTU, len(p))]
			frames[fill] = append(frames[fill], Frame{Topic: []byte("t"), Payload: piece, Index: i, Count: n})
		}
	}
	message := func(fill byte) []byte {
		var out []byte
		for _, f := range frames[fill] {
			var err error
			if out, err = r.Add(src, f, now); err != nil {
				t.Fatal(err)
			}
		}
		if out == nil {
			t.Fatal("message did not complete")
		}
		return out
	}
	kept := message(1)
	r.Keep(kept)
	if other := message(2); &other[0] == &kept[0] || kept[100] != 1 {
		t.Fatal("a kept payload was reused for the next message")
	}
	var held []byte
	allocs := testing.AllocsPerRun(20, func() {
		p := message(3)
		r.Keep(p)
		if held != nil {
			r.Recycle(held)
		}
		held = p
	})
	if allocs != 0 {
		t.Errorf("Keep and Recycle in steady state: %.1f allocations per message, want 0", allocs)
	}
	if _, b := r.Pending(); b != 0 {
		t.Errorf("Pending bytes %d after complete messages", b)
	}
}
