package wire_test

import (
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mcl-go/mcl/wire"
)

// unhex decodes hex written with spaces, as datagrams are written out in
// these tests.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// cat joins byte slices.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
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

// fragments splits payload the way a publisher does and decodes each
// datagram back into a Frame, so the tests go through the real encoder
// and decoder.
func fragments(t testing.TB, topic string, payload []byte) []wire.Frame {
	t.Helper()
	count := wire.FragmentCount(len(payload))
	frames := make([]wire.Frame, 0, count)
	for n := 1; n <= count; n++ {
		d := wire.AppendFragment(nil, topic, n, count, wire.Piece(payload, n))
		f, err := wire.Decode(d)
		if err != nil {
			t.Fatalf("decode fragment %d/%d: %v", n, count, err)
		}
		frames = append(frames, f)
	}
	return frames
}
