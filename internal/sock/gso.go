package sock

import (
	"errors"
	"fmt"
)

// Segmented sends. A framing whose datagrams fit the link MTU (so that
// no datagram is ever IP-fragmented, and one lost packet loses one
// datagram) sends many datagrams of one size in a row. WriteSegments sends
// such a run from the caller's buffers, header and payload pieces where
// they lie: on Linux with UDP generic segmentation offload (UDP_SEGMENT,
// Linux 4.18), one sendmsg hands the kernel up to 64 KB, which it cuts
// into datagrams after the stack has been walked once; elsewhere, or where
// the kernel refuses GSO, with sendmmsg of one datagram a message.
//
// On the receive side Config.GRO lets the kernel hand over a run of
// datagrams of one flow as one buffer (Message.Segment, Message.Datagrams).

const (
	// maxSegment is the most a UDP datagram carries over IPv4: 65535
	// less the IPv4 and UDP headers.
	maxSegment = 65535 - 20 - 8
	// mtuPayload4 and mtuPayload6 are what a 1500-byte MTU carries,
	// assumed where the kernel does not tell the path's MTU.
	mtuPayload4 = 1500 - 20 - 8
	mtuPayload6 = 1500 - 40 - 8
)

// ErrSegment reports a WriteSegments call with a segment size out of
// range (1 to 65507) or nothing to send; nothing was sent.
var ErrSegment = errors.New("bad segmented write")

// MaxDatagram is the largest UDP payload that the path to the group
// carries in one IP packet, without fragmentation: the route's MTU (Linux
// IP_MTU / IPV6_MTU of the connected socket, read once in Dial) less the
// IP header (20 bytes IPv4, 40 IPv6) and the UDP header (8). Where the
// kernel does not say, it assumes a 1500-byte MTU: 1472 (IPv4) or 1452
// (IPv6).
func (s *Sender) MaxDatagram() int { return s.seg.max }

// GSO reports whether WriteSegments hands the kernel many datagrams at a
// time with UDP generic segmentation offload (Linux 4.18 and later): true
// from Dial on where the kernel knows the socket option, until a send
// with it is refused (the device or path cannot do it), after which the
// Sender sends datagram by datagram for good.
func (s *Sender) GSO() bool { return s.seg.gso() }

// WriteSegments sends the concatenation of iov as consecutive datagrams of
// segment bytes each, the last one possibly shorter (never empty), in
// order, in as few system calls as the platform allows, without copying
// the bytes: the pieces of iov need not line up with datagrams (typically
// they alternate header, payload piece, header, ...; empty pieces are
// skipped). With GSO (see GSO) one sendmsg carries as many datagrams as
// the kernel takes in one (up to 64, or 128 on kernels since late 2024, and
// up to 65535 bytes of UDP); otherwise sendmmsg sends one datagram a
// message. A segment larger than MaxDatagram is sent without GSO, and
// fragmented by IP. A datagram made of more than 1024 pieces (UIO_MAXIOV)
// is copied together first.
//
// Errors: ErrSegment, wrapped, when segment is not 1 to 65507 or iov holds
// no byte, before anything is sent; otherwise the operating system's,
// after the datagrams before the failing one were sent.
func (s *Sender) WriteSegments(iov [][]byte, segment int) error {
	if segment <= 0 || segment > maxSegment {
		return fmt.Errorf("%w: segment of %d bytes, not 1 to %d", ErrSegment, segment, maxSegment)
	}
	total := 0
	for _, p := range iov {
		total += len(p)
	}
	if total == 0 {
		return fmt.Errorf("%w: nothing to send", ErrSegment)
	}
	return s.seg.write(iov, total, segment)
}

// Datagrams yields the datagrams read into m, in order: the one datagram,
// or, when the kernel coalesced several (Segment > 0), each of them. With
// Body set it first puts the buffer back together in Buf (see Datagram).
// The slices point into m.Buf, capacity cut at their ends, and are valid
// until m is read into again. Range over it:
//
//	for d := range m.Datagrams { ... }
func (m *Message) Datagrams(yield func([]byte) bool) {
	b := m.Datagram()
	if seg := m.Segment; seg > 0 {
		for len(b) > seg {
			if !yield(b[:seg:seg]) {
				return
			}
			b = b[seg:]
		}
	}
	yield(b[:len(b):len(b)])
}
