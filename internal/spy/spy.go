// Package spy serves the web page of `mcl spy`: a live table of the
// topics on a group, and for a chosen topic its senders, its last messages
// as JSON trees, a plot of its rate and of any numeric field.
//
// A Server is fed every message (Add, from a Subscriber's callback) and
// serves HTTP: the page and its assets, embedded in the binary; a stream
// of Server-Sent Events with a frame of the table at most ten times a
// second; JSON endpoints for a frame and for a topic's kept messages as
// JSON lines. Counting is per message (internal/census); rendering
// (msgpack to JSON, sorting, filtering) is done per frame, on what is
// kept.
//
// Everything is bounded: at most Config.MaxTopics topics (the messages of
// further ones are counted as refused), Config.Keep messages per topic,
// Config.MaxKeptBytes bytes of kept payloads in all, Config.MaxRows rows
// and a few MiB of rendered messages per frame. Nothing that comes from
// the network is markup to the page: it inserts topics and payloads as
// text, and the server sends a Content-Security-Policy that allows no
// inline script and nothing from another origin.
package spy

import (
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mcl-go/mcl/internal/census"
	"github.com/mcl-go/mcl/internal/msgjson"
	"github.com/mcl-go/mcl/internal/topic"
)

// Defaults of Config.
const (
	DefaultKeep         = 20
	MaxKeep             = 1000
	DefaultMaxRows      = 500
	DefaultInterval     = 100 * time.Millisecond
	MinInterval         = 100 * time.Millisecond // ten frames a second at most
	DefaultMaxKeptBytes = 64 << 20
	DefaultMaxPayload   = 1 << 20
	// maxTopicBytes is the longest topic sent in a row; longer ones are
	// cut (at a rune boundary) and flagged, and selected by their id.
	maxTopicBytes = 256
	// maxDetailJSON bounds the rendered messages of one frame; past it
	// the older messages are sent without their payload.
	maxDetailJSON = 4 << 20
	// maxSenders is the number of distinct senders listed per topic.
	maxSenders = census.MaxSenders
)

// Footer is what the Subscriber counts beside the census.
type Footer struct {
	Undecodable uint64 `json:"undecodable"`
	Lost        uint64 `json:"lost"`
	Reordered   uint64 `json:"reordered"`
	Repeated    uint64 `json:"repeated"`
	Dropped     uint64 `json:"dropped"`
}

