package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/mcl-go/mcl/wire"
)

func TestDecodeValid(t *testing.T) {
	piece60000 := bytes.Repeat([]byte{0x5a}, wire.MTU)
	tests := []struct {
		name      string
		datagram  []byte
		topic     string
		payload   []byte
		n, count  int
		isFragmnt bool
	}{
		{name: "small message", datagram: unhex(t, "92 a1 61 a2 68 69"),
			topic: "a", payload: unhex(t, "a2 68 69")},
		{name: "str16 topic of 40 bytes",
			datagram: unhex(t, "92 da 00 28"+strings.Repeat(" 78", 40)+" a2 68 69"),
			topic:    strings.Repeat("x", 40), payload: unhex(t, "a2 68 69")},
		{name: "str8 topic from a new-spec encoder", datagram: unhex(t, "92 d9 03 61 62 63 01"),
			topic: "abc", payload: []byte{0x01}},
		{name: "bin topic", datagram: unhex(t, "92 c4 01 61 01"),
			topic: "a", payload: []byte{0x01}},
		{name: "nil topic (Python default None)", datagram: unhex(t, "92 c0 a2 68 69"),
			topic: "", payload: unhex(t, "a2 68 69")},
		{name: "non-UTF-8 topic and payload", datagram: unhex(t, "92 a2 ff fe a2 c3 28"),
			topic: "\xff\xfe", payload: unhex(t, "a2 c3 28")},
		{name: "nested payload", datagram: unhex(t, "92 a1 61 82 a1 78 93 01 02 03 a1 79 c0"),
			topic: "a", payload: unhex(t, "82 a1 78 93 01 02 03 a1 79 c0")},
		{name: "array16 header with 2 elements", datagram: unhex(t, "dc 00 02 a1 61 01"),
			topic: "a", payload: []byte{0x01}},
		{name: "fragment [t,1,3,60000 bytes] with str16 piece",
			datagram: cat(unhex(t, "94 a1 74 01 03 da ea 60"), piece60000),
			topic:    "t", payload: piece60000, n: 1, count: 3, isFragmnt: true},
		{name: "n and N over 127 as uint8/uint16", datagram: unhex(t, "94 a1 74 cc c8 cd 01 2c a1 7a"),
			topic: "t", payload: []byte("z"), n: 200, count: 300, isFragmnt: true},
		{name: "n and N as signed ints", datagram: unhex(t, "94 a1 74 d0 01 d1 00 02 a0"),
			topic: "t", payload: []byte{}, n: 1, count: 2, isFragmnt: true},
		// 2^31-1, not 2^31: Count is an int, and a larger N is
		// ErrFragmentCount on 32-bit (see TestDecodeCountBeyondInt).
		{name: "huge N is for the reassembler to refuse", datagram: unhex(t, "94 a1 74 01 ce 7f ff ff ff a0"),
			topic: "t", payload: []byte{}, n: 1, count: math.MaxInt32, isFragmnt: true},
		{name: "Python 3 bin8 piece", datagram: unhex(t, "94 a1 74 01 01 c4 03 01 02 03"),
			topic: "t", payload: []byte{1, 2, 3}, n: 1, count: 1, isFragmnt: true},
		{name: "Python 3 bin16 piece", datagram: unhex(t, "94 a1 74 02 02 c5 00 02 ff fe"),
			topic: "t", payload: []byte{0xff, 0xfe}, n: 2, count: 2, isFragmnt: true},
		{name: "non-UTF-8 str piece", datagram: unhex(t, "94 a2 c3 28 01 01 a2 ff 00"),
			topic: "\xc3\x28", payload: []byte{0xff, 0x00}, n: 1, count: 1, isFragmnt: true},
		{name: "empty last piece", datagram: unhex(t, "94 c0 02 02 a0"),
			topic: "", payload: []byte{}, n: 2, count: 2, isFragmnt: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := wire.Decode(tc.datagram)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if string(f.Topic) != tc.topic {
				t.Errorf("Topic = %q, want %q", f.Topic, tc.topic)
			}
			if !bytes.Equal(f.Payload, tc.payload) {
				t.Errorf("Payload = % x, want % x", f.Payload, tc.payload)
			}
			if f.Index != tc.n || f.Count != tc.count || f.IsFragment() != tc.isFragmnt {
				t.Errorf("Index, Count, IsFragment = %d, %d, %v; want %d, %d, %v",
					f.Index, f.Count, f.IsFragment(), tc.n, tc.count, tc.isFragmnt)
			}
			topic, err := wire.Topic(tc.datagram)
			if err != nil || string(topic) != tc.topic {
				t.Errorf("Topic() = %q, %v; want %q", topic, err, tc.topic)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		datagram []byte
		want     error
	}{
		{"empty", nil, wire.ErrTruncated},
		{"str, not array", unhex(t, "a1 61"), wire.ErrNotArray},
		{"map, not array", unhex(t, "81 a1 61 01"), wire.ErrNotArray},
		{"reserved byte", unhex(t, "c1"), wire.ErrNotArray},
		{"array of 0", unhex(t, "90"), wire.ErrArrayLen},
		{"array of 3", unhex(t, "93 a1 61 01 02"), wire.ErrArrayLen},
		{"array32 claims 2^32-1 elements",
			cat(unhex(t, "dd ff ff ff ff"), make([]byte, 95)), wire.ErrArrayLen},
		{"array16 header cut", unhex(t, "dc 00"), wire.ErrTruncated},
		{"int topic", unhex(t, "92 01 a2 68 69"), wire.ErrTopicType},
		{"bool topic", unhex(t, "92 c3 a2 68 69"), wire.ErrTopicType},
		{"array topic", unhex(t, "92 91 a1 61 01"), wire.ErrTopicType},
		{"topic cut", unhex(t, "92 a5 61 62"), wire.ErrTruncated},
		{"str32 topic claims 4 GiB", unhex(t, "92 db ff ff ff ff 61"), wire.ErrTruncated},
		{"payload missing", unhex(t, "92 a1 61"), wire.ErrTruncated},
		{"payload cut", unhex(t, "92 a1 61 dc 00 05 01"), wire.ErrTruncated},
		{"payload array32 claims 2^32-1 elements",
			cat(unhex(t, "92 a1 61 dd ff ff ff ff"), make([]byte, 91)), wire.ErrTruncated},
		{"payload reserved byte", unhex(t, "92 a1 61 c1"), wire.ErrPayload},
		{"payload holds a reserved byte", unhex(t, "92 a1 61 92 01 c1"), wire.ErrPayload},
		{"bytes after message", unhex(t, "92 a1 61 a2 68 69 00"), wire.ErrTrailing},
		{"str n", unhex(t, "94 a1 74 a1 31 01 a0"), wire.ErrIndexType},
		{"float n", unhex(t, "94 a1 74 ca 3f 80 00 00 01 a0"), wire.ErrIndexType},
		{"nil n", unhex(t, "94 a1 74 c0 01 a0"), wire.ErrIndexType},
		{"str N", unhex(t, "94 a1 74 01 a1 31 a0"), wire.ErrCountType},
		{"float64 N", unhex(t, "94 a1 74 01 cb 3f f0 00 00 00 00 00 00 a0"), wire.ErrCountType},
		{"N = 0", unhex(t, "94 a1 74 01 00 a0"), wire.ErrFragmentCount},
		{"N = -1", unhex(t, "94 a1 74 01 ff a0"), wire.ErrFragmentCount},
		{"N = -2^63", unhex(t, "94 a1 74 01 d3 80 00 00 00 00 00 00 00 a0"), wire.ErrFragmentCount},
		{"N = 2^64-1", unhex(t, "94 a1 74 01 cf ff ff ff ff ff ff ff ff a0"), wire.ErrFragmentCount},
		{"n = 0", unhex(t, "94 a1 74 00 01 a0"), wire.ErrFragmentIndex},
		{"n > N", unhex(t, "94 a1 74 03 02 a0"), wire.ErrFragmentIndex},
		{"n = -1", unhex(t, "94 a1 74 ff 02 a0"), wire.ErrFragmentIndex},
		{"n = -128", unhex(t, "94 a1 74 d0 80 02 a0"), wire.ErrFragmentIndex},
		{"n = 2^64-1", unhex(t, "94 a1 74 cf ff ff ff ff ff ff ff ff 02 a0"), wire.ErrFragmentIndex},
		{"n cut", unhex(t, "94 a1 74 cd 01"), wire.ErrTruncated},
		{"int piece", unhex(t, "94 a1 74 01 01 01"), wire.ErrPieceType},
		{"nil piece", unhex(t, "94 a1 74 01 01 c0"), wire.ErrPieceType},
		{"array piece", unhex(t, "94 a1 74 01 01 91 a0"), wire.ErrPieceType},
		{"piece missing", unhex(t, "94 a1 74 01 01"), wire.ErrTruncated},
		{"piece cut", unhex(t, "94 a1 74 01 01 c5 00 03 01 02"), wire.ErrTruncated},
		{"bytes after fragment", unhex(t, "94 a1 74 01 01 a0 00"), wire.ErrTrailing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := wire.Decode(tc.datagram)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %+v, %v; want %v", f, err, tc.want)
			}
			if !errors.Is(err, wire.ErrMalformed) {
				t.Errorf("%v does not match ErrMalformed", err)
			}
			if f.Topic != nil || f.Payload != nil || f.Count != 0 {
				t.Errorf("failed Decode returned a non-zero Frame %+v", f)
			}
		})
	}
}

