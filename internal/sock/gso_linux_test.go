package sock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mcl-go/mcl/sandbox"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// segCase is a WriteSegments call: pieces of these lengths (cycled until
// total bytes), cut into segment-byte datagrams.
type segCase struct {
	name    string
	pieces  []int
	total   int
	segment int
}

// segCases are the calls every WriteSegments test makes, for a Sender
// whose MaxDatagram is max.
func segCases(max int) []segCase {
	return []segCase{
		{"one datagram", []int{100}, 100, 1000},
		{"one byte", []int{1}, 1, 1},
		{"aligned header and piece", []int{12, 1440}, 20 * 1452, 1452},
		{"boundaries mid-segment", []int{13, 700}, 7 * 1000, 1000},
		{"short last segment", []int{13, 700}, 7*1000 + 17, 1000},
		{"last segment one byte", []int{5000}, 3*1452 + 1, 1452},
		{"empty pieces", []int{0, 9, 0, 0, 300, 0}, 5 * 777, 777},
		{"more segments than one send: by count", []int{20, 80}, 300 * 100, 100},
		{"more segments than one send: by bytes", []int{16, 1436}, 200*1452 + 99, 1452},
		{"one large slice", []int{1 << 20}, 1 << 20, 1452},
		{"segment of MaxDatagram", []int{64, 20000}, 3*max - 5, max},
		{"many pieces a segment", []int{1, 2, 3}, 40 * 600, 600},
	}
}

// build makes c's pieces, filled with random bytes, and the datagrams
// they should arrive as.
func (c segCase) build(seed uint64) (iov, want [][]byte) {
	rng := rand.New(rand.NewPCG(seed, uint64(c.total)))
	all := make([]byte, c.total)
	for i := range all {
		all[i] = byte(rng.Uint32())
	}
	for n, i := 0, 0; n < c.total; i++ {
		l := min(c.pieces[i%len(c.pieces)], c.total-n)
		iov = append(iov, all[n:n+l:n+l])
		n += l
	}
	iov = append(iov, nil) // an empty piece last
	for rest := all; len(rest) > 0; {
		d := min(c.segment, len(rest))
		want = append(want, rest[:d])
		rest = rest[d:]
	}
	return iov, want
}