// Config sets up a Server. Zero fields take their defaults.
type Config struct {
	MaxTopics    int           // topics tracked (census.DefaultLimit)
	Keep         int           // messages kept per topic (DefaultKeep, at most MaxKeep)
	MaxRows      int           // table rows per frame (DefaultMaxRows)
	Interval     time.Duration // between two frames (DefaultInterval, at least MinInterval)
	Window       time.Duration // of rates (census.DefaultWindow)
	MaxKeptBytes int           // payload bytes kept in all topics (DefaultMaxKeptBytes)
	MaxPayload   int           // largest payload kept (DefaultMaxPayload)
	Where        string        // the group, for the page's title
	// AnyHost accepts requests whatever their Host header. Without it
	// only localhost and IP literals are accepted, which defeats DNS
	// rebinding against a server bound to the loopback interface.
	AnyHost bool
	// Footer, when not nil, returns the Subscriber's counters.
	Footer func() Footer
	// Senders, when not nil, returns the loss of each mcl/2 sender by
	// address, for the rows' mcl/2 column; it is called once a frame.
	Senders func() map[netip.AddrPort]census.Loss
	// Now, when not nil, replaces time.Now (tests).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.MaxTopics <= 0 {
		c.MaxTopics = census.DefaultLimit
	}
	if c.Keep <= 0 {
		c.Keep = DefaultKeep
	}
	c.Keep = min(c.Keep, MaxKeep)
	if c.MaxRows <= 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	c.Interval = max(c.Interval, MinInterval)
	if c.Window <= 0 {
		c.Window = census.DefaultWindow
	}
	if c.MaxKeptBytes <= 0 {
		c.MaxKeptBytes = DefaultMaxKeptBytes
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// slot is one kept message.
type slot struct {
	seq     uint64 // 1 for the topic's first message
	at      time.Time
	sender  netip.AddrPort
	size    int
	payload []byte // its capacity counts against MaxKeptBytes
	kept    bool   // payload holds the message's
}

type senderCount struct {
	addr     netip.AddrPort
	messages uint64
}

// entry is what a Server keeps of one topic beside its census.
type entry struct {
	id          uint64
	topic       string
	seq         uint64 // messages recorded
	ring        []slot // up to Keep, the message of seq s at (s-1)%Keep
	last        int    // index in senders of the last sender
	senders     []senderCount
	sendersMore bool
}

// Server aggregates the messages of a group and serves the spy page.
type Server struct {
	cfg Config
	cen atomic.Pointer[census.Census]

	mu      sync.Mutex
	entries map[string]*entry
	byID    map[uint64]*entry
	nextID  uint64
	kept    int    // bytes of slot payload buffers
	notKept uint64 // messages whose payload was not kept (too big, or MaxKeptBytes)
	cleared time.Time

	snapMu   sync.Mutex
	snapAt   time.Time
	snapCen  *census.Census
	snapshot []census.TopicStats
}

// New returns a Server.
func New(cfg Config) *Server {
	cfg.defaults()
	s := &Server{cfg: cfg}
	s.reset()
	return s
}

// Config returns the configuration in effect, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

func (s *Server) reset() {
	s.mu.Lock()
	s.cen.Store(census.NewWindow(s.cfg.MaxTopics, s.cfg.Window))
	s.entries = make(map[string]*entry)
	s.byID = make(map[uint64]*entry)
	s.kept = 0
	s.notKept = 0
	s.cleared = s.cfg.Now()
	s.mu.Unlock()
}

// Clear forgets every topic and message.
func (s *Server) Clear() { s.reset() }

// Add counts one message and keeps it among its topic's last. It copies
// payload, which may be reused once Add returns. It is meant to be called
// from a Subscriber's callback: it costs a census.Add, a copy of the
// payload into a buffer reused from the slot it replaces, and allocates
// only when a topic, a sender or a larger buffer is new.
func (s *Server) Add(topicName string, payload []byte, sender netip.AddrPort, at time.Time) {
	s.cen.Load().Add(topicName, len(payload), sender, at)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[topicName]
	if e == nil {
		if len(s.entries) >= s.cfg.MaxTopics || len(topicName) > census.MaxTopicLen {
			return // the census counts it as refused
		}
		s.nextID++
		e = &entry{id: s.nextID, topic: topicName, last: -1}
		s.entries[topicName] = e
		s.byID[e.id] = e
	}
	e.seq++
	i := int((e.seq - 1) % uint64(s.cfg.Keep))
	if i == len(e.ring) {
		e.ring = append(e.ring, slot{})
	}
	sl := &e.ring[i]
	sl.seq, sl.at, sl.sender, sl.size = e.seq, at, sender, len(payload)
	switch {
	case len(payload) <= cap(sl.payload):
		sl.payload = append(sl.payload[:0], payload...)
		sl.kept = true
	case len(payload) <= s.cfg.MaxPayload && s.kept-cap(sl.payload)+len(payload) <= s.cfg.MaxKeptBytes:
		s.kept += len(payload) - cap(sl.payload)
		sl.payload = append([]byte(nil), payload...)
		s.kept += cap(sl.payload) - len(payload) // append may round up
		sl.kept = true
	default:
		s.kept -= cap(sl.payload)
		sl.payload = nil
		sl.kept = false
		s.notKept++
	}
	e.noteSender(sender)
}

func (e *entry) noteSender(a netip.AddrPort) {
	if e.last >= 0 && e.senders[e.last].addr == a {
		e.senders[e.last].messages++
		return
	}
	for i := range e.senders {
		if e.senders[i].addr == a {
			e.senders[i].messages++
			e.last = i
			return
		}
	}
	if len(e.senders) == maxSenders {
		e.sendersMore = true
		return
	}
	e.senders = append(e.senders, senderCount{a, 1})
	e.last = len(e.senders) - 1
}

// Len returns the number of topics held.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// KeptBytes returns the bytes held in kept payloads.
func (s *Server) KeptBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kept
}

