package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/topic"
)

// Errors returned by this package, wrapped with details: test them with
// errors.Is.
var (
	// ErrBadOption reports an option value that cannot work; the message
	// says what to use instead.
	ErrBadOption = errors.New("bridge: invalid option")
	// ErrClosed is returned by Run on a closed Bridge.
	ErrClosed = errors.New("bridge: closed")
)

// Direction says which way a Bridge forwards.
type Direction int

const (
	Both     Direction = iota // group to NATS and NATS to group (the default)
	ToNATS                    // group to NATS only
	FromNATS                  // NATS to group only
)

// String returns "both", "to-nats" or "from-nats".
func (d Direction) String() string {
	switch d {
	case Both:
		return "both"
	case ToNATS:
		return "to-nats"
	case FromNATS:
		return "from-nats"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// ParseDirection parses what String returns.
func ParseDirection(s string) (Direction, error) {
	for _, d := range []Direction{Both, ToNATS, FromNATS} {
		if s == d.String() {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%w: direction %q: use both, to-nats or from-nats", ErrBadOption, s)
}

func (d Direction) toNATS() bool   { return d == Both || d == ToNATS }
func (d Direction) fromNATS() bool { return d == Both || d == FromNATS }

// Defaults. DefaultBufferMessages is many because messages are small and
// come in bursts: with 4096, a bridge republishing 40,000 messages/s dropped
// some as a slow consumer at every hiccup of a tenth of a second, at rates
// it sustained. DefaultBufferBytes bounds the memory.
const (
	DefaultPrefix           = "mcl"
	DefaultBufferMessages   = 65536
	DefaultBufferBytes      = 64 << 20
	DefaultAnnounceInterval = time.Second
	DefaultStreamMaxBytes   = 1 << 30        // a stream the bridge creates keeps at most 1 GiB
	DefaultStreamMaxAge     = 24 * time.Hour // and messages at most a day
)

// Option configures a Bridge.
type Option func(*config) error

type config struct {
	prefix   string
	topics   []string
	dir      Direction
	bufMsgs  int
	bufBytes int
	announce time.Duration
	settle   time.Duration
	natsOpts []nats.Option
	pubOpts  []mcl.PublishOption
	subOpts  []mcl.SubscribeOption
	logger   *slog.Logger
	name     string
	nameSet  bool

	stream         string // JetStream stream; "" for core NATS
	streamMaxBytes int64
	streamMaxAge   time.Duration
	durable        string
}

func defaultConfig() config {
	return config{
		prefix:   DefaultPrefix,
		bufMsgs:  DefaultBufferMessages,
		bufBytes: DefaultBufferBytes,
		announce: DefaultAnnounceInterval,
		settle:   300 * time.Millisecond,
		logger:   slog.Default(),
		name:     "mcl bridge",

		streamMaxBytes: DefaultStreamMaxBytes,
		streamMaxAge:   DefaultStreamMaxAge,
	}
}

// SubjectPrefix sets the first token(s) of every subject (default "mcl"):
// topic "gps" is subject "mcl.gps". Bridges that should exchange messages
// use the same prefix; a prefix per fleet or site keeps them apart.
func SubjectPrefix(p string) Option {
	return func(c *config) error {
		if err := checkPrefix(p); err != nil {
			return fmt.Errorf("%w: %v", ErrBadOption, err)
		}
		c.prefix = p
		return nil
	}
}

// Topics forwards only topics that are one of names or match one of the
// patterns, both ways ("*" one "/"-separated segment, "**" any number, as
// mcl.Topics); none (the default) forwards all.
func Topics(patterns ...string) Option {
	return func(c *config) error {
		if _, err := topic.NewFilter(patterns); err != nil {
			return fmt.Errorf("%w: %w", ErrBadOption, err)
		}
		c.topics = append(c.topics, patterns...)
		return nil
	}
}

// Forward sets the direction (default Both).
func Forward(d Direction) Option {
	return func(c *config) error {
		if d != Both && d != ToNATS && d != FromNATS {
			return fmt.Errorf("%w: direction %d: use Both, ToNATS or FromNATS", ErrBadOption, d)
		}
		c.dir = d
		return nil
	}
}

// BufferLimits bounds what waits to be forwarded (default 65536 messages,
// 64 MiB): group messages queued while NATS is slow, the bytes nats.go
// keeps while it reconnects (nats.ReconnectBufSize), the NATS messages
// pending for the group (the subscription's pending limits), and the
// parts of split messages being joined. Beyond it messages are dropped
// and counted (Stats.Dropped*), never held without bound.
func BufferLimits(messages, bytes int) Option {
	return func(c *config) error {
		if messages < 1 || bytes < 1<<20 {
			return fmt.Errorf("%w: buffer limits %d messages, %d bytes: at least 1 message and 1 MiB", ErrBadOption, messages, bytes)
		}
		c.bufMsgs, c.bufBytes = messages, bytes
		return nil
	}
}

// AnnounceInterval sets how often the bridge announces itself on its group
// (default 1s; see HelloTopic). A redundant bridge takes over three
// intervals after the active one fell silent (at once when it closed).
func AnnounceInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 10*time.Millisecond || d > time.Minute {
			return fmt.Errorf("%w: announce interval %v: use 10ms..1m", ErrBadOption, d)
		}
		c.announce = d
		return nil
	}
}

// NATSOptions adds options to the NATS connection, after the bridge's own
// (NoEcho, MaxReconnects(-1), RetryOnFailedConnect, ReconnectBufSize and
// handlers that count disconnections): credentials, TLS, a name. Replacing
// the handlers stops the bridge from counting reconnects.
func NATSOptions(opts ...nats.Option) Option {
	return func(c *config) error {
		c.natsOpts = append(c.natsOpts, opts...)
		return nil
	}
}

// PublishOptions configures the Publisher that republishes NATS messages
// on the group (such as mcl.Pace, or mcl.WithFraming for mcl/2 when every
// node on the group is a Go node).
func PublishOptions(opts ...mcl.PublishOption) Option {
	return func(c *config) error {
		c.pubOpts = append(c.pubOpts, opts...)
		return nil
	}
}

// SubscribeOptions configures the Subscriber that reads the group (such as
// mcl.ReassemblyLimits). Its QueueLimits come from BufferLimits.
func SubscribeOptions(opts ...mcl.SubscribeOption) Option {
	return func(c *config) error {
		c.subOpts = append(c.subOpts, opts...)
		return nil
	}
}

// Logger sets where the bridge logs connection changes and role changes
// (default slog.Default()).
func Logger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
		return nil
	}
}