// TestWriteSegmentsLayout lays WriteSegments' system calls out against a
// pretend kernel that checks each: with GSO, a send of at most the
// segments and bytes the kernel takes, every datagram but the last of
// the write segment bytes, at most maxIov iovecs; without, datagrams one
// a message. Nothing is sent; the kernel refusing GSO in its ways is
// pretended too.
func TestWriteSegmentsLayout(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	for _, k := range []struct {
		name     string
		gso      bool
		nIov     int    // iovecs a message; 0: maxIov
		segs     int    // the pretend kernel's UDP_MAX_SEGMENTS
		refuse   string // "EIO", "EINVAL", "EMSGSIZE": its answer to GSO
		wantGSO  bool   // GSO() after the first write
		wantSegs int
	}{
		{name: "GSO", gso: true, segs: 128, wantGSO: true, wantSegs: 128},
		{name: "GSO, old kernel", gso: true, segs: 64, wantGSO: true, wantSegs: 64},
		{name: "GSO, 4 iovecs", gso: true, nIov: 4, segs: 128, wantGSO: true, wantSegs: 128},
		{name: "GSO, 1 iovec", gso: true, nIov: 1, segs: 128, wantGSO: true, wantSegs: 128},
		{name: "GSO refused EIO", gso: true, segs: 128, refuse: "EIO", wantSegs: 128},
		{name: "GSO refused EINVAL", gso: true, segs: 128, refuse: "EINVAL", wantSegs: 128},
		{name: "GSO refused EMSGSIZE", gso: true, segs: 128, refuse: "EMSGSIZE", wantGSO: true, wantSegs: 128},
		{name: "fallback", segs: 128, wantSegs: 128},
		{name: "fallback, 4 iovecs", nIov: 4, segs: 128, wantSegs: 128},
	} {
		t.Run(k.name, func(t *testing.T) {
			io, err := newBatch(c, 0)
			if err != nil {
				t.Fatal(err)
			}
			s := &Sender{conn: c, io: io}
			s.seg.init(io, Config{Group: netip.MustParseAddrPort("239.192.0.1:1")})
			if s.seg.state != gsoUntried {
				t.Fatalf("the kernel has no UDP_SEGMENT option")
			}
			if s.MaxDatagram() != mtuPayload4 { // unconnected: the kernel does not say
				t.Errorf("MaxDatagram = %d", s.MaxDatagram())
			}
			if !k.gso {
				s.noGSO()
			}
			if k.nIov > 0 {
				s.seg.nIov = k.nIov
			}
			g := &s.seg
			var got [][]byte
			var segment, calls int
			g.sendGSO = func(uintptr) bool {
				calls++
				g.b.n, g.b.errno = 0, 0
				iovs := unsafe.Slice(g.msg.Iov, g.msg.Iovlen)
				if len(iovs) > g.nIov || len(iovs) == 0 {
					t.Fatalf("GSO send of %d iovecs", len(iovs))
				}
				oob := unsafe.Slice(g.msg.Control, g.msg.Controllen)
				h, data, _, err := unix.ParseOneSocketControlMessage(oob)
				if err != nil || h.Level != unix.SOL_UDP || h.Type != unix.UDP_SEGMENT || len(data) != 2 {
					t.Fatalf("GSO send with control message %x", oob)
				}
				if size := int(binary.NativeEndian.Uint16(data)); size != segment {
					t.Fatalf("GSO send of segment %d; want %d", size, segment)
				}
				var b []byte
				for _, v := range iovs {
					b = append(b, unsafe.Slice(v.Base, v.Len)...)
				}
				n := (len(b) + segment - 1) / segment
				switch {
				case k.refuse == "EIO":
					g.b.errno = unix.EIO
				case k.refuse == "EINVAL" && n > 1:
					g.b.errno = unix.EINVAL
				case k.refuse == "EMSGSIZE":
					g.b.errno = unix.EMSGSIZE
				case n > k.segs:
					g.b.errno = unix.EINVAL
				case len(b) > 65507:
					t.Fatalf("GSO send of %d bytes", len(b))
				}
				if g.b.errno != 0 {
					return true
				}
				for len(b) > 0 {
					d := min(segment, len(b))
					got = append(got, b[:d])
					b = b[d:]
				}
				g.b.n = n * segment
				return true
			}
			g.sendMM = func(uintptr) bool {
				calls++
				// Take at most 7 at a time, as a kernel may.
				n := min(g.count, 7)
				iovs := 0
				for _, m := range g.hdrs[:g.off+g.count] {
					iovs += int(m.Hdr.Iovlen)
				}
				if iovs > g.nIov {
					t.Fatalf("sendmmsg of %d iovecs in all", iovs)
				}
				for _, m := range g.hdrs[g.off : g.off+n] {
					var b []byte
					for _, v := range unsafe.Slice(m.Hdr.Iov, m.Hdr.Iovlen) {
						b = append(b, unsafe.Slice(v.Base, v.Len)...)
					}
					got = append(got, b)
				}
				g.b.n, g.b.errno = n, 0
				return true
			}
			for i, tc := range segCases(s.MaxDatagram()) {
				iov, want := tc.build(uint64(i))
				got, segment, calls = got[:0], tc.segment, 0
				if err := s.WriteSegments(iov, tc.segment); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if len(got) != len(want) {
					t.Fatalf("%s: %d datagrams; want %d", tc.name, len(got), len(want))
				}
				for j := range want {
					if !bytes.Equal(got[j], want[j]) {
						t.Fatalf("%s: datagram %d of %d differs", tc.name, j, len(want))
					}
				}
				// With few pieces a datagram, iovecs are not what limits a
				// call.
				fewPieces := k.nIov == 0 && tc.name != "many pieces a segment"
				if k.gso && k.refuse == "" && fewPieces {
					per := min(k.segs, 65507/tc.segment)
					wantCalls := (len(want) + per - 1) / per
					if tc.name == "more segments than one send: by count" && k.segs < 128 {
						wantCalls++ // the first send of more than 64, refused by an old kernel
					}
					if calls != wantCalls {
						t.Errorf("%s: %d system calls; want %d", tc.name, calls, wantCalls)
					}
				}
				if !k.gso && fewPieces && calls != (len(want)+6)/7 {
					t.Errorf("%s: %d calls of sendmmsg for %d datagrams", tc.name, calls, len(want))
				}
				if iovs := unsafe.Slice(&g.iovs[:1][0], maxIov); !allZero(iovs) {
					t.Errorf("%s: iovecs left pointing at the caller's bytes", tc.name)
				}
			}
			if s.GSO() != k.wantGSO || g.segs != k.wantSegs {
				t.Errorf("GSO() = %v, segments a send %d; want %v, %d", s.GSO(), g.segs, k.wantGSO, k.wantSegs)
			}
		})
	}
}

