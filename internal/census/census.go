// Package census keeps live statistics of the topics seen on a group:
// how many messages, how often, how regular, how large and from how many
// senders. It is fed messages (Add) and read in snapshots (Snapshot); it
// opens no sockets and reads no clocks, so it can be tested on synthetic
// times.
//
// A Census is bounded: it tracks at most its limit of topics, counts the
// messages of further topics as refused, and never grows past that. Add
// costs O(1) and allocates nothing for a topic already known, from a
// sender already known (or once 64 senders are): it looks the topic up by
// the string passed, which it keeps as the key for a new topic, so the
// caller should pass a string it does not mutate (Go strings never are)
// and, to keep the memory of the keys small, the same one for every
// message of a topic (mcl interns Message.Topic).
package census

import (
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"
)

const (
	// DefaultLimit is the number of topics a Census keeps when New is
	// passed a limit that is not positive.
	DefaultLimit = 10000
	// DefaultWindow is how far back Rate and Bandwidth look.
	DefaultWindow = 5 * time.Second
	// MaxTopicLen is the longest topic a Census tracks, in bytes: what mcl
	// sends at most. Longer ones (a sender of the seed format may send
	// them) are refused, so that the topics held take at most
	// limit*MaxTopicLen bytes, not a datagram each.
	MaxTopicLen = 4096
	// MaxSenders is the number of distinct senders counted per topic;
	// past it TopicStats.SendersMore is set and the count stops.
	MaxSenders = 64
	// buckets is the resolution of the window: Rate and Bandwidth sum
	// this many slices of it, and the one in progress, so that they look
	// back at least a window (and at most 11/10 of one).
	buckets = 10
)

// TopicStats is what a Census knows of one topic at a snapshot.
type TopicStats struct {
	Topic    string
	Messages uint64
	// Rate is messages per second over the window before the snapshot,
	// or since the first message when that came less than a window ago.
	// The window is cut in tenths: it reaches back between one and 11/10
	// of a window. Rate is 0 once the topic has been quiet that long.
	Rate float64
	// Bandwidth is payload bytes per second over the same span.
	Bandwidth float64
	// MinPeriod, MaxPeriod and Jitter (the population standard deviation)
	// are of the time between consecutive messages, all messages counted;
	// zero before the second message.
	MinPeriod, MaxPeriod, Jitter time.Duration
	// SizeMin, SizeMean and SizeMax are of payload lengths in bytes.
	SizeMin, SizeMax int
	SizeMean         float64
	// Senders is the number of distinct sender addresses, at most
	// MaxSenders; SendersMore says more were seen past it.
	Senders     int
	SendersMore bool
	// SenderAddrs are those senders' addresses, a copy.
	SenderAddrs []netip.AddrPort
	First, Last time.Time // arrival of the earliest and the latest message
}

// bucket counts the messages of one tick, a slice of the window.
type bucket struct {
	tick     int64 // which slice: time since the epoch / its width
	messages uint64
	bytes    uint64
}

// topic is one topic's running state.
type topic struct {
	name        string
	messages    uint64
	first, last time.Time
	lastNs      int64 // last, in ns since the epoch
	// Welford's running mean and sum of squared deviations of the period,
	// in seconds, over messages-1 periods.
	mean, m2             float64
	minPeriod, maxPeriod int64 // ns
	sizeMin, sizeMax     int
	sizeSum              uint64
	lastSender           netip.AddrPort
	senders              []netip.AddrPort // distinct, up to MaxSenders
	sendersMore          bool
	win                  [buckets + 1]bucket
}

// Census aggregates the messages of a group by topic. Its methods are
// safe to call from several goroutines (one feeding it and one taking
// snapshots is the intended use).
type Census struct {
	mu      sync.Mutex
	limit   int
	window  time.Duration
	width   int64 // of a bucket, ns
	epoch   time.Time
	started bool
	topics  map[string]*topic
	refused uint64
}

// New returns a Census that keeps at most limit topics (DefaultLimit when
// limit is not positive), with DefaultWindow.
func New(limit int) *Census { return NewWindow(limit, DefaultWindow) }

// NewWindow is New with the window over which Rate and Bandwidth are
// measured (DefaultWindow when not positive).
func NewWindow(limit int, window time.Duration) *Census {
	if limit <= 0 {
		limit = DefaultLimit
	}
	if window <= 0 {
		window = DefaultWindow
	}
	width := int64(window) / buckets
	if width < 1 {
		width = 1
	}
	return &Census{limit: limit, window: window, width: width, topics: make(map[string]*topic)}
}

// Limit returns the most topics c keeps.
func (c *Census) Limit() int { return c.limit }

