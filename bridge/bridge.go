package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/topic"
)

// Bridge forwards messages between a multicast group and a NATS cluster.
// Make one with New, start it with Run, and Close it.
type Bridge struct {
	id     string
	key    string // what redundant bridges share: see HelloTopic
	cfg    config
	conn   *mcl.Connection
	nc     *nats.Conn
	pub    *mcl.Publisher
	hellos *mcl.Subscriber // HelloTopic, for FromNATS; else data reads it
	data   *mcl.Subscriber // the forwarded topics and HelloTopic; nil for FromNATS
	filter *topic.Filter
	peers  *peers
	joiner *joiner
	out    toNATS // readGroup's
	msgSeq atomic.Uint64
	jsSeq  atomic.Uint64 // Nats-Msg-Id sequence

	js       jetstream.JetStream // nil without Stream
	consumer jetstream.Consumer  // nil unless Stream and from NATS; set under roleMu

	roleMu      sync.Mutex // serialises updateRole
	settled     atomic.Bool
	active      atomic.Bool
	activeSince atomic.Pointer[time.Time] // set before active first is
	npeers      atomic.Int64

	mu        sync.Mutex // guards below
	running   bool
	downSince time.Time
	outage    time.Duration
	natsSubs  []*nats.Subscription
	consuming jetstream.ConsumeContext

	done      chan struct{}
	ran       chan struct{} // closed when Run returns
	ready     chan struct{} // closed when Run forwards (or stands by)
	closeOnce sync.Once
	closeErr  error

	c counters
}

type counters struct {
	toNATS, toNATSBytes, fromNATS, fromNATSBytes   atomic.Uint64
	split, joined, incomplete                      atomic.Uint64
	dropNATS, dropGroup, invalid, loops, standby   atomic.Uint64
	reconnects, disconnects, filtered, partsToNATS atomic.Uint64
	slowGone                                       atomic.Uint64 // DroppedSlow of subscriptions ended
}

// New connects a bridge between conn's group and the NATS servers in
// natsURLs (comma-separated, as nats.Connect takes them: the members of
// one cluster, tried in turn). It opens the group's sockets and starts
// connecting to NATS, retrying in the background while no server answers;
// Run starts forwarding. Errors: ErrBadOption, a URL that does not parse,
// and the group's socket errors.
func New(conn *mcl.Connection, natsURLs string, opts ...Option) (*Bridge, error) {
	if conn == nil {
		return nil, fmt.Errorf("%w: nil connection: make one with mcl.NewConnection", ErrBadOption)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.stream != "" && cfg.dir.fromNATS() && cfg.durable == "" {
		if !cfg.nameSet {
			return nil, fmt.Errorf("%w: with Stream, forwarding from NATS needs a durable consumer name, one per site: give Durable (or Name)", ErrBadOption)
		}
		cfg.durable = jsName(cfg.name)
	}
	if err := checkURLs(natsURLs); err != nil {
		return nil, err
	}
	filter, err := topic.NewFilter(cfg.topics)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOption, err)
	}
	for _, subj := range subjectsFor(cfg.prefix, cfg.topics) {
		if len(subj) > maxSubject {
			return nil, fmt.Errorf("%w: subject %.40q... is %d bytes long: NATS takes at most %d; use a shorter prefix or topic pattern", ErrBadOption, subj, len(subj), maxSubject)
		}
	}
	var idb [8]byte
	rand.Read(idb[:])
	sorted := slices.Clone(cfg.topics)
	slices.Sort(sorted)
	id := hex.EncodeToString(idb[:])
	b := &Bridge{
		id:     id,
		key:    cfg.prefix + " " + cfg.dir.String() + " " + strings.Join(sorted, " "),
		cfg:    cfg,
		conn:   conn,
		filter: filter,
		joiner: newJoiner(cfg.bufBytes, 10*time.Second),
		out: toNATS{
			topics:  make(map[string]topicInfo),
			senders: make(map[netip.AddrPort][]string),
			origin:  []string{id},
			hdr:     make(nats.Header, 4),
		},
		done:  make(chan struct{}),
		ran:   make(chan struct{}),
		ready: make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			b.release()
		}
	}()
	if b.pub, err = mcl.NewPublisher(conn, cfg.pubOpts...); err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b.peers = newPeers(b.id, b.pub.LocalAddr())
	// One Subscriber reads the group: the forwarded topics and the hellos.
	// Alone on its socket, it reads on readGroup's goroutine, with no
	// hand-off. (Two Subscribers share the socket through mcl's reading
	// goroutine, whose hand-off let the kernel drop datagrams at rates a
	// single reader sustains: docs/bridge.md, Benchmark.)
	if cfg.dir.toNATS() {
		so := append(slices.Clone(cfg.subOpts), mcl.QueueLimits(cfg.bufMsgs, cfg.bufBytes))
		if len(cfg.topics) > 0 {
			so = append(so, mcl.Topics(append(slices.Clone(cfg.topics), HelloTopic)...))
		}
		b.data, err = mcl.SubscribeSync(conn, so...)
	} else {
		b.hellos, err = mcl.Subscribe(conn, b.onHello, append(slices.Clone(cfg.subOpts), mcl.Topics(HelloTopic))...)
	}
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	nopts := []nats.Option{
		nats.Name(cfg.name),
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(cfg.bufBytes),
		nats.DisconnectErrHandler(b.onDisconnect),
		nats.ReconnectHandler(b.onReconnect),
		nats.ConnectHandler(func(nc *nats.Conn) {
			cfg.logger.Info("bridge: connected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			if !errors.Is(err, nats.ErrSlowConsumer) {
				cfg.logger.Warn("bridge: NATS error", "err", err)
			}
		}),
	}
	b.nc, err = nats.Connect(natsURLs, append(nopts, cfg.natsOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("bridge: connect to NATS at %s: %w (check the URLs, credentials and TLS options)", natsURLs, err)
	}
	if !b.nc.IsConnected() {
		b.mu.Lock()
		b.downSince = time.Now()
		b.mu.Unlock()
		cfg.logger.Warn("bridge: no NATS server answers yet; retrying in the background", "urls", natsURLs)
	}
	if cfg.stream != "" {
		if err := b.newJetStream(); err != nil {
			return nil, err
		}
	}
	ok = true
	return b, nil
}

