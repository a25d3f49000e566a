//go:build !linux

package sock

import (
	"net"
	"time"
)

// batch moves one datagram a call where recvmmsg and sendmmsg are missing.
type batch struct{ c *net.UDPConn }

// newBatch ignores spin: without a system call of its own to retry, a
// read here waits in Go's network poller.
func newBatch(c *net.UDPConn, _ time.Duration) (*batch, error) { return &batch{c: c}, nil }

func (b *batch) read(ms []Message) (int, error) {
	n, addr, err := b.c.ReadFromUDPAddrPort(ms[0].Buf)
	if err != nil {
		return 0, err
	}
	m := &ms[0]
	m.N, m.Addr = n, addr
	if m.Body != nil && n > m.Head {
		// Scatter as recvmmsg would have.
		body := copy(m.Body, m.Buf[m.Head:n])
		copy(m.Buf[m.Head:], m.Buf[m.Head+body:n])
	}
	m.Drops, m.Stamp, m.Segment = 0, 0, 0
	return 1, nil
}

func (b *batch) write(heads, bodies [][]byte, _ bool) error {
	var d []byte
	for i, h := range heads {
		d = append(d[:0], h...)
		if bodies != nil {
			d = append(d, bodies[i]...)
		}
		if _, err := b.c.Write(d); err != nil {
			return err
		}
	}
	return nil
}

// writeTwo copies head and body together and sends them: without
// sendmsg's iovecs, one datagram needs one buffer.
func (b *batch) writeTwo(head, body []byte) error {
	_, err := b.c.Write(append(append([]byte(nil), head...), body...))
	return err
}
