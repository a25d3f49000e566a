package bridge

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
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
	hellos *mcl.Subscriber // HelloTopic
	data   *mcl.Subscriber // the forwarded topics; nil for FromNATS
	filter *topic.Filter
	peers  *peers
	joiner *joiner
	msgSeq atomic.Uint64
	jsSeq  atomic.Uint64 // Nats-Msg-Id sequence

	js       jetstream.JetStream // nil without Stream
	consumer jetstream.Consumer  // nil unless Stream and from NATS

	settled atomic.Bool
	active  atomic.Bool
	npeers  atomic.Int64

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
	var idb [8]byte
	rand.Read(idb[:])
	sorted := slices.Clone(cfg.topics)
	slices.Sort(sorted)
	b := &Bridge{
		id:     hex.EncodeToString(idb[:]),
		key:    cfg.prefix + " " + cfg.dir.String() + " " + strings.Join(sorted, " "),
		cfg:    cfg,
		conn:   conn,
		filter: filter,
		joiner: newJoiner(cfg.bufBytes, 10*time.Second),
		done:   make(chan struct{}),
		ran:    make(chan struct{}),
		ready:  make(chan struct{}),
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
	b.hellos, err = mcl.Subscribe(conn, b.onHello, append(slices.Clone(cfg.subOpts), mcl.Topics(HelloTopic))...)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	if cfg.dir.toNATS() {
		so := append(slices.Clone(cfg.subOpts), mcl.QueueLimits(cfg.bufMsgs, cfg.bufBytes))
		if len(cfg.topics) > 0 {
			so = append(so, mcl.Topics(cfg.topics...))
		}
		if b.data, err = mcl.SubscribeSync(conn, so...); err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
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
// bridges and subscribed on NATS: messages published from then on are
// forwarded.
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
	b.updateRole()

	var wg sync.WaitGroup
	if b.data != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.readGroup(ctx)
		}()
	}
	if b.consumer != nil {
		b.consume(b.active.Load())
	} else if b.cfg.dir.fromNATS() {
		if err := b.subscribeNATS(); err != nil {
			cancel()
			wg.Wait()
			return err
		}
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
			b.mu.Lock()
			for _, s := range b.natsSubs {
				if n, err := s.Dropped(); err == nil {
					b.c.slowGone.Add(uint64(n))
				}
				s.Unsubscribe()
			}
			b.natsSubs = nil
			b.mu.Unlock()
			if b.consumer != nil {
				b.consume(false)
			}
			b.active.Store(false)
			b.announce(true)
			wg.Wait()
			return nil
		case <-t.C:
			b.announce(false)
			b.updateRole()
			if b.consumer != nil {
				b.consume(b.active.Load())
			}
		}
	}
}

// live is how long a silent bridge still counts as present.
func (b *Bridge) live() time.Duration { return 3*b.cfg.announce + b.cfg.announce/2 }

func (b *Bridge) updateRole() {
	lead, n := b.peers.leads(b.key, time.Now(), b.live())
	b.npeers.Store(int64(n))
	now := b.settled.Load() && lead
	if b.active.Swap(now) != now {
		if now {
			b.cfg.logger.Info("bridge: active", "id", b.id, "peers", n)
		} else {
			b.cfg.logger.Info("bridge: standby, a bridge with a lower id forwards", "id", b.id, "peers", n)
		}
	}
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

// readGroup forwards the group's messages to NATS.
func (b *Bridge) readGroup(ctx context.Context) {
	for {
		m, err := b.data.Next(ctx)
		if err != nil {
			return
		}
		if m.Topic == HelloTopic {
			continue
		}
		if b.peers.isBridgeAddr(m.Sender) {
			b.c.loops.Add(1) // republished from NATS by a bridge: not again
			continue
		}
		if !b.active.Load() {
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

func (b *Bridge) forward(m *mcl.Message) {
	h := nats.Header{}
	if topicSafe(m.Topic) {
		h.Set(HeaderTopic, m.Topic)
	} else {
		h.Set(HeaderTopicB64, base64.StdEncoding.EncodeToString([]byte(m.Topic)))
	}
	h.Set(HeaderOrigin, b.id)
	h.Set(HeaderSender, m.Sender.String())
	subj := Subject(b.cfg.prefix, m.Topic)
	max := int(b.nc.MaxPayload())
	if max <= 0 {
		max = 1 << 20 // not connected yet: the server's default
	}
	if b.js != nil {
		max -= len(nats.MsgIdHdr) + len(": \r\n") + len(b.id) + 21 // Nats-Msg-Id
	}
	if headerSize(h)+len(m.Payload) <= max {
		if err := b.publish(&nats.Msg{Subject: subj, Header: h, Data: m.Payload}); err != nil {
			b.c.dropNATS.Add(1)
			return
		}
		if b.js == nil { // else counted when the stream acknowledges it
			b.c.toNATS.Add(1)
			b.c.toNATSBytes.Add(uint64(len(m.Payload)))
		}
		return
	}
	id := strconv.FormatUint(b.msgSeq.Add(1), 10)
	room := max - headerSize(h) - len(HeaderMsg) - len(HeaderPart) - 2*len(": \r\n") - len(id) - 2*len(strconv.Itoa(maxParts)) - 1
	if room < 1024 {
		b.c.dropNATS.Add(1)
		return
	}
	n := (len(m.Payload) + room - 1) / room
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
		piece := m.Payload[i*room : min((i+1)*room, len(m.Payload))]
		if err := b.publish(&nats.Msg{Subject: subj, Header: ph, Data: piece}); err != nil {
			b.c.dropNATS.Add(1)
			return
		}
		b.c.partsToNATS.Add(1)
	}
	b.c.split.Add(1)
	if b.js == nil {
		b.c.toNATS.Add(1)
		b.c.toNATSBytes.Add(uint64(len(m.Payload)))
	}
}

func (b *Bridge) subscribeNATS() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range subjectsFor(b.cfg.prefix, b.cfg.topics) {
		sub, err := b.nc.Subscribe(s, b.fromNATS)
		if err != nil {
			for _, x := range b.natsSubs {
				x.Unsubscribe()
			}
			b.natsSubs = nil
			return fmt.Errorf("bridge: subscribe to %s: %w", s, err)
		}
		sub.SetPendingLimits(b.cfg.bufMsgs, b.cfg.bufBytes)
		b.natsSubs = append(b.natsSubs, sub)
	}
	return nil
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
