package sock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestAddrPort converts sockaddrs laid out by hand, as recvmmsg leaves
// them: the port in network byte order, an IPv4 sockaddr in the space of
// an IPv6 one.
func TestAddrPort(t *testing.T) {
	setPort := func(p *uint16, port uint16) {
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(p))[:], port)
	}
	inet6 := func(a string, port uint16, scope uint32) *unix.RawSockaddrInet6 {
		sa := &unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr(a).As16(), Scope_id: scope}
		setPort(&sa.Port, port)
		return sa
	}
	inet4 := func(a string, port uint16) *unix.RawSockaddrInet6 {
		var sa unix.RawSockaddrInet6
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family, sa4.Addr = unix.AF_INET, netip.MustParseAddr(a).As4()
		setPort(&sa4.Port, port)
		return &sa
	}
	unknown := inet6("fd6d:636c::2", 26000, 0)
	unknown.Family = unix.AF_UNIX

	for _, tc := range []struct {
		name string
		sa   *unix.RawSockaddrInet6
		want netip.AddrPort
	}{
		{"IPv6", inet6("fd6d:636c::2", 26000, 0), netip.MustParseAddrPort("[fd6d:636c::2]:26000")},
		{"IPv6 link-local, zone left out", inet6("fe80::1", 5, 2), netip.MustParseAddrPort("[fe80::1]:5")},
		{"IPv4", inet4("198.18.0.2", 0xfedc), netip.MustParseAddrPort("198.18.0.2:65244")},
		{"IPv4-mapped IPv6, unmapped", inet6("::ffff:198.18.0.2", 26000, 0), netip.MustParseAddrPort("198.18.0.2:26000")},
		{"unknown family", unknown, netip.AddrPort{}},
		{"zero sockaddr", &unix.RawSockaddrInet6{}, netip.AddrPort{}},
	} {
		// == tells an IPv4 address from the same one mapped into IPv6.
		if got := addrPort(tc.sa); got != tc.want {
			t.Errorf("%s: addrPort = %v, want %v", tc.name, got, tc.want)
		}
	}
	sa := inet6("::ffff:198.18.0.2", 26000, 0)
	if allocs := testing.AllocsPerRun(100, func() { _ = addrPort(sa) }); allocs != 0 {
		t.Errorf("addrPort allocated %v times", allocs)
	}
}

// TestBatchReadScatter sends datagrams of every length class relative to
// a scattered read's Head and Body through a real socket, all read in one
// batch (mixed with unscattered reads), and checks that the kernel put
// each part where Message says, wrote nothing past the datagram, and
// reported the length and sender.
func TestBatchReadScatter(t *testing.T) {
	for _, group := range []string{"[ff15::6d63:6c74]:26901", "239.192.0.77:26902"} {
		t.Run(group, func(t *testing.T) { testBatchReadScatter(t, group) })
	}
}

func testBatchReadScatter(t *testing.T, group string) {
	r, s := pair(t, group, 0)

	const head, body, unset = 7, 100, 0xee
	tests := []struct {
		name string
		size int
		body []byte // nil: no scatter
	}{
		{"shorter than Head", 3, make([]byte, body)},
		{"exactly Head", head, make([]byte, body)},
		{"into Body", head + 40, make([]byte, body)},
		{"exactly Head+Body", head + body, make([]byte, body)},
		{"longer than Head+Body", head + body + 1000, make([]byte, body)},
		{"largest", 65507, make([]byte, body)}, // the most an IPv4 UDP datagram holds
		{"empty Body", head + 50, []byte{}},
		{"no scatter", 500, nil},
	}
	ms := make([]Message, len(tests)+1) // one spare: a read may not fill it
	sent := make([][]byte, len(tests))
	for i, tc := range tests {
		ms[i] = Message{Buf: bytes.Repeat([]byte{unset}, 65536), Head: head, Body: tc.body}
		for j := range ms[i].Body {
			ms[i].Body[j] = unset
		}
		d := make([]byte, tc.size)
		for j := range d {
			d[j] = byte(i + j*7) // never long runs of unset
		}
		binary.BigEndian.PutUint16(d, uint16(i)) // which datagram it is
		sent[i] = d
		if err := s.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	ms[len(tests)] = Message{Buf: make([]byte, 65536)}

	// One batch should get them all; the loopback may hand them over a
	// little later, so read on (into the messages not yet filled) until
	// every datagram is in.
	for got := 0; got < len(tests); {
		r.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, err := r.ReadBatch(ms[got:])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read %d of %d datagrams", got, len(tests))
		}
		if err != nil {
			t.Fatal(err)
		}
		if k < 1 || got+k > len(tests) {
			t.Fatalf("ReadBatch = %d with %d of %d read", k, got, len(tests))
		}
		got += k
	}

	for i, tc := range tests {
		m, d := &ms[i], sent[i]
		if m.N != len(d) {
			t.Errorf("%s: N = %d, want %d", tc.name, m.N, len(d))
			continue
		}
		if m.Addr != s.LocalAddr() {
			t.Errorf("%s: Addr = %v, want the sender's %v", tc.name, m.Addr, s.LocalAddr())
		}
		if tc.body == nil {
			checkPart(t, tc.name+": Buf", m.Buf, d, unset)
			continue
		}
		// Where each part of d should have landed, and nothing after it.
		inHead := d[:min(len(d), head)]
		inBody := d[len(inHead):min(len(d), head+len(tc.body))]
		rest := d[len(inHead)+len(inBody):]
		checkPart(t, tc.name+": Buf[:Head]", m.Buf[:head], inHead, unset)
		checkPart(t, tc.name+": Body", m.Body, inBody, unset)
		checkPart(t, tc.name+": Buf[Head:]", m.Buf[head:], rest, unset)
		if !bytes.Equal(m.Datagram(), d) {
			t.Errorf("%s: Datagram() does not give back the datagram sent", tc.name)
		}
	}
}

// checkPart reports whether b starts with want and is left as unset after
// it, for as far as a datagram could have reached.
func checkPart(t *testing.T, what string, b, want []byte, unset byte) {
	t.Helper()
	if !bytes.Equal(b[:len(want)], want) {
		t.Errorf("%s: holds the wrong bytes", what)
	}
	for j, c := range b[len(want):] {
		if c != unset {
			t.Errorf("%s: byte %d past the %d expected was written (%#x)", what, len(want)+j, len(want), c)
			break
		}
	}
}