// TestDecodeCountBeyondInt checks the edge of what n and N can be: any
// value up to math.MaxInt decodes, one more cannot be held in Frame's int
// and is refused, on 32-bit (2^31) and 64-bit (2^63) alike.
func TestDecodeCountBeyondInt(t *testing.T) {
	uint64Datagram := func(n, count uint64) []byte {
		d := []byte{0x94, 0xa1, 't', 0xcf}
		d = binary.BigEndian.AppendUint64(d, n)
		d = append(d, 0xcf)
		d = binary.BigEndian.AppendUint64(d, count)
		return append(d, 0xa0)
	}
	const maxInt = uint64(math.MaxInt)
	for _, d := range [][]byte{uint64Datagram(1, maxInt), uint64Datagram(maxInt, maxInt)} {
		f, err := wire.Decode(d)
		if err != nil || f.Count != math.MaxInt {
			t.Errorf("Decode(% x) = %+v, %v; want Count = MaxInt", d, f, err)
		}
		if h, err := wire.DecodeFragmentHeader(d); err != nil || h.Count != math.MaxInt || h.Len != len(d) {
			t.Errorf("DecodeFragmentHeader(% x) = %+v, %v; want Count = MaxInt, Len %d", d, h, err, len(d))
		}
	}
	tests := []struct {
		name     string
		datagram []byte
		want     error
	}{
		{"N = MaxInt+1", uint64Datagram(1, maxInt+1), wire.ErrFragmentCount},
		{"n = MaxInt+1", uint64Datagram(maxInt+1, maxInt), wire.ErrFragmentIndex},
		{"n = N = MaxInt+1", uint64Datagram(maxInt+1, maxInt+1), wire.ErrFragmentIndex},
	}
	for _, tc := range tests {
		if f, err := wire.Decode(tc.datagram); !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode = %+v, %v; want %v", tc.name, f, err, tc.want)
		}
		if h, err := wire.DecodeFragmentHeader(tc.datagram); !errors.Is(err, tc.want) {
			t.Errorf("%s: DecodeFragmentHeader = %+v, %v; want %v", tc.name, h, err, tc.want)
		}
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	errs := []error{wire.ErrTruncated, wire.ErrNotArray, wire.ErrArrayLen,
		wire.ErrTopicType, wire.ErrIndexType, wire.ErrCountType,
		wire.ErrFragmentCount, wire.ErrFragmentIndex, wire.ErrPieceType,
		wire.ErrPayload, wire.ErrTrailing, wire.ErrPieceTooLong}
	for i, a := range errs {
		if !errors.Is(a, wire.ErrMalformed) {
			t.Errorf("%v is not ErrMalformed", a)
		}
		for j, b := range errs {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
	}
	for _, e := range []error{wire.ErrTopicTooLong, wire.ErrNotFragment, wire.ErrTooLarge, wire.ErrDuplicate} {
		if errors.Is(e, wire.ErrMalformed) {
			t.Errorf("%v should not be ErrMalformed", e)
		}
	}
}

func TestTopicErrors(t *testing.T) {
	tests := []struct {
		datagram string
		want     error
	}{
		{"", wire.ErrTruncated},
		{"a1 61", wire.ErrNotArray},
		{"93 a1 61 01 02", wire.ErrArrayLen},
		{"92 01 01", wire.ErrTopicType},
		{"92 a3 61", wire.ErrTruncated},
	}
	for _, tc := range tests {
		if _, err := wire.Topic(unhex(t, tc.datagram)); !errors.Is(err, tc.want) {
			t.Errorf("Topic(%s) error = %v, want %v", tc.datagram, err, tc.want)
		}
	}
	// Topic does not look at the payload.
	if topic, err := wire.Topic(unhex(t, "92 a1 61 c1")); err != nil || string(topic) != "a" {
		t.Errorf("Topic with a bad payload = %q, %v; want \"a\", nil", topic, err)
	}
}

// validFrames are well-formed datagrams of every shape, for the prefix
// test and as fuzz seeds.
func validFrames(t testing.TB) [][]byte {
	return [][]byte{
		unhex(t, "92 a1 61 a2 68 69"),
		unhex(t, "92 c0 a2 68 69"),
		unhex(t, "92 da 00 28"+strings.Repeat(" 78", 40)+" 82 a1 78 93 01 02 03 a1 79 cb 3f f0 00 00 00 00 00 00"),
		unhex(t, "94 a1 74 cc c8 cd 01 2c a1 7a"),
		unhex(t, "94 a1 74 01 ce 7f ff ff ff c5 00 03 01 02 03"), // N = 2^31-1: valid with a 32-bit int too
		unhex(t, "94 c4 01 74 d0 01 d1 00 02 db 00 00 00 02 ff fe"),
		wire.AppendFragment(nil, "topic", 2, 3, make([]byte, 300)),
	}
}

func TestDecodeEveryPrefixFails(t *testing.T) {
	for _, d := range validFrames(t) {
		if _, err := wire.Decode(d); err != nil {
			t.Fatalf("full datagram % x: %v", d, err)
		}
		for i := range len(d) {
			_, err := wire.Decode(d[:i])
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("prefix %d of % x: got %v, want a format error", i, d, err)
			}
			_, _ = wire.Topic(d[:i]) // must not panic
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, topic := range []string{"", "a", strings.Repeat("t", 31), strings.Repeat("t", 32), strings.Repeat("t", wire.MaxTopic)} {
		for _, size := range []int{1, 31, 32, 33, 1000, 59000} {
			payload := payloadOfLen(size, uint64(size))
			d := wire.AppendMessage(nil, topic, payload)
			f, err := wire.Decode(d)
			if err != nil {
				t.Fatalf("topic %d, payload %d: %v", len(topic), size, err)
			}
			if string(f.Topic) != topic || !bytes.Equal(f.Payload, payload) || f.IsFragment() {
				t.Errorf("topic %d, payload %d: round trip changed the message", len(topic), size)
			}
		}
		for _, size := range []int{0, 1, 100, 60000, 65535, 65536} {
			piece := payloadOfLen(size+1, 3)[:size]
			d := wire.AppendFragment(nil, topic, 7, 9, piece)
			f, err := wire.Decode(d)
			if err != nil {
				t.Fatalf("topic %d, piece %d: %v", len(topic), size, err)
			}
			if string(f.Topic) != topic || !bytes.Equal(f.Payload, piece) || f.Index != 7 || f.Count != 9 {
				t.Errorf("topic %d, piece %d: round trip changed the fragment", len(topic), size)
			}
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	frames := append(validFrames(t),
		cat(unhex(t, "dd ff ff ff ff"), make([]byte, 95)),
		cat(unhex(t, "92 a1 61 dd ff ff ff ff"), make([]byte, 91)),
		unhex(t, "94 a1 74 ca 3f 80 00 00 01 a0"),
		unhex(t, "94 a1 74 01 cf ff ff ff ff ff ff ff ff a0"),
		unhex(t, "92 a1 61 c1"),
	)
	for _, d := range frames {
		allocs := testing.AllocsPerRun(100, func() {
			_, _ = wire.Decode(d)
			_, _ = wire.Topic(d)
		})
		if allocs != 0 {
			t.Errorf("Decode(% x): %v allocs, want 0", d[:min(len(d), 12)], allocs)
		}
	}
}

// TestDecodeFragmentHeader checks the header-only decoder against Decode,
// on a prefix that stops where the piece starts.
func TestDecodeFragmentHeader(t *testing.T) {
	for _, tc := range []struct {
		n, count, size int
	}{{1, 2, wire.MTU}, {2, 2, 10}, {200, 300, wire.MTU}, {3, 3, 0}} {
		d := wire.AppendFragment(nil, "topic", tc.n, tc.count, bytes.Repeat([]byte{7}, tc.size))
		f, err := wire.Decode(d)
		if err != nil {
			t.Fatal(err)
		}
		hl := len(d) - len(f.Payload)
		h, err := wire.DecodeFragmentHeader(d[:hl])
		if err != nil || h.Len != hl || h.Index != tc.n || h.Count != tc.count || h.PieceLen != tc.size || string(h.Topic) != "topic" {
			t.Errorf("%+v: header %+v, %v; want length %d", tc, h, err, hl)
		}
		if _, err := wire.DecodeFragmentHeader(d[:hl-1]); err == nil {
			t.Errorf("%+v: a header cut short decodes", tc)
		}
	}
	if _, err := wire.DecodeFragmentHeader(wire.AppendMessage(nil, "t", []byte{1})); err != wire.ErrNotFragment {
		t.Errorf("whole message: %v, want ErrNotFragment", err)
	}
}
