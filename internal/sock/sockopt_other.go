//go:build !linux

package sock

import (
	"context"
	"net"
	"os"
	"syscall"
)

// Elsewhere the socket gets the portable options only: no per-socket group
// filter, no device binding, no kernel drop counter or arrival times.

func setupReceiver(fd uintptr, cfg Config) error {
	if err := syscall.SetsockoptInt(sysfd(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
	}
	if cfg.ReadBuffer > 0 {
		return os.NewSyscallError("setsockopt SO_RCVBUF", syscall.SetsockoptInt(sysfd(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, cfg.ReadBuffer))
	}
	return nil
}

func setupSender(fd uintptr, cfg Config) error { return nil }

func readBufferSize(fd uintptr) int {
	n, _ := syscall.GetsockoptInt(sysfd(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	return n
}

// listenGroup binds through net.ListenPacket, which binds the wildcard
// address for a multicast group: unicast to the port arrives too.
func listenGroup(cfg Config) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return control(rc, func(fd uintptr) error { return setupReceiver(fd, cfg) })
	}}
	return lc.ListenPacket(context.Background(), cfg.network(), cfg.address())
}