// Window returns the span Rate and Bandwidth are measured over.
func (c *Census) Window() time.Duration { return c.window }

// since returns at in ns after the epoch, never negative.
func (c *Census) since(at time.Time) int64 {
	d := int64(at.Sub(c.epoch))
	if d < 0 {
		return 0
	}
	return d
}

// Add counts one message of topic, with a payload of payloadLen bytes, sent
// from sender and received at at. A message of a topic that is new when
// the Census already holds its limit of topics is refused (see Refused).
func (c *Census) Add(topicName string, payloadLen int, sender netip.AddrPort, at time.Time) {
	if payloadLen < 0 {
		payloadLen = 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		c.epoch, c.started = at, true
	}
	ns := c.since(at)
	t := c.topics[topicName]
	if t == nil {
		if len(c.topics) >= c.limit || len(topicName) > MaxTopicLen {
			c.refused++
			return
		}
		t = &topic{name: topicName, first: at, sizeMin: payloadLen, sizeMax: payloadLen, lastSender: sender}
		t.senders = append(make([]netip.AddrPort, 0, 1), sender)
		c.topics[topicName] = t
	} else {
		p := ns - t.lastNs
		if p < 0 { // out of order: count it as simultaneous
			p = 0
		}
		n := float64(t.messages) // periods so far, plus this one
		if t.messages == 1 || p < t.minPeriod {
			t.minPeriod = p
		}
		if p > t.maxPeriod {
			t.maxPeriod = p
		}
		x := float64(p) / 1e9
		d := x - t.mean
		t.mean += d / n
		t.m2 += d * (x - t.mean)
		t.sizeMin = min(t.sizeMin, payloadLen)
		t.sizeMax = max(t.sizeMax, payloadLen)
		if sender != t.lastSender {
			t.lastSender = sender
			t.noteSender(sender)
		}
	}
	t.messages++
	t.sizeSum += uint64(payloadLen)
	if t.messages == 1 || at.After(t.last) {
		t.last, t.lastNs = at, ns
	}
	if at.Before(t.first) {
		t.first = at
	}
	tick := ns / c.width
	b := &t.win[tick%(buckets+1)]
	switch {
	case b.tick == tick:
	case b.tick < tick:
		*b = bucket{tick: tick}
	default: // older than the window the bucket holds now
		return
	}
	b.messages++
	b.bytes += uint64(payloadLen)
}

// noteSender adds s to t's senders unless known or past MaxSenders.
func (t *topic) noteSender(s netip.AddrPort) {
	if t.sendersMore {
		return
	}
	for _, x := range t.senders {
		if x == s {
			return
		}
	}
	if len(t.senders) == MaxSenders {
		t.sendersMore = true
		t.senders = t.senders[:MaxSenders:MaxSenders]
		return
	}
	t.senders = append(t.senders, s)
}

// Refused returns the number of messages refused because their topic was
// new when the Census held its limit of topics.
func (c *Census) Refused() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

// Len returns the number of topics held.
func (c *Census) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.topics)
}

// Snapshot returns the statistics of every topic held, at now (which
// should not be earlier than the messages added), in no particular order.
func (c *Census) Snapshot(now time.Time) []TopicStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]TopicStats, 0, len(c.topics))
	nowNs := c.since(now)
	cur := nowNs / c.width
	start := (cur - buckets) * c.width // of the oldest bucket in the window
	for _, t := range c.topics {
		s := TopicStats{
			Topic: t.name, Messages: t.messages,
			SizeMin: t.sizeMin, SizeMax: t.sizeMax,
			SizeMean: float64(t.sizeSum) / float64(t.messages),
			Senders:  len(t.senders), SendersMore: t.sendersMore,
			SenderAddrs: slices.Clone(t.senders),
			First:       t.first, Last: t.last,
		}
		if t.messages > 1 {
			s.MinPeriod = time.Duration(t.minPeriod)
			s.MaxPeriod = time.Duration(t.maxPeriod)
			s.Jitter = time.Duration(math.Sqrt(t.m2/float64(t.messages-1)) * 1e9)
		}
		var msgs, bytes uint64
		for _, b := range t.win {
			if b.tick >= cur-buckets && b.tick <= cur {
				msgs += b.messages
				bytes += b.bytes
			}
		}
		from := max(start, c.since(t.first))
		if span := nowNs - from; span > 0 && msgs > 0 {
			s.Rate = float64(msgs) / (float64(span) / 1e9)
			s.Bandwidth = float64(bytes) / (float64(span) / 1e9)
		}
		out = append(out, s)
	}
	return out
}