// Census returns the census in use (a new one after Clear).
func (s *Server) Census() *census.Census { return s.cen.Load() }

// Query selects what a frame holds.
type Query struct {
	Sort   string // a column: name, messages, rate, bandwidth, size, jitter, senders, last
	Desc   bool   // largest first
	Filter string // patterns separated by spaces or commas; empty for all
	Topic  uint64 // id of the topic whose detail is wanted, 0 for none
	Since  uint64 // with Topic: send only its messages after this one
}

// Sorts lists the columns Query.Sort takes.
var Sorts = []string{"name", "messages", "rate", "bandwidth", "size", "jitter", "senders", "last"}

// Row is one topic of the table.
type Row struct {
	ID uint64 `json:"id"` // 0 when not held (cleared since)
	census.Row
	Cut bool    `json:"cut,omitempty"` // Topic is the start of a longer one
	Age float64 `json:"age_s"`         // since the last message
}

// Frame is one update of the page.
type Frame struct {
	Time     time.Time `json:"time"`
	Where    string    `json:"where"`
	Topics   int       `json:"topics"`  // held
	Matched  int       `json:"matched"` // passing the filter
	Rows     []Row     `json:"rows"`    // the first MaxRows of those, sorted
	MaxRows  int       `json:"max_rows"`
	Limit    int       `json:"limit"`   // MaxTopics
	Refused  uint64    `json:"refused"` // messages of topics past Limit
	NotKept  uint64    `json:"not_kept"`
	Keep     int       `json:"keep"`
	Interval float64   `json:"interval_s"`
	Footer
	Error  string  `json:"error,omitempty"` // a bad filter
	Detail *Detail `json:"detail,omitempty"`
}

// Sender is one sender of a topic.
type Sender struct {
	Addr     string `json:"addr"`
	Messages uint64 `json:"messages"`
}

