package mcl

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mcl-go/mcl/wire"
)

// Tunables not worth an option.
const (
	// batchSize is how many datagrams one receive system call may return.
	batchSize = 16
	// sendBuffer is the SO_SNDBUF asked for, so a fragmented megabyte goes
	// out in one sendmmsg without waiting for the kernel to drain.
	sendBuffer = 4 << 20
	// maxInterned bounds the topic strings a Subscriber keeps to avoid an
	// allocation per message.
	maxInterned = 1024
	// lendMin is the smallest payload handed to the queue in its receive
	// buffer rather than copied.
	lendMin = 8 << 10
	// maxPool bounds the spare receive buffers a Subscriber keeps.
	maxPool = 4 * batchSize
	// keepBuffer is the largest payload buffer a queue slot keeps for reuse;
	// larger ones go back to the garbage collector after one message.
	keepBuffer = 64 << 10
)

// Option configures a Connection.
type Option func(*Connection) error

// Port sets the UDP port (default 26000). NewConnection returns ErrBadPort
// outside 1024..65535.
func Port(port int) Option {
	return func(c *Connection) error {
		if port < 1024 || port > 65535 {
			return fmt.Errorf("%w %d: use a port in 1024..65535 (ports below 1024 are reserved)", ErrBadPort, port)
		}
		c.group = netip.AddrPortFrom(c.group.Addr(), uint16(port))
		return nil
	}
}

// Interface sends and receives on the named network interface instead of
// the one the kernel's routes choose; the empty name keeps the kernel's
// choice, as `--iface ""` does on the command line. NewConnection returns
// ErrNoInterface when the host has no such interface.
func Interface(name string) Option {
	return func(c *Connection) error {
		if name == "" {
			c.ifi = nil
			return nil
		}
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("%w %q: list the host's interfaces with `ip link`", ErrNoInterface, name)
		}
		c.ifi = ifi
		return nil
	}
}

// Hops sets the multicast hop limit (IPv4 TTL) of sent datagrams, 0..255
// (default 3; 1 keeps traffic on the local link, 0 on the host).
func Hops(n int) Option {
	return func(c *Connection) error {
		if n < 0 || n > 255 {
			return fmt.Errorf("%w: hops %d: use 0..255", ErrBadOption, n)
		}
		c.hops = n
		return nil
	}
}

// Loopback sets whether subscribers on the sending host receive what it
// publishes (default true, unlike net.ListenMulticastUDP).
func Loopback(on bool) Option {
	return func(c *Connection) error {
		c.loopback = on
		return nil
	}
}

// ReadBuffer sets the socket receive buffer each Subscriber requests, in
// bytes (default DefaultReadBuffer). When the kernel grants less, a warning
// is logged once; raise the limit with `sysctl -w net.core.rmem_max=N`.
func ReadBuffer(bytes int) Option {
	return func(c *Connection) error {
		if bytes < 0 {
			return fmt.Errorf("%w: read buffer %d bytes", ErrBadOption, bytes)
		}
		c.readBuffer = bytes
		return nil
	}
}

// Spin makes Subscribers poll their socket for up to d after each
// datagram before they sleep, 0..1ms (default 0: never). A message that
// comes within d of the one before is then read without waking a
// sleeping thread, which takes tens of microseconds where idle CPUs halt
// (virtual machines without guest halt-polling; docs/design.md has the
// measurements). The cost is CPU: up to d a datagram, so about 5% of a
// core for a 1 kHz stream with d = 50 µs, and a whole core at 20 kHz.
// A spinning Subscriber notices Close or a context's end when the spin
// stops. A process with one CPU, or GOMAXPROCS 1 when the socket opens,
// never spins: the spinning would hold back the sender it waits for.
// Subscribers of one group that share a socket share its Spin, so
// Connections with different Spin open sockets of their own.
// NewConnection returns ErrBadOption outside 0..1ms.
func Spin(d time.Duration) Option {
	return func(c *Connection) error {
		if d < 0 || d > time.Millisecond {
			return fmt.Errorf("%w: spin %v: use 0 (never) to 1ms", ErrBadOption, d)
		}
		c.spin = d
		return nil
	}
}

// Logger sets where warnings go (default slog.Default()).
func Logger(l *slog.Logger) Option {
	return func(c *Connection) error {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
		return nil
	}
}

// Overflow says which end of a full queue loses a message.
type Overflow int

const (
	// DropNewest discards the arriving message: what is queued is kept
	// (the default, as nats.go does).
	DropNewest Overflow = iota
	// DropOldest discards the oldest queued message to make room: the
	// consumer sees the freshest data, as sensor consumers often want.
	DropOldest
)

// SubscribeOption configures a Subscriber.
type SubscribeOption func(*subConfig) error

type subConfig struct {
	topics     []string
	queueLen   int
	queueBytes int
	overflow   Overflow
	limits     wire.Limits
}

func defaultSubConfig() subConfig {
	return subConfig{queueLen: 4096, queueBytes: 64 << 20, limits: wire.DefaultLimits()}
}

// Topics delivers only messages whose topic is one of topics, as the
// seed's `topics` argument; no topics (the default) delivers all. A topic
// with "*" is a pattern: split on "/", a segment "*" matches any one
// segment and "**" any number, none included ("camera/*", "**/front").
// "*" within a segment is refused: subscribe returns ErrBadOption.
// Filtering happens before the payload is decoded or reassembled; a list
// of exact names costs one map lookup a message.
func Topics(topics ...string) SubscribeOption {
	return func(s *subConfig) error {
		s.topics = append(s.topics, topics...)
		return nil
	}
}

// QueueLimits bounds the messages waiting for a slow consumer, by count and
// by payload bytes (default 4096 messages, 64 MiB). When either is reached
// a message is dropped, as OnOverflow says, and counted in Stats().Dropped.
func QueueLimits(messages, bytes int) SubscribeOption {
	return func(s *subConfig) error {
		if messages < 1 || bytes < 1 {
			return fmt.Errorf("%w: queue limits %d messages, %d bytes: both must be positive", ErrBadOption, messages, bytes)
		}
		s.queueLen, s.queueBytes = messages, bytes
		return nil
	}
}

// OnOverflow chooses which message a full queue drops (default DropNewest).
func OnOverflow(o Overflow) SubscribeOption {
	return func(s *subConfig) error {
		if o != DropNewest && o != DropOldest {
			return fmt.Errorf("%w: overflow policy %d", ErrBadOption, o)
		}
		s.overflow = o
		return nil
	}
}

// ReassemblyLimits bounds the memory and time spent on incomplete
// fragmented messages (default wire.DefaultLimits()); zero fields keep
// their defaults.
func ReassemblyLimits(l wire.Limits) SubscribeOption {
	return func(s *subConfig) error {
		if l.MaxMessageBytes < 0 || l.MaxPendingBytes < 0 || l.MaxPending < 0 || l.Timeout < 0 || l.Gap < 0 {
			return fmt.Errorf("%w: negative reassembly limit", ErrBadOption)
		}
		s.limits = l
		return nil
	}
}
