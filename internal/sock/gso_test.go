package sock

import (
	"bytes"
	"testing"
)

// TestDatagrams takes reads apart: one datagram, coalesced ones of every
// length class, scattered across Buf and Body too, and stops when told.
func TestDatagrams(t *testing.T) {
	data := make([]byte, 17)
	for i := range data {
		data[i] = byte(i + 1)
	}
	split := func(seg int) [][]byte {
		var out [][]byte
		for b := data; len(b) > 0; b = b[min(seg, len(b)):] {
			out = append(out, b[:min(seg, len(b))])
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		segment    int
		head, body int // scatter: Head, len(Body); 0, 0: none
		want       [][]byte
	}{
		{"one datagram", 0, 0, 0, [][]byte{data}},
		{"short last", 5, 0, 0, split(5)},
		{"exact multiple", 17, 0, 0, [][]byte{data}},
		{"segment past N", 100, 0, 0, [][]byte{data}},
		{"one-byte datagrams", 1, 0, 0, split(1)},
		{"scattered", 5, 3, 4, split(5)},
		{"scattered, one datagram", 0, 3, 4, [][]byte{data}},
	} {
		m := Message{Buf: make([]byte, 64), N: len(data), Segment: tc.segment}
		if tc.body == 0 {
			copy(m.Buf, data)
		} else {
			// As the kernel scatters: Head bytes, then Body, then the rest.
			m.Head, m.Body = tc.head, make([]byte, tc.body)
			copy(m.Buf[:tc.head], data)
			copy(m.Body, data[tc.head:])
			copy(m.Buf[tc.head:], data[tc.head+tc.body:])
		}
		var got [][]byte
		for d := range m.Datagrams {
			if cap(d) != len(d) {
				t.Errorf("%s: datagram of %d bytes has capacity %d", tc.name, len(d), cap(d))
			}
			got = append(got, d)
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d datagrams; want %d", tc.name, len(got), len(tc.want))
			continue
		}
		for i := range got {
			if !bytes.Equal(got[i], tc.want[i]) {
				t.Errorf("%s: datagram %d = %v; want %v", tc.name, i, got[i], tc.want[i])
			}
		}
	}
	m := Message{Buf: data, N: len(data), Segment: 5}
	n := 0
	for range m.Datagrams {
		n++
		break
	}
	if n != 1 {
		t.Errorf("went on after break")
	}
}
