package reassembly_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/mcl-go/mcl/internal/reassembly"
	"github.com/mcl-go/mcl/wire"
)

var (
	t0      = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	sender1 = netip.MustParseAddrPort("[fe80::1]:40000")
	sender2 = netip.MustParseAddrPort("[fe80::1]:40001") // same host, other publisher
)

// TestMTU holds the package's piece size to the format's.
func TestMTU(t *testing.T) {
	if reassembly.MTU != wire.MTU {
		t.Errorf("MTU %d, wire.MTU %d", reassembly.MTU, wire.MTU)
	}
}

// payloadOfLen returns a well-formed msgpack value (a str) of exactly n
// bytes, n >= 1, with pseudo-random content so misplaced pieces show.
func payloadOfLen(n int, seed uint64) []byte {
	var hdr []byte
	switch {
	case n <= 32:
		hdr = []byte{0xa0 | byte(n-1)}
	case n-3 <= 0xffff:
		hdr = []byte{0xda, byte((n - 3) >> 8), byte(n - 3)}
	default:
		m := n - 5
		hdr = []byte{0xdb, byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
	}
	b := make([]byte, n)
	copy(b, hdr)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := len(hdr); i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// fragments splits payload the way a publisher does, through the real
// encoder and decoder.
func fragments(t testing.TB, topic string, payload []byte) []reassembly.Frame {
	t.Helper()
	count := wire.FragmentCount(len(payload))
	frames := make([]reassembly.Frame, 0, count)
	for n := 1; n <= count; n++ {
		f, err := wire.Decode(wire.AppendFragment(nil, topic, n, count, wire.Piece(payload, n)))
		if err != nil {
			t.Fatalf("decode fragment %d/%d: %v", n, count, err)
		}
		frames = append(frames, reassembly.Frame(f))
	}
	return frames
}

// feed adds frames in the given order and returns what the last Add
// returned; every earlier Add must store its fragment.
func feed(t *testing.T, r *reassembly.Reassembler, src netip.AddrPort, frames []reassembly.Frame, order []int) ([]byte, error) {
	t.Helper()
	for k, i := range order {
		got, err := r.Add(src, frames[i], t0)
		if k == len(order)-1 {
			return got, err
		}
		if got != nil || err != nil {
			t.Fatalf("fragment %d (%d of %d): Add = %d bytes, %v; want stored", frames[i].Index, k+1, len(order), len(got), err)
		}
	}
	return nil, nil
}