// Message is one kept message, its payload rendered as JSON.
type Message struct {
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	Sender  string          `json:"sender"`
	Size    int             `json:"size"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Note    string          `json:"note,omitempty"` // why Payload is missing, or what is odd about it
}

// Detail is what the page shows of the selected topic.
type Detail struct {
	ID          uint64    `json:"id"`
	Gone        bool      `json:"gone,omitempty"` // no longer held (cleared)
	Topic       string    `json:"topic"`
	Seq         uint64    `json:"seq"` // messages recorded
	Stats       *Row      `json:"stats,omitempty"`
	Senders     []Sender  `json:"senders"`
	SendersMore bool      `json:"senders_more,omitempty"`
	Messages    []Message `json:"messages"` // after Query.Since, oldest first
}

// snap returns the census's snapshot, shared by the frames of an
// interval; callers must not modify it.
func (s *Server) snap(now time.Time) []census.TopicStats {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	c := s.cen.Load()
	if c != s.snapCen || now.Sub(s.snapAt) >= s.cfg.Interval/2 || now.Before(s.snapAt) {
		s.snapshot = c.Snapshot(now)
		s.snapAt, s.snapCen = now, c
	}
	return s.snapshot
}

// ParseFilter compiles the patterns of a filter box: separated by spaces
// or commas, each a name or a pattern of internal/topic.
func ParseFilter(text string) (*topic.Filter, error) {
	return topic.NewFilter(strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }))
}

// Frame renders a frame for q.
func (s *Server) Frame(q Query) Frame {
	now := s.cfg.Now()
	all := s.snap(now)
	f := Frame{
		Time: now.UTC(), Where: s.cfg.Where, Topics: len(all), MaxRows: s.cfg.MaxRows,
		Limit: s.cfg.MaxTopics, Refused: s.cen.Load().Refused(), Keep: s.cfg.Keep,
		Interval: s.cfg.Interval.Seconds(), Rows: []Row{},
	}
	if s.cfg.Footer != nil {
		f.Footer = s.cfg.Footer()
	}
	filter, err := ParseFilter(q.Filter)
	if err != nil {
		f.Error = err.Error()
		filter = nil
	}
	ts := make([]census.TopicStats, 0, len(all))
	for _, t := range all {
		if filter.MatchString(t.Topic) {
			ts = append(ts, t)
		}
	}
	f.Matched = len(ts)
	census.Sort(ts, q.Sort, q.Desc)
	ts = ts[:min(len(ts), s.cfg.MaxRows)]
	f.Rows = make([]Row, len(ts))
	var senders map[netip.AddrPort]census.Loss
	if s.cfg.Senders != nil {
		senders = s.cfg.Senders()
	}
	s.mu.Lock()
	f.NotKept = s.notKept
	for i, t := range ts {
		f.Rows[i] = row(t, now, senders)
		if e := s.entries[t.Topic]; e != nil {
			f.Rows[i].ID = e.id
		}
	}
	if q.Topic != 0 {
		f.Detail = s.detailLocked(q.Topic, q.Since, maxDetailJSON)
	}
	s.mu.Unlock()
	if d := f.Detail; d != nil && !d.Gone {
		for _, t := range all { // O(topics), once a frame
			if t.Topic == d.Topic {
				r := row(t, now, nil)
				r.ID, r.Topic, r.Cut = d.ID, "", false
				d.Stats = &r
				break
			}
		}
	}
	return f
}

// detailLocked renders topic id's senders and its kept messages after
// since, newest first within budget bytes of JSON; s.mu is held.
func (s *Server) detailLocked(id, since uint64, budget int) *Detail {
	e := s.byID[id]
	if e == nil {
		return &Detail{ID: id, Gone: true, Senders: []Sender{}, Messages: []Message{}}
	}
	d := &Detail{ID: id, Topic: e.topic, Seq: e.seq, SendersMore: e.sendersMore}
	d.Senders = make([]Sender, len(e.senders))
	for i, x := range e.senders {
		d.Senders[i] = Sender{x.addr.String(), x.messages}
	}
	d.Messages = s.messagesLocked(e, since, budget)
	return d
}

// messagesLocked renders e's kept messages after since, oldest first;
// the newest get their payload while the rendering is within budget
// bytes (no bound when budget is negative).
func (s *Server) messagesLocked(e *entry, since uint64, budget int) []Message {
	first := max(since+1, e.seq-uint64(len(e.ring))+1) // len(e.ring) <= e.seq
	if first > e.seq {
		return []Message{}
	}
	out := make([]Message, e.seq-first+1)
	for seq := e.seq; seq >= first; seq-- {
		sl := &e.ring[(seq-1)%uint64(s.cfg.Keep)]
		m := &out[seq-first]
		*m = Message{Seq: sl.seq, Time: sl.at.UTC(), Sender: sl.sender.String(), Size: sl.size}
		switch {
		case !sl.kept:
			m.Note = "payload not kept (over the size or memory bound)"
		case budget >= 0 && budget < len(sl.payload):
			m.Note = "payload not sent in this frame (too much to render); download the topic's messages"
		default:
			j, rest, err := msgjson.ToJSON(nil, sl.payload)
			switch {
			case err != nil:
				m.Note = "undecodable msgpack: " + err.Error()
			case budget >= 0 && len(j) > budget:
				m.Note = "payload not sent in this frame (too much to render); download the topic's messages"
			default:
				m.Payload = j
				if len(rest) > 0 {
					m.Note = "bytes after the first msgpack value ignored"
				}
				if budget >= 0 {
					budget -= len(j)
				}
			}
		}
	}
	return out
}

// Messages returns the kept messages of topic id, oldest first, and
// whether the topic is held.
func (s *Server) Messages(id uint64) (topicName string, ms []Message, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byID[id]
	if e == nil {
		return "", nil, false
	}
	return e.topic, s.messagesLocked(e, 0, -1), true
}

// row converts t for the table, its topic cut to maxTopicBytes, with the
// loss of its senders found in senders.
func row(t census.TopicStats, now time.Time, senders map[netip.AddrPort]census.Loss) Row {
	r := Row{Row: t.Row(senders), Age: max(0, now.Sub(t.Last).Seconds())}
	if len(r.Topic) > maxTopicBytes {
		n := maxTopicBytes
		for n > 0 && !utf8.RuneStart(r.Topic[n]) {
			n--
		}
		r.Topic, r.Cut = r.Topic[:n], true
	}
	return r
}
