package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Helpers for multicast over the sandbox network. Every send goes out of a
// sandbox link chosen by name, from a test that called Require first, so
// nothing is ever sent on a host interface.

// family is IPv4 or IPv6 with the group the tests use.
type family struct {
	name    string
	network string // "udp4" or "udp6"
	any     string // wildcard listen address
	group   netip.Addr
}

var families = []family{
	{"IPv4", "udp4", "0.0.0.0:0", netip.MustParseAddr("239.192.0.1")},
	{"IPv6", "udp6", "[::]:0", netip.MustParseAddr("ff15::c73d:cf41:ea8e:b0a0")},
}

// waitFor bounds how long a test waits for a datagram that must arrive; it
// is a failure timeout, not synchronisation.
const waitFor = 10 * time.Second

// sockOpts are socket options for a receiver.
type sockOpts struct {
	noMulticastAll bool   // IP_MULTICAST_ALL / IPV6_MULTICAST_ALL = 0
	bindToDevice   string // SO_BINDTODEVICE
}

// receiver is a UDP socket that reports the interface a datagram came in on.
type receiver struct {
	fam family
	c   *net.UDPConn
	p4  *ipv4.PacketConn
	p6  *ipv6.PacketConn
}

// listen opens a receiver bound to the wildcard address and port (0 for
// any), with SO_REUSEADDR so that several receivers can share the port.
func listen(t *testing.T, fam family, port int, o sockOpts) *receiver {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		cerr := rc.Control(func(fd uintptr) {
			s := int(fd)
			if err = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return
			}
			if o.noMulticastAll {
				if fam.group.Is4() {
					err = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
				} else {
					err = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
				}
				if err != nil {
					return
				}
			}
			if o.bindToDevice != "" {
				err = unix.SetsockoptString(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, o.bindToDevice)
			}
		})
		return errors.Join(cerr, err)
	}}
	addr := netip.MustParseAddrPort(fam.any)
	pc, err := lc.ListenPacket(context.Background(), fam.network, netip.AddrPortFrom(addr.Addr(), uint16(port)).String())
	if err != nil {
		t.Fatalf("listen %s port %d: %v", fam.network, port, err)
	}
	r := &receiver{fam: fam, c: pc.(*net.UDPConn)}
	t.Cleanup(func() { r.c.Close() })
	if fam.group.Is4() {
		r.p4 = ipv4.NewPacketConn(r.c)
		err = r.p4.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true)
	} else {
		r.p6 = ipv6.NewPacketConn(r.c)
		err = r.p6.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true)
	}
	if err != nil {
		t.Fatalf("enabling control messages: %v", err)
	}
	return r
}

func (r *receiver) port() int { return r.c.LocalAddr().(*net.UDPAddr).Port }

// join joins the family's group on the named interface.
func (r *receiver) join(t *testing.T, ifname string) {
	t.Helper()
	ifi := mustInterface(t, ifname)
	g := &net.UDPAddr{IP: r.fam.group.AsSlice()}
	var err error
	if r.p4 != nil {
		err = r.p4.JoinGroup(ifi, g)
	} else {
		err = r.p6.JoinGroup(ifi, g)
	}
	if err != nil {
		t.Fatalf("joining %s on %s: %v", r.fam.group, ifname, err)
	}
}

// datagram is what a receiver got.
type datagram struct {
	payload string
	ifindex int
	src     netip.Addr
	dst     netip.Addr
}

// read returns the next datagram, or an error when none came within d.
func (r *receiver) read(d time.Duration) (datagram, error) {
	buf := make([]byte, 65536)
	if err := r.c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return datagram{}, err
	}
	var (
		n   int
		src net.Addr
		dg  datagram
		err error
	)
	if r.p4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, src, err = r.p4.ReadFrom(buf)
		if cm != nil {
			dg.ifindex = cm.IfIndex
			dg.dst, _ = netip.AddrFromSlice(cm.Dst.To4())
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, src, err = r.p6.ReadFrom(buf)
		if cm != nil {
			dg.ifindex = cm.IfIndex
			dg.dst, _ = netip.AddrFromSlice(cm.Dst)
		}
	}
	if err != nil {
		return datagram{}, err
	}
	dg.payload = string(buf[:n])
	if ua, ok := src.(*net.UDPAddr); ok {
		dg.src = ua.AddrPort().Addr().Unmap()
	}
	return dg, nil
}

// readPayload returns the first datagram carrying payload, skipping others.
func (r *receiver) readPayload(t *testing.T, payload string) datagram {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		dg, err := r.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for the datagram on %s port %d: %v", r.fam.group, r.port(), err)
		}
		if dg.payload == payload {
			return dg
		}
	}
}

// count reads until it has seen fence, then for a short while more (for
// late copies), and returns how many datagrams carried payload.
func (r *receiver) count(t *testing.T, payload, fence string) int {
	t.Helper()
	n := 0
	deadline := time.Now().Add(waitFor)
	for {
		dg, err := r.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for the fence datagram on %s port %d: %v", r.fam.group, r.port(), err)
		}
		if dg.payload == payload {
			n++
		}
		if dg.payload == fence {
			break
		}
	}
	for {
		// A copy that did not arrive before the fence is unlikely but
		// possible; absence can only be checked for a while.
		dg, err := r.read(200 * time.Millisecond)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			return n
		}
		if dg.payload == payload {
			n++
		}
	}
}

// sender is a UDP socket for sending to the family's group.
type sender struct {
	fam family
	c   *net.UDPConn
}

// newSender opens a sender. ifname chooses the multicast interface, which
// must be a sandbox link; "" leaves the choice to the routing table (which
// only has sandbox links). loop sets multicast loopback.
func newSender(t *testing.T, n *Network, fam family, ifname string, loop bool) *sender {
	t.Helper()
	if ifname != "" && ifname != n.Iface && ifname != n.Peer {
		t.Fatalf("refusing to send on %q, not a sandbox link", ifname)
	}
	pc, err := net.ListenPacket(fam.network, fam.any)
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{fam: fam, c: pc.(*net.UDPConn)}
	t.Cleanup(func() { s.c.Close() })
	if fam.group.Is4() {
		p := ipv4.NewPacketConn(s.c)
		if ifname != "" {
			err = p.SetMulticastInterface(mustInterface(t, ifname))
		}
		if err == nil {
			err = p.SetMulticastLoopback(loop)
		}
	} else {
		p := ipv6.NewPacketConn(s.c)
		if ifname != "" {
			err = p.SetMulticastInterface(mustInterface(t, ifname))
		}
		if err == nil {
			err = p.SetMulticastLoopback(loop)
		}
	}
	if err != nil {
		t.Fatalf("configuring the sender: %v", err)
	}
	return s
}

func (s *sender) send(t *testing.T, port int, payload string) {
	t.Helper()
	dst := &net.UDPAddr{IP: s.fam.group.AsSlice(), Port: port}
	if _, err := s.c.WriteTo([]byte(payload), dst); err != nil {
		t.Fatalf("sending to %v: %v", dst, err)
	}
}

func mustInterface(t *testing.T, name string) *net.Interface {
	t.Helper()
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return ifi
}

func nonce() string { return rand.Text() }
