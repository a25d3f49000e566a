package sock

import (
	"bytes"
	"testing"
)

// TestDatagram scatters datagrams of every length class by hand, as the
// kernel does, and checks that Datagram puts each back together.
func TestDatagram(t *testing.T) {
	const head, body = 7, 100
	for _, n := range []int{0, 3, head, head + 1, head + body, head + body + 1, 65535} {
		d := make([]byte, n)
		for i := range d {
			d[i] = byte(i*31 + i/256)
		}
		m := Message{Buf: make([]byte, 65536), Head: head, Body: make([]byte, body), N: n}
		rest := copy(m.Buf[:head], d)
		rest += copy(m.Body, d[rest:])
		copy(m.Buf[head:], d[rest:])
		if got := m.Datagram(); !bytes.Equal(got, d) {
			t.Errorf("datagram of %d bytes put back together wrong", n)
		}
	}
	m := Message{Buf: []byte("whole"), N: 5}
	if got := m.Datagram(); string(got) != "whole" {
		t.Errorf("unscattered datagram = %q", got)
	}
}
