package sock

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Sender is a UDP socket connected to a multicast group. It is not safe
// for concurrent writes; any goroutine may Close.
type Sender struct {
	conn  *net.UDPConn
	io    *batch
	local netip.AddrPort
	one   []byte    // WriteOne's datagram, copied together (see Buffer)
	seg   segmenter // WriteSegments' state and MaxDatagram (gso_*.go)
}

// Dial opens a Sender to cfg.Group with cfg's hops, loopback and
// interface. Errors: ErrNotMulticast, and the operating system's wrapped
// with what was being done.
func Dial(cfg Config) (*Sender, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return control(rc, func(fd uintptr) error { return setupSender(fd, cfg) })
	}}
	c, err := d.Dial(cfg.network(), cfg.address())
	if err != nil {
		return nil, fmt.Errorf("open sender to %s%s: %w", cfg.address(), onInterface(cfg.Interface), err)
	}
	udp := c.(*net.UDPConn)
	io, err := newBatch(udp, 0) // a Sender does not read
	if err != nil {
		udp.Close()
		return nil, err
	}
	s := &Sender{conn: udp, io: io, local: udpAddrPort(c.LocalAddr())}
	s.seg.init(io, cfg)
	return s, nil
}

// LocalAddr is the address and port datagrams are sent from: what
// receivers see as the sender.
func (s *Sender) LocalAddr() netip.AddrPort { return s.local }

// Write sends one datagram.
func (s *Sender) Write(b []byte) error {
	_, err := s.conn.Write(b)
	return err
}

// WriteOne sends one datagram, head followed by body. A large body is sent
// from where it lies (sendmsg with two iovecs) unless the kernel's copy
// of it from there could be slow (see Buffer); then, as a small one is,
// it is copied behind head first.
func (s *Sender) WriteOne(head, body []byte) error {
	if len(body) >= aliasMin && !slowCopy(body, len(head), aliasDrift) {
		return s.io.writeTwo(head, body)
	}
	if need := len(head) + len(body); cap(s.one) < need {
		s.one = Buffer(max(need, min(2*cap(s.one), maxDatagram)))
	}
	s.one = append(append(s.one[:0], head...), body...)
	return s.Write(s.one)
}

// WriteBatch sends the datagrams, none of them empty, in order, in as few
// system calls as the platform allows, each from where it lies.
func (s *Sender) WriteBatch(datagrams [][]byte) error {
	return s.io.write(datagrams, nil, false)
}

// WriteGather sends datagram i as heads[i] followed by bodies[i], in order,
// without first copying the parts together (sendmmsg with two iovecs),
// except the few whose bodies lie where the kernel would copy them slowly
// (see Buffer). heads[i] must not be empty; bodies[i] may be.
func (s *Sender) WriteGather(heads, bodies [][]byte) error {
	return s.io.write(heads, bodies, true)
}

// Close closes the socket. It is safe to call more than once.
func (s *Sender) Close() error {
	err := s.conn.Close()
	if err != nil && isClosed(err) {
		return nil
	}
	return err
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// control runs fn on the socket's descriptor and returns fn's error.
func control(rc syscall.RawConn, fn func(fd uintptr) error) error {
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(fd) }); err != nil {
		return err
	}
	return ferr
}
