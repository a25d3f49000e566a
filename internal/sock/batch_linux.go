package sock

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batch moves datagrams with recvmmsg and sendmmsg. It is written against
// x/sys/unix rather than through x/net's ReadBatch and WriteBatch because
// those allocate a net.Addr per datagram and scratch space per call; here
// every structure is allocated once and reused, so a batch costs no
// allocation. A batch is used by one goroutine at a time.
type batch struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for IPv4 too
	oob   []byte

	scratch []byte // datagrams copied to dodge slow kernel copies (see dodge)

	spin spinner // whether an empty read tries again (Config.Spin)

	// In and out of the system call closures, which are made once so that
	// passing them to RawConn.Read and Write allocates nothing.
	off, count, n int
	errno         syscall.Errno
	recv, send    func(fd uintptr) bool
	sendOne       func(fd uintptr) bool
}

// newBatch sets up batch I/O on c; reads spin for up to spin (see
// Config.Spin).
func newBatch(c *net.UDPConn, spin time.Duration) (*batch, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &batch{rc: rc, spin: spinner{spin: spin, now: time.Now}}
	b.recv = b.recvmmsg
	b.send = b.sendmmsg
	b.sendOne = b.sendmsg
	return b, nil
}

func (b *batch) grow(n int) {
	if len(b.hdrs) >= n {
		return
	}
	b.hdrs = make([]unix.Mmsghdr, n)
	b.iovs = make([]unix.Iovec, 3*n)
	b.names = make([]unix.RawSockaddrInet6, n)
	b.oob = make([]byte, n*oobSize)
}

// recvmmsg and sendmmsg move b.count datagrams from b.off; sendmsg sends
// the one of b.hdrs[0]. recvmmsg spins as Config.Spin says, letting the
// process's other goroutines run every spinYield tries: with every P
// held by a spinning read, a goroutine that is woken, such as the other
// end of a round trip in the same process, would wait for a spin to end.
func (b *batch) recvmmsg(fd uintptr) bool {
	for {
		if b.call(unix.SYS_RECVMMSG, fd, unsafe.Pointer(&b.hdrs[b.off]), b.count) {
			if b.errno == 0 && b.spin.spin > 0 {
				b.spin.arrived(b.spin.now())
			}
			return true
		}
		if b.spin.spin == 0 || !b.spin.again(b.spin.now()) {
			return false
		}
		if b.spin.spins%spinYield == 0 {
			runtime.Gosched()
		}
	}
}

// spinYield is how many tries of a spinning read go by between yields
// to other goroutines: a try takes about half a microsecond.
const spinYield = 16

func (b *batch) sendmmsg(fd uintptr) bool {
	return b.call(unix.SYS_SENDMMSG, fd, unsafe.Pointer(&b.hdrs[b.off]), b.count)
}

func (b *batch) sendmsg(fd uintptr) bool {
	return b.call(unix.SYS_SENDMSG, fd, unsafe.Pointer(&b.hdrs[0].Hdr), 0)
}

// call makes the system call trap(fd, p, n, 0, 0), leaving its result in
// b.n and b.errno, and reports false, to wait for the socket, when it
// would block.
func (b *batch) call(trap, fd uintptr, p unsafe.Pointer, n int) bool {
	for {
		r, _, e := unix.Syscall6(trap, fd, uintptr(p), uintptr(n), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		b.n, b.errno = int(r), e
		return true
	}
}

// read fills ms (each with a Buf of 65536 bytes or more, and a Head
// of 1 to len(Buf)-1 where Body is set) and returns how many datagrams
// arrived.
func (b *batch) read(ms []Message) (int, error) {
	b.grow(len(ms))
	for i := range ms {
		m := &ms[i]
		iov := b.iovs[3*i : 3*i+3]
		n := 1
		if m.Body == nil {
			iov[0].Base = &m.Buf[0]
			iov[0].SetLen(len(m.Buf))
		} else {
			iov[0].Base = &m.Buf[0]
			iov[0].SetLen(m.Head)
			iov[1].Base = unsafe.SliceData(m.Body) // may be empty: an empty last piece
			iov[1].SetLen(len(m.Body))
			iov[2].Base = &m.Buf[m.Head]
			iov[2].SetLen(len(m.Buf) - m.Head)
			n = 3
		}
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &iov[0]
		h.SetIovlen(n)
		h.Control = &b.oob[i*oobSize]
		h.SetControllen(oobSize)
		h.Flags = 0
	}
	b.off, b.count = 0, len(ms)
	if err := b.rc.Read(b.recv); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", b.errno)
	}
	for i := range b.n {
		h := &b.hdrs[i]
		m := &ms[i]
		m.N = int(h.Len)
		m.Addr = addrPort(&b.names[i])
		m.Drops, m.Stamp, m.Segment = parseControl(b.oob[i*oobSize : i*oobSize+int(h.Hdr.Controllen)])
	}
	return b.n, nil
}