func allZero(iovs []unix.Iovec) bool {
	for _, v := range iovs {
		if v != (unix.Iovec{}) {
			return false
		}
	}
	return true
}

func TestWriteSegmentsErrors(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io, err := newBatch(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sender{conn: c, io: io}
	s.seg.init(io, Config{Group: netip.MustParseAddrPort("239.192.0.1:1")})
	s.seg.sendGSO = func(uintptr) bool { t.Fatal("sent"); return true }
	s.seg.sendMM = s.seg.sendGSO
	for _, tc := range []struct {
		iov     [][]byte
		segment int
	}{
		{[][]byte{{1}}, 0},
		{[][]byte{{1}}, -1},
		{[][]byte{{1}}, 65508},
		{nil, 100},
		{[][]byte{{}, nil}, 100},
	} {
		if err := s.WriteSegments(tc.iov, tc.segment); !errors.Is(err, ErrSegment) {
			t.Errorf("WriteSegments(%d pieces, %d) = %v", len(tc.iov), tc.segment, err)
		}
	}
}

// segSender opens, in the sandbox network, a Sender of cfg (its Group and
// Hops, and, unset, the sandbox interface and loopback), closed with the
// test.
func segSender(t testing.TB, cfg Config) *Sender {
	t.Helper()
	n := sandbox.Require(t)
	if cfg.Interface == nil {
		cfg.Interface = mustIface(t, n.Iface)
		cfg.Loopback = true
	}
	cfg.Hops = 1
	s, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func segReceiver(t testing.TB, cfg Config) *Receiver {
	t.Helper()
	sandbox.Require(t)
	r, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustIface(t testing.TB, name string) *net.Interface {
	t.Helper()
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return ifi
}

// readSegments reads until want's datagrams are in, and a little longer,
// and checks they arrived as sent, from s, in order, and no more. It
// returns how many reads held more than one datagram, and the most one
// held.
func readSegments(t *testing.T, r *Receiver, s *Sender, want [][]byte, what string) (coalesced, most int) {
	t.Helper()
	ms := make([]Message, 64)
	for i := range ms {
		ms[i].Buf = make([]byte, 65536)
	}
	got, drops := 0, r.KernelDrops()
	for deadline := 5 * time.Second; ; {
		r.SetReadDeadline(time.Now().Add(deadline))
		n, err := r.ReadBatch(ms)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if got < len(want) {
				t.Errorf("%s: %d of %d datagrams arrived", what, got, len(want))
			}
			return coalesced, most
		}
		if err != nil {
			t.Fatal(err)
		}
		if d := r.KernelDrops(); d != drops {
			// The tests send up to 1 MB at once, and read it afterwards.
			t.Fatalf("%s: the kernel dropped %d datagrams: a receive buffer of %d bytes was granted; raise net.core.rmem_max to 4 MB",
				what, d-drops, r.ReadBufferSize())
		}
		for _, m := range ms[:n] {
			if m.Addr != s.LocalAddr() {
				t.Errorf("%s: from %v, not the sender %v", what, m.Addr, s.LocalAddr())
			}
			k := 0
			for d := range m.Datagrams {
				k++
				if got >= len(want) {
					t.Errorf("%s: datagram %d of %d bytes; %d were sent", what, got, len(d), len(want))
				} else if !bytes.Equal(d, want[got]) {
					t.Errorf("%s: datagram %d of %d: %d bytes, want %d, or bytes differ", what, got, len(want), len(d), len(want[got]))
				}
				got++
			}
			if k > 1 {
				coalesced++
			}
			most = max(most, k)
		}
		if got >= len(want) {
			deadline = 50 * time.Millisecond // anything more is wrong
		}
	}
}

// TestWriteSegments sends every segCase to a receiver through the
// kernel, with GSO where it has it and without, over IPv4 and IPv6.
func TestWriteSegments(t *testing.T) {
	for _, group := range []string{"239.192.0.78:26910", "[ff15::6d63:6c74]:26911"} {
		for _, gso := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s GSO %v", group, gso), func(t *testing.T) {
				testWriteSegments(t, netip.MustParseAddrPort(group), gso)
			})
		}
	}
}