// Name sets the NATS connection name the server shows (default "mcl bridge").
func Name(name string) Option {
	return func(c *config) error {
		c.name = name
		c.nameSet = true
		return nil
	}
}

// Stream makes the bridge use JetStream: the group's messages are
// published into the stream name (created if missing, with subjects
// PREFIX.> and the limits of StreamLimits) and acknowledged by the server;
// forwarding from NATS consumes the stream with a durable consumer (see
// Durable), so a bridge that was away gets what it missed, then the live
// messages. Delivery is at least once: see docs/bridge.md.
func Stream(name string) Option {
	return func(c *config) error {
		if err := checkJSName(name); err != nil {
			return fmt.Errorf("%w: stream %q: %v", ErrBadOption, name, err)
		}
		c.stream = name
		return nil
	}
}

// StreamLimits bounds a stream the bridge creates (default 1 GiB, 24h):
// beyond them the server discards the oldest messages. A stream that
// exists already keeps its own configuration.
func StreamLimits(maxBytes int64, maxAge time.Duration) Option {
	return func(c *config) error {
		if maxBytes < 1<<20 || maxAge < time.Minute {
			return fmt.Errorf("%w: stream limits %d bytes, %v: at least 1 MiB and 1m", ErrBadOption, maxBytes, maxAge)
		}
		c.streamMaxBytes, c.streamMaxAge = maxBytes, maxAge
		return nil
	}
}

// Durable names the JetStream consumer that forwards the stream to the
// group (default: Name, with characters a consumer name cannot hold
// replaced by "_"). One name per site: the server remembers what the
// consumer has acknowledged, and bridges sharing it share the messages.
func Durable(name string) Option {
	return func(c *config) error {
		if err := checkJSName(name); err != nil {
			return fmt.Errorf("%w: durable %q: %v", ErrBadOption, name, err)
		}
		c.durable = name
		return nil
	}
}

// checkJSName checks a stream or consumer name.
func checkJSName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 200 {
		return errors.New("longer than 200 bytes")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' {
			return errors.New("use letters, digits, - and _ (no spaces, ., *, >, / or \\)")
		}
	}
	return nil
}

// jsName makes a consumer name of s.
func jsName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' {
			r = '_'
		}
		b.WriteRune(r)
	}
	if b.Len() > 200 {
		return b.String()[:200]
	}
	return b.String()
}
