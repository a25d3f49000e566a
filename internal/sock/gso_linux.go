package sock

import (
	"encoding/binary"
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// maxIov is UIO_MAXIOV, the most iovecs one message takes (and the
	// most messages one sendmmsg sends).
	maxIov = 1024
	// gsoSegs is UDP_MAX_SEGMENTS, the most datagrams the kernel cuts one
	// send into: 128 in kernels since late 2024 (commit 1382e3b6a350,
	// backported to the stable series), 64 before. The kernel does not
	// tell; a send of more than 64 that it refuses (EINVAL, before
	// anything is sent) tells it is 64.
	gsoSegs    = 128
	oldGSOSegs = 64
)

// gsoState is what WriteSegments knows of the kernel's GSO.
type gsoState uint8

const (
	gsoOff     gsoState = iota // not known to the kernel, refused, or turned off
	gsoUntried                 // the kernel knows UDP_SEGMENT; no send yet
	gsoWorks                   // a send with it went out
)

// segmenter lays out WriteSegments' system calls: with GSO, one sendmsg
// of the iovecs of up to segs datagrams and a UDP_SEGMENT control
// message; without, one sendmmsg of a message a datagram, each with its
// own iovecs. Either way at most maxIov iovecs a call, cut from the
// caller's pieces at byte offsets, in space allocated once.
type segmenter struct {
	b     *batch // the Sender's: its RawConn and system call
	max   int    // MaxDatagram
	limit int    // the most bytes one GSO send carries: 65535 less the headers
	state gsoState
	segs  int  // the most datagrams one GSO send carries
	sure  bool // segs is the kernel's: a send of more than oldGSOSegs went out, or one was refused
	nIov  int  // maxIov, less in tests

	iovs []unix.Iovec   // this call's; capacity maxIov
	hdrs []unix.Mmsghdr // the fallback's messages
	msg  unix.Msghdr    // the GSO send
	oob  []byte         // its UDP_SEGMENT control message
	flat []byte         // a datagram of more than nIov pieces, copied together
	used int            // iovecs used since the last clear

	// join says that the last iovec ends where the cursor stands, so the
	// next datagram of a GSO send may go on in it.
	join bool

	off, count      int // sendmmsg's messages
	sendGSO, sendMM func(fd uintptr) bool
	calls           int // system calls made, for tests
}

// cursor is a position in WriteSegments' pieces: byte off of iov[i].
type cursor struct{ i, off int }

func (g *segmenter) init(b *batch, cfg Config) {
	g.b, g.nIov = b, maxIov
	g.max, g.limit = mtuPayload4, 65535-20-8
	ipLevel, mtuOpt, ipHeader := unix.IPPROTO_IP, unix.IP_MTU, 20
	if !cfg.Group.Addr().Is4() {
		g.max, g.limit = mtuPayload6, 65535-40-8
		ipLevel, mtuOpt, ipHeader = unix.IPPROTO_IPV6, unix.IPV6_MTU, 40
	}
	_ = control(b.rc, func(fd uintptr) error {
		if mtu, err := unix.GetsockoptInt(int(fd), ipLevel, mtuOpt); err == nil && mtu > ipHeader+8 {
			g.max = min(mtu-ipHeader-8, g.limit)
		}
		// The option exists since Linux 4.18, with GSO; an older kernel
		// would ignore the control message and send one large datagram.
		if _, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT); err == nil {
			g.state = gsoUntried
		}
		return nil
	})
	g.segs = gsoSegs
	g.sendGSO = func(fd uintptr) bool {
		return g.b.call(unix.SYS_SENDMSG, fd, unsafe.Pointer(&g.msg), 0)
	}
	g.sendMM = func(fd uintptr) bool {
		return g.b.call(unix.SYS_SENDMMSG, fd, unsafe.Pointer(&g.hdrs[g.off]), g.count)
	}
}

func (g *segmenter) gso() bool { return g.state != gsoOff }

// noGSO makes WriteSegments send without GSO, as on a kernel without it.
func (s *Sender) noGSO() { s.seg.state = gsoOff }

func (g *segmenter) alloc() {
	if g.iovs != nil {
		return
	}
	g.iovs = make([]unix.Iovec, 0, maxIov)
	g.hdrs = make([]unix.Mmsghdr, maxIov)
	g.oob = make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&g.oob[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
}

func (g *segmenter) write(iov [][]byte, total, segment int) error {
	g.alloc()
	defer g.release()
	var c cursor
	gso := g.state != gsoOff && segment <= g.max
	for left := total; left > 0; {
		if gso {
			n, err := g.sendSegments(iov, &c, left, segment)
			left -= n
			if err == nil {
				continue
			}
			if !g.refused(err) {
				return err
			}
			// Refused before anything went out: c is where it was.
			gso = g.state != gsoOff && !errors.Is(err, unix.EMSGSIZE)
			continue
		}
		n, err := g.sendDatagrams(iov, &c, left, segment)
		left -= n
		if err != nil {
			return err
		}
	}
	return nil
}

// refused reports whether err is the kernel's refusal of a GSO send, and
// adjusts to it: too many segments for this kernel (EINVAL, when it could
// be that: try again with fewer), no GSO this way (EIO: a device or path
// that cannot, such as IPsec; EINVAL, ENOPROTOOPT, EOPNOTSUPP: a kernel
// that cannot; off for good), or a segment larger than the path now
// carries (EMSGSIZE, the MTU fell since Dial: fragment this write).
func (g *segmenter) refused(err error) bool {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case unix.EINVAL:
		if !g.sure && g.segs > oldGSOSegs && g.count > oldGSOSegs {
			g.segs, g.sure = oldGSOSegs, true
			return true
		}
		g.state = gsoOff
	case unix.EIO, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
		g.state = gsoOff
	case unix.EMSGSIZE:
	default:
		return false
	}
	return true
}