func testWriteSegments(t *testing.T, group netip.AddrPort, gso bool) {
	n := sandbox.Require(t)
	r, s := pair(t, group.String(), 8<<20)
	if want := n.MTU - 28; group.Addr().Is6() {
		want = n.MTU - 48
		if s.MaxDatagram() != want {
			t.Errorf("MaxDatagram = %d; want %d", s.MaxDatagram(), want)
		}
	} else if s.MaxDatagram() != want {
		t.Errorf("MaxDatagram = %d; want %d", s.MaxDatagram(), want)
	}
	if !gso {
		s.noGSO()
	} else if !s.GSO() {
		t.Logf("uname %s: no UDP_SEGMENT", uname())
	}
	for i, tc := range segCases(s.MaxDatagram()) {
		iov, want := tc.build(uint64(i))
		calls, sure := s.seg.calls, s.seg.sure
		if err := s.WriteSegments(iov, tc.segment); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		calls = s.seg.calls - calls
		if gso && s.GSO() && tc.name != "many pieces a segment" {
			per := min(s.seg.segs, s.seg.limit/tc.segment)
			want := (len(want) + per - 1) / per
			if !sure && s.seg.sure && s.seg.segs == oldGSOSegs {
				want++ // this kernel refused more than 64
			}
			if calls != want {
				t.Errorf("%s: %d system calls, want %d", tc.name, calls, want)
			}
		}
		readSegments(t, r, s, want, tc.name)
	}
	if gso && !s.GSO() {
		t.Errorf("uname %s: the kernel refused GSO", uname())
	}
	if gso {
		t.Logf("GSO: %v, up to %d segments a send (known: %v)", s.GSO(), s.seg.segs, s.seg.sure)
	}
}

func uname() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// TestMaxDatagram1500 sets the sandbox links' MTU to 1500 for a while:
// MaxDatagram follows it, GSO sends datagrams of MaxDatagram bytes, and
// larger segments go out fragmented, and arrive whole.
func TestMaxDatagram1500(t *testing.T) {
	n := sandbox.Require(t)
	var links []netlink.Link
	for _, name := range []string{n.Iface, n.Peer} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		links = append(links, l)
	}
	for _, l := range links {
		if err := netlink.LinkSetMTU(l, 1500); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, l := range links {
			if err := netlink.LinkSetMTU(l, n.MTU); err != nil {
				t.Errorf("restoring the MTU of %s: %v", l.Attrs().Name, err)
			}
		}
	})
	for _, tc := range []struct {
		group string
		max   int
	}{
		{"239.192.0.79:26912", 1472},
		{"[ff15::6d63:6c75]:26913", 1452},
	} {
		r, s := pair(t, tc.group, 8<<20)
		if s.MaxDatagram() != tc.max {
			t.Errorf("%s: MaxDatagram = %d; want %d", tc.group, s.MaxDatagram(), tc.max)
		}
		for i, c := range []struct {
			segCase
			calls int
		}{
			{segCase{"MaxDatagram", []int{16, 1000}, 100*tc.max + 3, tc.max}, 3}, // GSO, 45 a send
			{segCase{"fragmented", []int{16, 1000}, 10*4000 + 3, 4000}, 1},       // sendmmsg
		} {
			iov, want := c.build(uint64(i))
			calls := s.seg.calls
			if err := s.WriteSegments(iov, c.segment); err != nil {
				t.Fatalf("%s %s: %v", tc.group, c.name, err)
			}
			if calls = s.seg.calls - calls; calls != c.calls {
				t.Errorf("%s %s: %d datagrams in %d system calls; want %d", tc.group, c.name, len(want), calls, c.calls)
			}
			readSegments(t, r, s, want, tc.group+" "+c.name)
		}
		if !s.GSO() {
			t.Errorf("%s: GSO refused at MTU 1500", tc.group)
		}
	}
}

