package wire_test

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/mcl-go/mcl/wire"
)

// The golden datagrams below were produced by msgpack-python
// (packb(obj, use_bin_type=False), the old-spec packer Python 2 uses) and
// checked by hand against the msgpack spec.

func TestAppendMessageGolden(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		payload string // msgpack, hex
		want    string // hex
	}{
		{"small", "a", "a2 68 69", "92 a1 61 a2 68 69"},
		{"empty topic", "", "01", "92 a0 01"},
		{"topic 31 bytes is fixstr", strings.Repeat("x", 31), "c0",
			"92 bf" + strings.Repeat(" 78", 31) + " c0"},
		{"topic 32 bytes is str16, not str8", strings.Repeat("x", 32), "c0",
			"92 da 00 20" + strings.Repeat(" 78", 32) + " c0"},
		{"topic 40 bytes", strings.Repeat("x", 40), "a2 68 69",
			"92 da 00 28" + strings.Repeat(" 78", 40) + " a2 68 69"},
		{"topic 255 bytes is str16, not str8", strings.Repeat("y", 255), "00",
			"92 da 00 ff" + strings.Repeat(" 79", 255) + " 00"},
		{"non-UTF-8 topic", "\xff\xfe", "a2 c3 28", "92 a2 ff fe a2 c3 28"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := wire.AppendMessage(nil, tc.topic, unhex(t, tc.payload))
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Errorf("AppendMessage = % x\nwant            % x", got, want)
			}
		})
	}
}

func TestAppendMessageAppends(t *testing.T) {
	dst := []byte{0xee}
	got := wire.AppendMessage(dst, "a", []byte{0x01})
	if want := []byte{0xee, 0x92, 0xa1, 0x61, 0x01}; !bytes.Equal(got, want) {
		t.Errorf("got % x, want % x", got, want)
	}
}

func TestAppendStrHeaders(t *testing.T) {
	tests := []struct {
		n    int
		want string // header, hex
	}{
		{0, "a0"},
		{1, "a1"},
		{31, "bf"},
		{32, "da 00 20"},
		{255, "da 00 ff"},
		{256, "da 01 00"},
		{60000, "da ea 60"},
		{65535, "da ff ff"},
		{65536, "db 00 01 00 00"},
		{70000, "db 00 01 11 70"},
	}
	for _, tc := range tests {
		s := bytes.Repeat([]byte{'s'}, tc.n)
		got := wire.AppendStr(nil, s)
		want := cat(unhex(t, tc.want), s)
		if !bytes.Equal(got, want) {
			t.Errorf("AppendStr(len %d) header = % x, want %s", tc.n, got[:min(len(got), 5)], tc.want)
		}
	}
}

func TestAppendFragmentGolden(t *testing.T) {
	piece := bytes.Repeat([]byte{0}, wire.MTU)
	got := wire.AppendFragment(nil, "t", 1, 3, piece)
	want := cat(unhex(t, "94 a1 74 01 03 da ea 60"), piece)
	if !bytes.Equal(got, want) {
		t.Errorf("[t,1,3,60000 bytes] header = % x, want 94 a1 74 01 03 da ea 60", got[:8])
	}

	tests := []struct {
		n, count int
		piece    string
		want     string
	}{
		{200, 300, "z", "94 a1 74 cc c8 cd 01 2c a1 7a"},
		{127, 127, "", "94 a1 74 7f 7f a0"},
		{128, 65536, "", "94 a1 74 cc 80 ce 00 01 00 00 a0"},
		{1, math.MaxInt32, "", "94 a1 74 01 ce 7f ff ff ff a0"},
		{1, 1, "\xff", "94 a1 74 01 01 a1 ff"},
	}
	for _, tc := range tests {
		got := wire.AppendFragment(nil, "t", tc.n, tc.count, []byte(tc.piece))
		if want := unhex(t, tc.want); !bytes.Equal(got, want) {
			t.Errorf("AppendFragment(t, %d, %d) = % x, want % x", tc.n, tc.count, got, want)
		}
	}
}

func TestAppendFragmentUint64(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("needs 64-bit int")
	}
	count := uint64(1) << 32
	got := wire.AppendFragment(nil, "t", 1, int(count), nil)
	if want := unhex(t, "94 a1 74 01 cf 00 00 00 01 00 00 00 00 a0"); !bytes.Equal(got, want) {
		t.Errorf("AppendFragment(t, 1, 1<<32) = % x, want % x", got, want)
	}
}

func TestAppendFragmentPanics(t *testing.T) {
	for _, c := range [][2]int{{0, 1}, {2, 1}, {-1, 3}, {1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AppendFragment(n=%d, count=%d) did not panic", c[0], c[1])
				}
			}()
			wire.AppendFragment(nil, "t", c[0], c[1], nil)
		}()
	}
}

func TestMaxTopicFragmentFitsUDP(t *testing.T) {
	topic := strings.Repeat("t", wire.MaxTopic)
	piece := make([]byte, wire.MTU)
	// The largest integers the encoder can write, to bound the headers.
	d := wire.AppendFragment(nil, topic, math.MaxInt, math.MaxInt, piece)
	if len(d) > 65507 {
		t.Errorf("worst fragment datagram is %d bytes, over the IPv4 UDP limit 65507", len(d))
	}
	if len(d) > wire.MaxDatagram {
		t.Errorf("worst fragment datagram is %d bytes, over MaxDatagram", len(d))
	}
}

