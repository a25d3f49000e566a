package sock

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// oobSize holds a datagram's control messages: UDP_GRO (4 bytes of data,
// with Config.GRO), SO_RXQ_OVFL (4) and SO_TIMESTAMPNS_NEW (16), each
// after its header, aligned: 80 bytes with 64-bit headers, 60 with 32-bit.
const oobSize = 96

func setupReceiver(fd uintptr, cfg Config) error {
	s := int(fd)
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
	}
	// Only the groups this socket joined: Linux otherwise delivers every
	// group joined by any socket on the host to a socket bound to the port.
	var err error
	if cfg.Group.Addr().Is4() {
		err = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
	} else {
		err = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
	}
	if err != nil {
		return os.NewSyscallError("setsockopt MULTICAST_ALL", err)
	}
	if cfg.ReadBuffer > 0 {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.ReadBuffer); err != nil {
			return os.NewSyscallError("setsockopt SO_RCVBUF", err)
		}
	}
	// The kernel's drop count and arrival time of each datagram let
	// reassembly tell when pieces may be missing; a kernel without them
	// (arrival times came in Linux 5.1) is no reason to fail, reassembly
	// goes on without.
	_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
	_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, 1)
	setupGRO(s, cfg)
	if cfg.Interface != nil {
		// IPv6 delivers a group's datagrams to every socket that joined it,
		// whatever the interface; binding to the device keeps a receiver to
		// the interface it was asked for.
		if err := unix.SetsockoptString(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, cfg.Interface.Name); err != nil {
			return os.NewSyscallError(fmt.Sprintf("setsockopt SO_BINDTODEVICE %s", cfg.Interface.Name), err)
		}
	}
	return nil
}

func setupSender(fd uintptr, cfg Config) error {
	s := int(fd)
	loop := 0
	if cfg.Loopback {
		loop = 1
	}
	if cfg.WriteBuffer > 0 {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, cfg.WriteBuffer); err != nil {
			return os.NewSyscallError("setsockopt SO_SNDBUF", err)
		}
	}
	if cfg.Group.Addr().Is4() {
		if err := unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, cfg.Hops); err != nil {
			return os.NewSyscallError("setsockopt IP_MULTICAST_TTL", err)
		}
		if err := unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, loop); err != nil {
			return os.NewSyscallError("setsockopt IP_MULTICAST_LOOP", err)
		}
		if cfg.Interface != nil {
			mreq := &unix.IPMreqn{Ifindex: int32(cfg.Interface.Index)}
			if err := unix.SetsockoptIPMreqn(s, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mreq); err != nil {
				return os.NewSyscallError("setsockopt IP_MULTICAST_IF", err)
			}
		}
		return nil
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, cfg.Hops); err != nil {
		return os.NewSyscallError("setsockopt IPV6_MULTICAST_HOPS", err)
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, loop); err != nil {
		return os.NewSyscallError("setsockopt IPV6_MULTICAST_LOOP", err)
	}
	if cfg.Interface != nil {
		if err := unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, cfg.Interface.Index); err != nil {
			return os.NewSyscallError("setsockopt IPV6_MULTICAST_IF", err)
		}
	}
	return nil
}

func readBufferSize(fd uintptr) int {
	n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return 0
	}
	return n
}

// listenGroup opens a UDP socket bound to the group address itself. It
// cannot go through net.ListenPacket, which, given a multicast address,
// quietly binds the wildcard address instead, so that unicast to the port
// would arrive too.
func listenGroup(cfg Config) (net.PacketConn, error) {
	a := cfg.Group.Addr()
	family, sa := unix.AF_INET6, unix.Sockaddr(nil)
	if a.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(cfg.Group.Port()), Addr: a.As4()}
	} else {
		sa6 := &unix.SockaddrInet6{Port: int(cfg.Group.Port()), Addr: a.As16()}
		if cfg.Interface != nil && (a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast()) {
			sa6.ZoneId = uint32(cfg.Interface.Index)
		}
		sa = sa6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := setupReceiver(uintptr(fd), cfg); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	f := os.NewFile(uintptr(fd), "mcl-receiver")
	defer f.Close() // FilePacketConn works on a duplicate
	return net.FilePacketConn(f)
}