// TestParseControlGRO reads a UDP_GRO control message laid out by hand
// among the others.
func TestParseControlGRO(t *testing.T) {
	cmsg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.CmsgSpace(len(data)))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		copy(b[unix.CmsgLen(0):], data)
		return b
	}
	gro := cmsg(unix.SOL_UDP, unix.UDP_GRO, binary.NativeEndian.AppendUint32(nil, 1452))
	drops := cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, binary.NativeEndian.AppendUint32(nil, 7))
	ts := cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, binary.NativeEndian.AppendUint64(binary.NativeEndian.AppendUint64(nil, 3), 4))
	all := append(append(append([]byte(nil), gro...), ts...), drops...)
	if len(all) > oobSize {
		t.Errorf("the kernel's three control messages take %d bytes; oobSize is %d", len(all), oobSize)
	}
	for _, tc := range []struct {
		name    string
		oob     []byte
		drops   uint32
		stamp   int64
		segment int
	}{
		{"GRO alone", gro, 0, 0, 1452},
		{"all three", all, 7, 3e9 + 4, 1452},
		{"GRO last", append(append([]byte(nil), drops...), gro...), 7, 0, 1452},
		{"UDP_GRO at another level", cmsg(unix.SOL_SOCKET, unix.UDP_GRO, binary.NativeEndian.AppendUint32(nil, 1452)), 0, 0, 0},
		{"short", cmsg(unix.SOL_UDP, unix.UDP_GRO, []byte{1, 2}), 0, 0, 0},
	} {
		d, s, seg := parseControl(tc.oob)
		if d != tc.drops || s != tc.stamp || seg != tc.segment {
			t.Errorf("%s: parseControl = %d, %d, %d; want %d, %d, %d", tc.name, d, s, seg, tc.drops, tc.stamp, tc.segment)
		}
	}
}

// TestGRO sends runs of datagrams with GSO and without to GRO receivers:
// on the sending link, which gets the kernel's multicast loopback copy,
// and on the peer, which gets the copy sent through the veth pair. What
// arrives must be the datagrams sent, coalesced or not; how many reads
// the kernel coalesced is logged.
func TestGRO(t *testing.T) {
	n := sandbox.Require(t)
	for _, group := range []string{"239.192.0.80:26914", "[ff15::6d63:6c76]:26915"} {
		g := netip.MustParseAddrPort(group)
		for _, path := range []string{"loopback", "veth"} {
			for _, gso := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s %s GSO %v", group, path, gso), func(t *testing.T) {
					ifi := mustIface(t, n.Iface)
					rcfg := Config{Group: g, Interface: ifi, ReadBuffer: 8 << 20, GRO: true}
					scfg := Config{Group: g, Interface: ifi, Loopback: true}
					if path == "veth" {
						rcfg.Interface = mustIface(t, n.Peer)
						scfg.Loopback = false
					}
					r := segReceiver(t, rcfg)
					s := segSender(t, scfg)
					if !gso {
						s.noGSO()
					}
					c := segCase{"run", []int{16, 1436}, 300 * 1452, 1452}
					iov, want := c.build(1)
					if err := s.WriteSegments(iov, c.segment); err != nil {
						t.Fatal(err)
					}
					coalesced, most := readSegments(t, r, s, want, c.name)
					t.Logf("%d datagrams: %d reads coalesced, up to %d datagrams a read", len(want), coalesced, most)
				})
			}
		}
	}
}