func checkURLs(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("%w: no NATS URL: give one or more, comma-separated, such as nats://127.0.0.1:4222", ErrBadOption)
	}
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil || p.Host == "" {
			return fmt.Errorf("%w: NATS URL %q: use nats://HOST:PORT, comma-separated for a cluster", ErrBadOption, u)
		}
	}
	return nil
}

// ID returns the bridge's random id, sent in HeaderOrigin and HelloTopic.
func (b *Bridge) ID() string { return b.id }

// Active reports whether the bridge forwards: it has settled after Run
// started (heard the other bridges of its group) and no other bridge on
// the group with the same configuration has a lower id.
func (b *Bridge) Active() bool { return b.active.Load() }

// Ready returns a channel closed once Run has heard the group's other
// bridges and, if it is the active one, subscribed on NATS: messages
// published from then on are forwarded (those the group carried before are
// counted Stats.Standby).
func (b *Bridge) Ready() <-chan struct{} { return b.ready }

// Run forwards messages until ctx is done or Close is called, then returns
// nil. Call Close afterwards to release the sockets and the NATS
// connection. Errors: ErrClosed, and a second call while running.
func (b *Bridge) Run(ctx context.Context) error {
	b.mu.Lock()
	select {
	case <-b.done:
		b.mu.Unlock()
		return ErrClosed
	default:
	}
	if b.running {
		b.mu.Unlock()
		return errors.New("bridge: Run called twice")
	}
	b.running = true
	b.mu.Unlock()
	defer close(b.ran)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	if b.data != nil {
		// From now on: it reads the hellos too.
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.readGroup(ctx)
		}()
	}
	b.announce(false)
	// Wait for the bridges of the group to answer before forwarding, so
	// that what they republish is recognised as theirs.
	select {
	case <-time.After(b.cfg.settle):
	case <-ctx.Done():
		b.announce(true)
		return nil
	}
	if b.js != nil {
		// Before forwarding: the stream exists, and so does the consumer.
		if err := b.setupStream(ctx); err != nil {
			b.announce(true)
			return err
		}
		if ctx.Err() != nil {
			b.announce(true)
			return nil
		}
	}
	b.settled.Store(true)
	if err := b.updateRole(); err != nil {
		return err
	}
	if b.nc.IsConnected() {
		b.nc.FlushTimeout(time.Second) // the server has the subscriptions
	}
	close(b.ready)
	t := time.NewTicker(b.cfg.announce)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.settled.Store(false) // no hello makes it active again
			b.updateRole()
			b.announce(true)
			return nil
		case <-t.C:
			b.announce(false)
			b.updateRole() // and retries what failed to subscribe
		}
	}
}