// sendSegments sends, with one GSO sendmsg, the datagrams from c on, as
// many as one send carries, of the left bytes; it advances c and returns
// how many bytes it sent. Refused, it leaves c as it was.
func (g *segmenter) sendSegments(iov [][]byte, c *cursor, left, segment int) (int, error) {
	start := *c
	most := min(g.segs, g.limit/segment)
	g.iovs, g.join = g.iovs[:0], false
	n, k := 0, 0
	for ; k < most && n < left; k++ {
		d := min(segment, left-n)
		if !g.take(iov, c, d) {
			if k > 0 {
				break // the rest in the next send
			}
			g.copyTogether(iov, c, d)
		}
		n += d
	}
	g.used = max(g.used, len(g.iovs))
	g.msg = unix.Msghdr{Iov: &g.iovs[0], Control: &g.oob[0]}
	g.msg.SetIovlen(len(g.iovs))
	g.msg.SetControllen(len(g.oob))
	binary.NativeEndian.PutUint16(g.oob[unix.CmsgLen(0):], uint16(segment))
	g.count = k
	g.calls++
	if err := g.b.rc.Write(g.sendGSO); err != nil {
		*c = start
		return 0, err
	}
	if g.b.errno != 0 {
		*c = start
		return 0, os.NewSyscallError("sendmsg", g.b.errno)
	}
	if k > oldGSOSegs {
		g.sure = true
	}
	g.state = gsoWorks
	return n, nil
}

// sendDatagrams sends, with sendmmsg, the datagrams from c on, as many as
// one call carries, of the left bytes; it advances c and returns how many
// bytes it sent.
func (g *segmenter) sendDatagrams(iov [][]byte, c *cursor, left, segment int) (int, error) {
	g.iovs = g.iovs[:0]
	n, k := 0, 0
	for ; k < len(g.hdrs) && n < left; k++ {
		d := min(segment, left-n)
		first := len(g.iovs)
		g.join = false
		if !g.take(iov, c, d) {
			if k > 0 {
				break
			}
			g.copyTogether(iov, c, d)
		}
		h := &g.hdrs[k].Hdr
		*h = unix.Msghdr{Iov: &g.iovs[first]}
		h.SetIovlen(len(g.iovs) - first)
		n += d
	}
	g.used = max(g.used, len(g.iovs))
	for g.off = 0; g.off < k; g.off += g.b.n {
		g.count = k - g.off
		g.calls++
		if err := g.b.rc.Write(g.sendMM); err != nil {
			return 0, err
		}
		if g.b.errno != 0 {
			return 0, os.NewSyscallError("sendmmsg", g.b.errno)
		}
	}
	return n, nil
}

// take appends to g.iovs the iovecs of the n bytes at c, going on in the
// last iovec when g.join says they continue it, and advances c. It
// reports false, leaving g.iovs, g.join and c as they were, when that
// takes more than g.nIov iovecs.
func (g *segmenter) take(iov [][]byte, c *cursor, n int) bool {
	at, k := *c, len(g.iovs)
	var last uint64
	if k > 0 {
		last = uint64(g.iovs[k-1].Len)
	}
	join := g.join && c.off > 0
	for n > 0 {
		p := iov[c.i][c.off:]
		if len(p) == 0 {
			c.i, c.off = c.i+1, 0
			continue
		}
		d := min(n, len(p))
		switch {
		case join:
			v := &g.iovs[len(g.iovs)-1]
			v.SetLen(int(v.Len) + d)
		case len(g.iovs) < g.nIov:
			g.iovs = append(g.iovs, unix.Iovec{Base: &p[0]})
			g.iovs[len(g.iovs)-1].SetLen(d)
		default:
			*c = at
			clear(g.iovs[k:]) // the caller's bytes are not ours to keep
			g.iovs = g.iovs[:k]
			if k > 0 {
				g.iovs[k-1].SetLen(int(last))
			}
			return false
		}
		join = false
		n -= d
		c.off += d
		if c.off == len(iov[c.i]) {
			c.i, c.off = c.i+1, 0
		}
	}
	g.join = true
	return true
}

// copyTogether copies the n bytes at c to g.flat, appends its iovec and
// advances c: for a datagram of more than g.nIov pieces, the first of a
// call, so that g.iovs has room and g.flat is free.
func (g *segmenter) copyTogether(iov [][]byte, c *cursor, n int) {
	if g.flat == nil {
		g.flat = Buffer(maxSegment)
	}
	f := g.flat[:0]
	for len(f) < n {
		p := iov[c.i][c.off:]
		d := min(n-len(f), len(p))
		f = append(f, p[:d]...)
		c.off += d
		if c.off == len(iov[c.i]) {
			c.i, c.off = c.i+1, 0
		}
	}
	g.iovs = append(g.iovs, unix.Iovec{Base: &f[0]})
	g.iovs[len(g.iovs)-1].SetLen(n)
	g.join = false
}

// release forgets the caller's bytes, which are not ours to keep.
func (g *segmenter) release() {
	clear(g.iovs[:g.used])
	g.used = 0
}

// setupGRO asks for coalesced reads (Config.GRO). A kernel without UDP_GRO
// (before 5.0) is no reason to fail: reads come one datagram each.
func setupGRO(fd int, cfg Config) {
	if cfg.GRO {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	}
}
