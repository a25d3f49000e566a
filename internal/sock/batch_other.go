//go:build !linux

package sock

import "net"

// batch moves one datagram a call where recvmmsg and sendmmsg are missing.
type batch struct{ c *net.UDPConn }

func newBatch(c *net.UDPConn) (*batch, error) { return &batch{c: c}, nil }

func (b *batch) read(ms []Message) (int, uint64, bool, error) {
	n, addr, err := b.c.ReadFromUDPAddrPort(ms[0].Buf)
	if err != nil {
		return 0, 0, false, err
	}
	ms[0].N, ms[0].Addr = n, addr
	return 1, 0, false, nil
}

func (b *batch) write(datagrams [][]byte) error {
	for _, d := range datagrams {
		if _, err := b.c.Write(d); err != nil {
			return err
		}
	}
	return nil
}