// BenchmarkWriteSegments sends 1 MB in 1452-byte datagrams, 16-byte
// header and 1436-byte piece each, to a receiver on the sending link, with
// GSO and without. "send" sends as fast as WriteSegments returns, the
// receiver reading what it can (%received says how much); "delivered"
// waits after each MB until the receiver has read it all, so it measures
// what gets through; "+GRO" has the receiver take coalesced reads
// (Config.GRO).
func BenchmarkWriteSegments(b *testing.B) {
	for _, group := range []string{"239.192.0.81:26916", "[ff15::6d63:6c77]:26917"} {
		for _, mode := range []string{"send", "delivered", "send+GRO", "delivered+GRO"} {
			for _, gso := range []bool{true, false} {
				name := "fallback"
				if gso {
					name = "GSO"
				}
				b.Run(fmt.Sprintf("%s/%s/%s", group, mode, name), func(b *testing.B) {
					wait, gro := strings.CutSuffix(mode, "+GRO")
					benchWriteSegments(b, netip.MustParseAddrPort(group), gso, wait == "delivered", gro)
				})
			}
		}
	}
}

func benchWriteSegments(b *testing.B, group netip.AddrPort, gso, wait, gro bool) {
	n := sandbox.Require(b)
	ifi := mustIface(b, n.Iface)
	r := segReceiver(b, Config{Group: group, Interface: ifi, ReadBuffer: 8 << 20, GRO: gro})
	s := segSender(b, Config{Group: group, Interface: ifi, Loopback: true})
	if !gso {
		s.noGSO()
	}
	const size, segment, head = 1 << 20, 1452, 16
	payload := Buffer(size)
	header := make([]byte, head)
	var iov [][]byte
	for p := payload; len(p) > 0; {
		k := min(segment-head, len(p))
		iov = append(iov, header, p[:k])
		p = p[k:]
	}
	datagrams := (size + segment - head - 1) / (segment - head)

	var target atomic.Int64 // datagrams read or dropped that the sender waits for
	reached := make(chan struct{}, 1)
	done := make(chan int)
	go func() {
		ms := make([]Message, 64)
		for i := range ms {
			ms[i].Buf = make([]byte, 65536)
		}
		got := 0
		for {
			k, err := r.ReadBatch(ms)
			if err != nil {
				done <- got
				return
			}
			for _, m := range ms[:k] {
				got++
				if m.Segment > 0 {
					got += (m.N - 1) / m.Segment
				}
			}
			if t := target.Load(); t > 0 && int64(got)+int64(r.KernelDrops()) >= t {
				target.Store(0)
				reached <- struct{}{}
			}
		}
	}()
	b.SetBytes(size)
	b.ReportAllocs()
	calls, timeouts := s.seg.calls, 0
	timer := time.NewTimer(time.Hour)
	b.ResetTimer()
	for i := range b.N {
		if wait {
			target.Store(int64(i+1) * int64(datagrams))
		}
		if err := s.WriteSegments(iov, segment); err != nil {
			b.Fatal(err)
		}
		if wait {
			timer.Reset(time.Second)
			select {
			case <-reached:
			case <-timer.C:
				timeouts++
			}
		}
	}
	b.StopTimer()
	time.Sleep(20 * time.Millisecond)
	r.Close()
	got := <-done
	b.ReportMetric(float64(s.seg.calls-calls)/float64(b.N), "calls/op")
	b.ReportMetric(100*float64(got)/float64(b.N*datagrams), "%received")
	if !s.GSO() && gso {
		b.Errorf("GSO refused")
	}
	if timeouts > 0 {
		b.Errorf("%d MB of %d did not all arrive within a second", timeouts, b.N)
	}
}

// TestWriteSegmentsAllocs checks that WriteSegments allocates nothing once
// it has sent, with GSO and without.
func TestWriteSegmentsAllocs(t *testing.T) {
	for _, gso := range []bool{true, false} {
		_, s := pair(t, "[ff15::6d63:6c78]:26918", 8<<20) // read by no one
		if !gso {
			s.noGSO()
		}
		iov, _ := segCase{"", []int{13, 700}, 100*1000 + 17, 1000}.build(1)
		if err := s.WriteSegments(iov, 1000); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(10, func() {
			if err := s.WriteSegments(iov, 1000); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("GSO %v: WriteSegments allocated %v times", gso, allocs)
		}
	}
}
