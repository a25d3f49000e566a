// Package sock opens the multicast UDP sockets mcl sends and receives on.
//
// It sets each socket up by hand. net.ListenMulticastUDP binds the
// wildcard address (so unicast to the port and other groups' traffic arrive
// too) and turns multicast loopback off; net.ListenPacket, given a
// multicast address, quietly binds the wildcard address as well. A Receiver
// is bound to the group address itself, joins the group on one interface
// (or the kernel's choice), refuses other groups' traffic
// (IP_MULTICAST_ALL / IPV6_MULTICAST_ALL = 0), is bound to the interface
// when one is named (IPv6 matches memberships by group only, so a socket
// would otherwise also get copies that arrive on other interfaces), and
// shares its port with other receivers on the host (SO_REUSEADDR, as the
// seed's listener does).
// A Sender is a UDP socket connected to the group, with hops, loopback and
// interface set before connect so the kernel's cached route honours them.
//
// Both sides move datagrams in batches: recvmmsg and sendmmsg on Linux,
// written against golang.org/x/sys/unix so that a batch allocates nothing
// (see batch_linux.go), one datagram a call elsewhere. Reads may scatter a
// datagram, so that its content lands straight where the caller wants it
// (Message.Body). Runs of datagrams of one size go out many a system call
// with UDP segmentation offload, and may come in coalesced (see gso.go).
// Sends steer clear of addresses that make the kernel's
// copy slow on AMD Zen processors (see align.go and Buffer).
package sock

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"
)

// Config describes one multicast endpoint.
type Config struct {
	Group       netip.AddrPort // multicast group and port
	Interface   *net.Interface // nil lets the kernel choose by route
	Hops        int            // multicast hop limit (TTL) for sent datagrams
	Loopback    bool           // deliver sent datagrams to receivers on this host
	ReadBuffer  int            // SO_RCVBUF to request; 0 keeps the kernel default
	WriteBuffer int            // SO_SNDBUF to request; 0 keeps the kernel default
	// GRO lets a Receiver's kernel hand over several datagrams of one
	// sender, all of one size but the last, as one buffer (Linux 5.0 UDP_GRO;
	// ignored elsewhere and where the kernel lacks it): fewer, larger reads.
	// Such a read sets Message.Segment; range over Message.Datagrams to
	// take it apart. A coalesced buffer is scattered across Buf and Body
	// like one datagram, so Body no longer holds one datagram's body:
	// combine GRO with Body only when reading through Datagrams.
	GRO bool
	// Spin keeps a Receiver's read polling an empty socket, instead of
	// sleeping in the kernel, until Spin has passed since the last datagram
	// arrived: where waking a sleeping thread is slow, as on a virtual
	// machine whose idle CPUs halt, a reply that comes within Spin is read
	// without that wake-up. It costs up to Spin of CPU a datagram. Zero
	// never spins, nor does a process with one CPU or GOMAXPROCS 1, where
	// a spinning read would hold back the sender it waits for. A spinning
	// read notices a deadline or Close when it stops. Linux only.
	Spin time.Duration
}

// spin is the Spin a Receiver uses: none where it cannot pay.
func (c Config) spin() time.Duration {
	if runtime.NumCPU() < 2 || runtime.GOMAXPROCS(0) < 2 {
		return 0
	}
	return max(c.Spin, 0)
}

// Message is one datagram of a batch. The caller provides Buf, 65536
// bytes or more so that any UDP datagram fits, and may provide Body; a
// read fills N and Addr.
//
// With Body set the read scatters the datagram: its first Head bytes
// land in Buf[:Head], the next len(Body) in Body, and the rest, if any, in
// Buf[Head:]. A receiver that knows how long a datagram's header will be
// has its content read straight to where it belongs; Datagram puts a
// datagram that was not what was expected back together.
type Message struct {
	Buf  []byte
	Head int    // with Body: bytes read into Buf before Body
	Body []byte // nil: the whole datagram goes into Buf
	N    int
	Addr netip.AddrPort
	// Drops is the count of datagrams the kernel had dropped on this
	// socket, its receive buffer full, when this one was queued (Linux
	// SO_RXQ_OVFL; 0 elsewhere): a rise between two datagrams means
	// datagrams were lost between them.
	Drops uint32
	// Stamp is when the datagram arrived, in nanoseconds since the Unix
	// epoch by the kernel's clock (Linux SO_TIMESTAMPNS_NEW), or 0 when
	// the kernel does not say.
	Stamp int64
	// Segment is 0 when the read holds one datagram. Otherwise (Config.GRO)
	// the kernel coalesced datagrams of one sender: the N bytes read are
	// datagrams of Segment bytes each, the last possibly shorter, and Addr,
	// Drops and Stamp are the first one's. Datagrams yields them.
	Segment int
}

// Datagram returns the datagram read into m as one slice of Buf, first
// moving the parts read into Body and past it into place when Body is set
// (two copies of at most the datagram's length).
func (m *Message) Datagram() []byte {
	if m.Body == nil || m.N <= m.Head {
		return m.Buf[:m.N]
	}
	body := min(m.N-m.Head, len(m.Body))
	rest := m.N - m.Head - body
	copy(m.Buf[m.Head+body:m.N], m.Buf[m.Head:m.Head+rest]) // may overlap: copy moves
	copy(m.Buf[m.Head:], m.Body[:body])
	return m.Buf[:m.N]
}

// ErrNotMulticast reports a group address outside the multicast ranges.
var ErrNotMulticast = errors.New("not a multicast address")

func (c Config) network() string {
	if c.Group.Addr().Is4() {
		return "udp4"
	}
	return "udp6"
}

// address renders the group for net.Listen/Dial, with the interface as zone
// where IPv6 needs one (link-local and interface-local scopes).
func (c Config) address() string {
	a := c.Group.Addr()
	if a.Is6() && c.Interface != nil && (a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast()) {
		a = a.WithZone(c.Interface.Name)
	}
	return netip.AddrPortFrom(a, c.Group.Port()).String()
}

func (c Config) check() error {
	if !c.Group.Addr().IsMulticast() {
		return fmt.Errorf("%w: %s", ErrNotMulticast, c.Group.Addr())
	}
	return nil
}

func udpAddrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
