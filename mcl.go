// Package mcl publishes and receives messages over IP multicast, on the
// wire format of the Python Multiprocess Communication Library (MCL), so Go
// and Python nodes share a group.
//
// A Connection describes a group: its address, port and socket options.
// A Publisher sends (topic, payload) messages to it; a Subscriber receives
// them, filtered by topic, through a callback, a channel, or by pulling
// with Next or Messages.
//
//	conn, err := mcl.NewConnection(mcl.DefaultGroup)
//	if err != nil { ... }
//	sub, err := mcl.Subscribe(conn, func(m *mcl.Message) {
//		var v map[string]any
//		if err := m.Decode(&v); err == nil {
//			fmt.Println(m.Topic, v)
//		}
//	}, mcl.Topics("gps"))
//	defer sub.Close()
//	pub, err := mcl.NewPublisher(conn)
//	defer pub.Close()
//	pub.Publish("gps", map[string]any{"lat": -33.89, "lon": 151.19})
//
// Payloads are msgpack. A message whose frame exceeds 60000 bytes is cut
// into fragments that subscribers reassemble; docs/wire.md gives the format.
// Delivery is UDP's: no guarantee of arrival, order or uniqueness.
package mcl

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mcl-go/mcl/internal/sock"
)

// Defaults, as in the Python module.
const (
	DefaultGroup      = "ff15::c73d:cf41:ea8e:b0a0" // the seed's example IPv6 group
	DefaultPort       = 26000
	DefaultHops       = 3
	DefaultReadBuffer = 4 << 20 // receive buffer requested for each Subscriber
)

// Connection describes a multicast group and how to reach it. It holds no
// socket: Publishers and Subscribers made from it open their own. A
// Connection is immutable and safe to share.
type Connection struct {
	group      netip.AddrPort
	ifi        *net.Interface
	hops       int
	loopback   bool
	readBuffer int
	spin       time.Duration
	logger     *slog.Logger
}

// NewConnection validates a group address (IPv6 or IPv4 multicast, such as
// DefaultGroup or 239.192.0.1) and options. Errors: ErrNotMulticast,
// ErrBadPort, ErrNoInterface, ErrBadOption, each saying what to change.
func NewConnection(group string, opts ...Option) (*Connection, error) {
	addr, err := netip.ParseAddr(group)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not an IP address: use an IPv6 group in ff00::/8 such as %s, or an IPv4 group in 224.0.0.0/4", ErrNotMulticast, group, DefaultGroup)
	}
	if !addr.IsMulticast() {
		return nil, fmt.Errorf("%w: %s: use an IPv6 group in ff00::/8 such as %s, or an IPv4 group in 224.0.0.0/4", ErrNotMulticast, addr, DefaultGroup)
	}
	c := &Connection{
		group:      netip.AddrPortFrom(addr.WithZone(""), DefaultPort),
		hops:       DefaultHops,
		loopback:   true,
		readBuffer: DefaultReadBuffer,
		logger:     slog.Default(),
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Group returns the group address and port.
func (c *Connection) Group() netip.AddrPort { return c.group }

// Interface returns the network interface name, or "" when the kernel
// chooses by route.
func (c *Connection) Interface() string {
	if c.ifi == nil {
		return ""
	}
	return c.ifi.Name
}

// Spin returns how long its Subscribers poll an empty socket after a
// datagram before they sleep (see the Spin option).
func (c *Connection) Spin() time.Duration { return c.spin }

// String returns the group as [addr]:port (or addr:port for IPv4), followed
// by " on IFACE" when an interface is set.
func (c *Connection) String() string {
	s := c.group.String()
	if c.ifi != nil {
		s += " on " + c.ifi.Name
	}
	return s
}

func (c *Connection) sockConfig() sock.Config {
	return sock.Config{
		Group:       c.group,
		Interface:   c.ifi,
		Hops:        c.hops,
		Loopback:    c.loopback,
		ReadBuffer:  c.readBuffer,
		WriteBuffer: sendBuffer,
		Spin:        c.spin,
	}
}
