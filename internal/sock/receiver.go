package sock

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Receiver is a socket joined to one multicast group. It is not safe for
// concurrent reads: one goroutine reads, any goroutine may Close.
type Receiver struct {
	pc      *net.UDPConn
	io      *batch
	granted int
	drops   uint64 // kernel drops reported by SO_RXQ_OVFL (cumulative)
}

// Listen opens a Receiver for cfg.Group. Errors: ErrNotMulticast, and the
// operating system's (address in use without reuse, unknown interface,
// permission) wrapped with what was being done.
func Listen(cfg Config) (*Receiver, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	pc, err := listenGroup(cfg)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.address(), err)
	}
	udp, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("listen on %s: not a UDP socket", cfg.address())
	}
	group := &net.UDPAddr{IP: cfg.Group.Addr().AsSlice()}
	if cfg.Group.Addr().Is4() {
		err = ipv4.NewPacketConn(udp).JoinGroup(cfg.Interface, group)
	} else {
		err = ipv6.NewPacketConn(udp).JoinGroup(cfg.Interface, group)
	}
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("join %s%s: %w", cfg.Group.Addr(), onInterface(cfg.Interface), err)
	}
	io, err := newBatch(udp, cfg.spin())
	if err != nil {
		udp.Close()
		return nil, err
	}
	r := &Receiver{pc: udp, io: io}
	if rc, err := udp.SyscallConn(); err == nil {
		_ = control(rc, func(fd uintptr) error {
			r.granted = readBufferSize(fd)
			return nil
		})
	}
	return r, nil
}

func onInterface(ifi *net.Interface) string {
	if ifi == nil {
		return ""
	}
	return " on " + ifi.Name
}

// ReadBufferSize reports the receive buffer the kernel granted, in the
// kernel's accounting (Linux reports twice the size requested, to cover
// its bookkeeping).
func (r *Receiver) ReadBufferSize() int { return r.granted }

// KernelDrops reports how many datagrams the kernel dropped because this
// socket's receive buffer was full, as last reported with a batch (Linux
// SO_RXQ_OVFL; always 0 elsewhere).
func (r *Receiver) KernelDrops() uint64 { return r.drops }

// ReadBatch blocks until at least one datagram arrives, then fills up to
// len(ms) messages, whose Buf must not be empty, and returns how many.
// After Close it returns an error that satisfies errors.Is(err,
// net.ErrClosed).
func (r *Receiver) ReadBatch(ms []Message) (int, error) {
	n, err := r.io.read(ms)
	for i := range n {
		if d := ms[i].Drops; d != 0 {
			r.drops = uint64(d)
		}
	}
	return n, err
}

// SetReadDeadline makes ReadBatch return an error satisfying
// errors.Is(err, os.ErrDeadlineExceeded) once t has passed; the zero time
// waits forever.
func (r *Receiver) SetReadDeadline(t time.Time) error { return r.pc.SetReadDeadline(t) }

// Close closes the socket, which leaves the group; a blocked ReadBatch
// returns. Close is safe to call more than once.
func (r *Receiver) Close() error {
	err := r.pc.Close()
	if err != nil && isClosed(err) {
		return nil
	}
	return err
}