// live is how long a silent bridge still counts as present.
func (b *Bridge) live() time.Duration { return 3*b.cfg.announce + b.cfg.announce/2 }

// updateRole works out whether the bridge is the active one of its
// group, and makes its NATS side follow (see follow). It returns the
// error of subscribing on NATS, which it also logs.
func (b *Bridge) updateRole() error {
	b.roleMu.Lock()
	defer b.roleMu.Unlock()
	lead, n := b.peers.leads(b.key, time.Now(), b.live())
	b.npeers.Store(int64(n))
	now := b.settled.Load() && lead
	if b.active.Load() != now {
		if now {
			t := time.Now()
			b.activeSince.Store(&t) // before active: readGroup reads them in turn
			b.cfg.logger.Info("bridge: active", "id", b.id, "peers", n)
		} else {
			b.cfg.logger.Info("bridge: standby, a bridge with a lower id forwards", "id", b.id, "peers", n)
		}
		b.active.Store(now)
	}
	err := b.follow(now)
	if err != nil {
		b.cfg.logger.Warn("bridge: subscribing on NATS; retrying", "err", err)
	}
	return err
}

// follow takes messages from NATS while the bridge is active, and only
// then: a standby bridge that took them too would, when it takes over,
// republish those it had not yet handled, which the active one had.
func (b *Bridge) follow(active bool) error {
	if b.consumer != nil {
		b.consume(active)
		return nil
	}
	if !b.cfg.dir.fromNATS() {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if active == (b.natsSubs != nil) {
		return nil
	}
	if !active {
		for _, s := range b.natsSubs {
			if n, err := s.Dropped(); err == nil {
				b.c.slowGone.Add(uint64(n))
			}
			s.Unsubscribe()
		}
		b.natsSubs = nil
		return nil
	}
	var subs []*nats.Subscription
	for _, s := range subjectsFor(b.cfg.prefix, b.cfg.topics) {
		sub, err := b.nc.Subscribe(s, b.fromNATS)
		if err != nil {
			for _, x := range subs {
				x.Unsubscribe()
			}
			return fmt.Errorf("bridge: subscribe to %s: %w", s, err)
		}
		sub.SetPendingLimits(b.cfg.bufMsgs, b.cfg.bufBytes)
		subs = append(subs, sub)
	}
	b.natsSubs = subs
	return nil
}

func (b *Bridge) announce(bye bool) {
	if err := b.pub.Publish(HelloTopic, hello{Bridge: b.id, Key: b.key, Bye: bye}); err != nil && !errors.Is(err, mcl.ErrClosed) {
		b.cfg.logger.Warn("bridge: announce on the group", "err", err)
	}
}

func (b *Bridge) onHello(m *mcl.Message) {
	var h hello
	if m.Topic != HelloTopic || m.Decode(&h) != nil || h.Bridge == "" {
		return
	}
	isNew := b.peers.heard(h, m.Sender, time.Now(), b.live())
	if h.Bridge == b.id {
		return
	}
	if isNew {
		b.announce(false) // so that it knows us before it forwards
	}
	b.updateRole()
}

// readGroup handles the group's hellos and forwards its other messages to
// NATS, once the bridge is active (before it settled, it is not).
func (b *Bridge) readGroup(ctx context.Context) {
	for {
		m, err := b.data.Next(ctx)
		if err != nil {
			return
		}
		if m.Topic == HelloTopic {
			b.onHello(m)
			continue
		}
		if b.peers.isBridgeAddr(m.Sender) {
			b.c.loops.Add(1) // republished from NATS by a bridge: not again
			continue
		}
		// Received before the bridge became active: the active bridge
		// of then forwarded it, or had stopped.
		if !b.active.Load() || m.Received.Before(*b.activeSince.Load()) {
			b.c.standby.Add(1)
			continue
		}
		b.forward(m)
	}
}

// topicSafe reports whether t can go in a header as it is.
func topicSafe(t string) bool {
	if !utf8.ValidString(t) || strings.TrimSpace(t) != t {
		return false
	}
	for _, r := range t {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// headerSize is the size of h on the wire.
func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n
}

// toNATS is what readGroup keeps to forward messages without allocating:
// the subject and topic header of recent topics, the sender header of
// recent senders, and, on core NATS (which copies a message as it is
// published), one header and message used again and again.
type toNATS struct {
	topics  map[string]topicInfo
	senders map[netip.AddrPort][]string
	origin  []string
	hdr     nats.Header
	msg     nats.Msg
}

type topicInfo struct {
	subject string
	key     string   // HeaderTopic, or HeaderTopicB64 for a topic not safe in a header
	value   []string // the header's value
	tooLong bool     // the subject is longer than maxSubject: not forwarded
}

// maxCached bounds the topics and the senders toNATS remembers; past it,
// forward works them out for each message.
const maxCached = 1024

func (b *Bridge) topicInfo(topic string) topicInfo {
	if t, ok := b.out.topics[topic]; ok {
		return t
	}
	t := topicInfo{subject: Subject(b.cfg.prefix, topic), key: HeaderTopic, value: []string{topic}}
	t.tooLong = len(t.subject) > maxSubject
	if !topicSafe(topic) {
		t.key, t.value = HeaderTopicB64, []string{base64.StdEncoding.EncodeToString([]byte(topic))}
	}
	if len(b.out.topics) < maxCached {
		b.out.topics[topic] = t
	}
	return t
}

func (b *Bridge) senderHeader(a netip.AddrPort) []string {
	if v, ok := b.out.senders[a]; ok {
		return v
	}
	v := []string{a.String()}
	if len(b.out.senders) < maxCached {
		b.out.senders[a] = v
	}
	return v
}

// forward publishes a group message on NATS, in parts if it is larger
// than the server's max_payload. Only readGroup calls it.
func (b *Bridge) forward(m *mcl.Message) {
	t := b.topicInfo(m.Topic)
	if t.tooLong {
		b.c.dropNATS.Add(1)
		return
	}
	h, out, data := b.out.hdr, &b.out.msg, m.Payload
	if b.js != nil {
		// Kept until the stream acknowledges it, and published again
		// if no server answered: its own header, and a copy of the
		// payload, which is valid only until the next message.
		h, out, data = make(nats.Header, 4), &nats.Msg{}, bytes.Clone(m.Payload)
	} else {
		clear(h)
	}
	h[t.key] = t.value
	h[HeaderOrigin] = b.out.origin
	h[HeaderSender] = b.senderHeader(m.Sender)
	max := int(b.nc.MaxPayload())
	if max <= 0 {
		max = 1 << 20 // not connected yet: the server's default
	}
	if b.js != nil {
		max -= len(nats.MsgIdHdr) + len(": \r\n") + len(b.id) + 21 // Nats-Msg-Id
	}
	if headerSize(h)+len(data) <= max {
		*out = nats.Msg{Subject: t.subject, Header: h, Data: data}
		if err := b.publish(out); err != nil {
			b.c.dropNATS.Add(1)
			return
		}
		if b.js == nil { // else counted when the stream acknowledges it
			b.c.toNATS.Add(1)
			b.c.toNATSBytes.Add(uint64(len(data)))
		}
		return
	}
	id := strconv.FormatUint(b.msgSeq.Add(1), 10)
	room := max - headerSize(h) - len(HeaderMsg) - len(HeaderPart) - 2*len(": \r\n") - len(id) - 2*len(strconv.Itoa(maxParts)) - 1
	if room < 1024 {
		b.c.dropNATS.Add(1)
		return
	}
	n := (len(data) + room - 1) / room
	if n > maxParts {
		b.c.dropNATS.Add(1)
		return
	}
	h.Set(HeaderMsg, id)
	for i := 0; i < n; i++ {
		ph := make(nats.Header, len(h)+1)
		for k, v := range h {
			ph[k] = v
		}
		ph.Set(HeaderPart, strconv.Itoa(i+1)+"/"+strconv.Itoa(n))
		piece := data[i*room : min((i+1)*room, len(data))]
		if err := b.publish(&nats.Msg{Subject: t.subject, Header: ph, Data: piece}); err != nil {
			b.c.dropNATS.Add(1)
			return
		}
		b.c.partsToNATS.Add(1)
	}
	b.c.split.Add(1)
	if b.js == nil {
		b.c.toNATS.Add(1)
		b.c.toNATSBytes.Add(uint64(len(data)))
	}
}

// fromNATS republishes a NATS message on the group.
func (b *Bridge) fromNATS(msg *nats.Msg) { b.fromNATSMsg(msg) }

// outcome says what became of a NATS message: done (republished, or
// never to be: a loop, invalid, filtered) or to be tried again.
type outcome int

const (
	done outcome = iota
	retry
)

func (b *Bridge) fromNATSMsg(msg *nats.Msg) outcome {
	if o := msg.Header.Get(HeaderOrigin); o != "" && b.peers.isBridgeID(o) {
		b.c.loops.Add(1) // from the group in the first place
		return done
	}
	if !b.active.Load() {
		b.c.standby.Add(1)
		return retry
	}
	data := msg.Data
	if p := msg.Header.Get(HeaderPart); p != "" {
		i, n, ok := parsePart(p)
		if !ok {
			b.c.invalid.Add(1)
			return done
		}
		whole, dropped := b.joiner.add(msg.Header.Get(HeaderOrigin)+"/"+msg.Header.Get(HeaderMsg), i, n, data, time.Now())
		b.c.incomplete.Add(uint64(dropped))
		if whole == nil {
			return done
		}
		b.c.joined.Add(1)
		data = whole
	}
	var t string
	if v, ok := msg.Header[HeaderTopic]; ok && len(v) > 0 {
		t = v[0]
	} else if v := msg.Header.Get(HeaderTopicB64); v != "" {
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			b.c.invalid.Add(1)
			return done
		}
		t = string(raw)
	} else {
		var err error
		if t, err = Topic(b.cfg.prefix, msg.Subject); err != nil {
			b.c.invalid.Add(1)
			return done
		}
	}
	if t == HelloTopic {
		b.c.invalid.Add(1)
		return done
	}
	if !b.filter.MatchString(t) {
		b.c.filtered.Add(1)
		return done
	}
	if err := b.pub.PublishRaw(t, data); err != nil {
		if errors.Is(err, mcl.ErrBadPayload) || errors.Is(err, mcl.ErrTopicTooLong) {
			b.c.invalid.Add(1)
		} else {
			b.c.dropGroup.Add(1)
			return retry
		}
		return done
	}
	b.c.fromNATS.Add(1)
	b.c.fromNATSBytes.Add(uint64(len(data)))
	return done
}

func (b *Bridge) onDisconnect(nc *nats.Conn, err error) {
	if nc.IsClosed() {
		return // Close
	}
	b.c.disconnects.Add(1)
	b.mu.Lock()
	if b.downSince.IsZero() {
		b.downSince = time.Now()
	}
	b.mu.Unlock()
	b.cfg.logger.Warn("bridge: disconnected from NATS; reconnecting", "err", err)
}

func (b *Bridge) onReconnect(nc *nats.Conn) {
	b.c.reconnects.Add(1)
	b.mu.Lock()
	if !b.downSince.IsZero() {
		b.outage = time.Since(b.downSince)
		b.downSince = time.Time{}
	}
	out := b.outage
	b.mu.Unlock()
	b.cfg.logger.Info("bridge: reconnected to NATS", "server", nc.ConnectedUrlRedacted(), "outage", out)
}

// Close stops Run, announces on the group that the bridge leaves (so a
// redundant one takes over at once), flushes what waits for NATS (for up
// to a second) and closes the NATS connection and the group's sockets. It
// is safe to call more than once.
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		close(b.done)
		running := b.running
		b.mu.Unlock()
		if running {
			<-b.ran
		} else {
			b.announce(true)
		}
		b.closeErr = b.release()
	})
	return b.closeErr
}

func (b *Bridge) release() error {
	var errs []error
	if b.nc != nil {
		if b.js != nil && b.nc.IsConnected() {
			select { // the stream's acknowledgements, for the counters
			case <-b.js.PublishAsyncComplete():
			case <-time.After(time.Second):
			}
		}
		if b.nc.IsConnected() {
			b.nc.FlushTimeout(time.Second)
		}
		b.nc.Close()
	}
	if b.data != nil {
		b.data.Close()
	}
	if b.hellos != nil {
		b.hellos.Close()
	}
	if b.pub != nil {
		if err := b.pub.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