func TestCheckTopic(t *testing.T) {
	if err := wire.CheckTopic(strings.Repeat("t", wire.MaxTopic)); err != nil {
		t.Errorf("MaxTopic bytes: %v", err)
	}
	if err := wire.CheckTopic(""); err != nil {
		t.Errorf("empty: %v", err)
	}
	if err := wire.CheckTopic(strings.Repeat("t", wire.MaxTopic+1)); !errors.Is(err, wire.ErrTopicTooLong) {
		t.Errorf("MaxTopic+1 bytes: got %v, want ErrTopicTooLong", err)
	}
}

func TestFits(t *testing.T) {
	for _, topicLen := range []int{0, 1, 31, 32, 100, 65535, 65536} {
		topic := strings.Repeat("t", topicLen)
		for _, delta := range []int{-1, 0, 1} {
			payloadLen := wire.MTU - 1 - len(wire.AppendStr(nil, []byte(topic))) + delta
			if payloadLen < 0 {
				continue
			}
			payload := make([]byte, payloadLen)
			want := len(wire.AppendMessage(nil, topic, payload)) <= wire.MTU
			if got := wire.Fits(topic, payload); got != want {
				t.Errorf("Fits(topic %d, payload %d) = %v, want %v", topicLen, payloadLen, got, want)
			}
			if delta == 0 && !want {
				t.Errorf("datagram of exactly MTU bytes must fit (topic %d)", topicLen)
			}
		}
	}
}

func TestFragmentCount(t *testing.T) {
	tests := []struct{ len, want int }{
		{0, 1}, {1, 1}, {59999, 1}, {60000, 2}, {60001, 2},
		{119999, 2}, {120000, 3}, {1 << 20, 18},
	}
	for _, tc := range tests {
		if got := wire.FragmentCount(tc.len); got != tc.want {
			t.Errorf("FragmentCount(%d) = %d, want %d", tc.len, got, tc.want)
		}
	}
}

func TestPiece(t *testing.T) {
	tests := []struct {
		len      int
		wantLens []int
	}{
		{0, []int{0}},
		{1, []int{1}},
		{60000, []int{60000, 0}}, // exact multiple: empty last piece
		{60001, []int{60000, 1}},
		{120000, []int{60000, 60000, 0}},
		{150000, []int{60000, 60000, 30000}},
	}
	for _, tc := range tests {
		payload := payloadOfLen(max(tc.len, 1), 7)[:tc.len]
		count := wire.FragmentCount(tc.len)
		if count != len(tc.wantLens) {
			t.Fatalf("len %d: %d pieces, want %d", tc.len, count, len(tc.wantLens))
		}
		var joined []byte
		for n := 1; n <= count; n++ {
			p := wire.Piece(payload, n)
			if len(p) != tc.wantLens[n-1] {
				t.Errorf("len %d: piece %d is %d bytes, want %d", tc.len, n, len(p), tc.wantLens[n-1])
			}
			if cap(p) != len(p) {
				t.Errorf("len %d: piece %d has spare capacity", tc.len, n)
			}
			joined = append(joined, p...)
		}
		if !bytes.Equal(joined, payload) {
			t.Errorf("len %d: pieces do not join to the payload", tc.len)
		}
	}
	for _, n := range []int{0, 3} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Piece(60000 bytes, %d) did not panic", n)
				}
			}()
			wire.Piece(make([]byte, 60000), n)
		}()
	}
}

func TestAppendMessageAllocs(t *testing.T) {
	payload := payloadOfLen(1000, 1)
	dst := make([]byte, 0, 2000)
	allocs := testing.AllocsPerRun(100, func() {
		dst = wire.AppendMessage(dst[:0], "some/topic", payload)
	})
	if allocs != 0 {
		t.Errorf("AppendMessage with capacity: %v allocs, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		dst = wire.AppendFragment(dst[:0], "some/topic", 2, 3, payload)
	})
	if allocs != 0 {
		t.Errorf("AppendFragment with capacity: %v allocs, want 0", allocs)
	}
}

func TestIndexLen(t *testing.T) {
	// N = MaxInt admits every n; n = 1 takes one byte, so a header is
	// longer than n = 1's by IndexLen(n)-1. Values past int (2^31 and up
	// on 32-bit) are left out.
	base := len(wire.AppendFragmentHeader(nil, "t", 1, math.MaxInt, 10))
	for _, v := range []uint64{1, 127, 128, 255, 256, 65535, 65536, 1<<31 - 1, 1 << 31, 1<<32 - 1, 1 << 32, math.MaxInt64} {
		if v > math.MaxInt {
			continue
		}
		n := int(v)
		h := wire.AppendFragmentHeader(nil, "t", n, math.MaxInt, 10)
		if want := len(h) - base + 1; wire.IndexLen(n) != want {
			t.Errorf("IndexLen(%d) = %d, header says %d", n, wire.IndexLen(n), want)
		}
	}
}