// parseControl reads the control messages of one datagram: the socket's
// drop counter when it was queued (SO_RXQ_OVFL, sent only once it is not
// zero), its arrival time (SO_TIMESTAMPNS_NEW) and, for datagrams the
// kernel coalesced, their size (UDP_GRO), 0 for what is missing.
// x/sys's ParseOneSocketControlMessage knows each architecture's cmsghdr
// and does not allocate (ParseSocketControlMessage does).
func parseControl(oob []byte) (drops uint32, stamp int64, segment int) {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		switch {
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			segment = int(int32(binary.NativeEndian.Uint32(data))) // an int
		case h.Level != unix.SOL_SOCKET:
		case h.Type == unix.SO_RXQ_OVFL && len(data) >= 4:
			drops = binary.NativeEndian.Uint32(data)
		case h.Type == unix.SO_TIMESTAMPNS_NEW && len(data) >= 16:
			// struct __kernel_timespec: two 64-bit words everywhere.
			sec := int64(binary.NativeEndian.Uint64(data))
			nsec := int64(binary.NativeEndian.Uint64(data[8:]))
			stamp = sec*1e9 + nsec
		}
		oob = rest
	}
	return drops, stamp, segment
}

// write sends datagram i as heads[i] followed by bodies[i] (bodies may be
// nil; heads[i] must not be empty), in order, on a connected socket, each
// part from where it lies. With dodge, a datagram whose body the kernel
// would copy slowly (see align.go) is first copied, whole, to a place it
// copies fast, up to maxDodges a call.
func (b *batch) write(heads, bodies [][]byte, dodge bool) error {
	b.layout(heads, bodies, dodge)
	defer clear(b.iovs[:3*len(heads)]) // the caller's bytes are not ours to keep
	for b.off = 0; b.off < len(heads); b.off += b.n {
		b.count = len(heads) - b.off
		if err := b.rc.Write(b.send); err != nil {
			return err
		}
		if b.errno != 0 {
			return os.NewSyscallError("sendmmsg", b.errno)
		}
	}
	return nil
}

// layout sets up b.hdrs for write, and returns how many datagrams it
// copied to dodge slow kernel copies.
func (b *batch) layout(heads, bodies [][]byte, dodge bool) int {
	b.grow(len(heads))
	at, dodged := 0, 0 // where the kernel is expected to put datagram i, in its page
	for i, d := range heads {
		var body []byte
		if bodies != nil {
			body = bodies[i]
		}
		size := len(d) + len(body)
		if dodge && dodged < maxDodges && slowCopy(body, at+len(d), 0) {
			d, body = b.dodge(dodged, at, d, body), nil
			dodged++
		}
		iov := b.iovs[3*i : 3*i+2]
		iov[0].Base = &d[0]
		iov[0].SetLen(len(d))
		n := 1
		if len(body) > 0 {
			iov[1].Base = &body[0]
			iov[1].SetLen(len(body))
			n = 2
		}
		h := &b.hdrs[i].Hdr
		*h = unix.Msghdr{Iov: &iov[0]}
		h.SetIovlen(n)
		at = (at + size) & (aliasPage - 1)
	}
	return dodged
}

// writeTwo sends head and body, both non-empty, as one datagram with
// sendmsg: one datagram through sendmmsg made 64 B round trips about 2%
// slower.
func (b *batch) writeTwo(head, body []byte) error {
	b.grow(1)
	iov := b.iovs[:2]
	iov[0].Base = &head[0]
	iov[0].SetLen(len(head))
	iov[1].Base = &body[0]
	iov[1].SetLen(len(body))
	h := &b.hdrs[0].Hdr
	*h = unix.Msghdr{Iov: &iov[0]}
	h.SetIovlen(2)
	err := b.rc.Write(b.sendOne)
	iov[0].Base, iov[1].Base = nil, nil // the caller's payload is not ours to keep
	if err != nil {
		return err
	}
	if b.errno != 0 {
		return os.NewSyscallError("sendmsg", b.errno)
	}
	return nil
}

// maxDodges bounds the copies of one write: the datagrams the kernel would
// copy slowly are few (the pieces of a page-aligned payload whose headers
// add up to under 64 bytes: two to four), and the space for them is kept.
const maxDodges = 4

// dodge copies head and body into scratch slot i, placed for the kernel's
// copy to an expected offset at, and returns the copy.
func (b *batch) dodge(i, at int, head, body []byte) []byte {
	const slot = maxDatagram + aliasPage
	if b.scratch == nil {
		b.scratch = make([]byte, maxDodges*slot)
	}
	s := b.scratch[i*slot : (i+1)*slot]
	off := goodOffset(s, at)
	return append(append(s[off:off:len(s)], head...), body...)
}

// addrPort converts a sockaddr without allocating. The zone of a
// link-local sender is left out: naming it would allocate a string.
func addrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := func(p *uint16) uint16 { return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:]) }
	switch sa.Family {
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port(&sa.Port))
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(&sa4.Port))
	}
	return netip.AddrPort{}
}
