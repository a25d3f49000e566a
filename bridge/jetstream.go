package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream settings of a stream or consumer the bridge creates.
const (
	streamDuplicates = 2 * time.Minute  // the stream's Nats-Msg-Id window
	consumerAckWait  = 30 * time.Second // a message not acknowledged by then is delivered again
	jsPublishTimeout = 30 * time.Second // an unacknowledged publish is counted dropped after it
)

// newJetStream makes the JetStream context: asynchronous publishes, at most
// bufMsgs waiting for their acknowledgement (more are dropped and counted).
func (b *Bridge) newJetStream() error {
	js, err := jetstream.New(b.nc,
		jetstream.WithPublishAsyncMaxPending(b.cfg.bufMsgs),
		jetstream.WithPublishAsyncTimeout(jsPublishTimeout),
		jetstream.WithPublishAsyncAckHandler(b.onPubAck),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			b.c.dropNATS.Add(1)
		}))
	if err != nil {
		return fmt.Errorf("bridge: JetStream: %w", err)
	}
	b.js = js
	return nil
}

// onPubAck counts a message the stream stored: a whole one at its last part.
func (b *Bridge) onPubAck(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
	b.c.toNATSBytes.Add(uint64(len(m.Data)))
	if p := m.Header.Get(HeaderPart); p != "" {
		if i, n, ok := parsePart(p); !ok || i != n {
			return
		}
	}
	b.c.toNATS.Add(1)
}

// publish sends one NATS message (a whole message or a part): into the
// stream with a Nats-Msg-Id when there is one, else on core NATS.
func (b *Bridge) publish(m *nats.Msg) error {
	if b.js == nil {
		return b.nc.PublishMsg(m)
	}
	m.Header.Set(jetstream.MsgIDHeader, b.id+"-"+strconv.FormatUint(b.jsSeq.Add(1), 10))
	_, err := b.js.PublishMsgAsync(m)
	return err
}

// setupStream makes sure the stream exists and, forwarding from NATS, the
// durable consumer. It retries while NATS does not answer, until ctx is done.
func (b *Bridge) setupStream(ctx context.Context) error {
	for {
		err := b.trySetupStream(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
			errors.Is(err, nats.ErrNoResponders) { // nothing answers on $JS.API
			if errors.Is(err, nats.ErrNoResponders) {
				err = jetstream.ErrJetStreamNotEnabled
			}
			return fmt.Errorf("bridge: stream %s: %w (enable JetStream on the server: nats-server -js)", b.cfg.stream, err)
		}
		b.cfg.logger.Warn("bridge: setting up the JetStream stream; retrying", "stream", b.cfg.stream, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (b *Bridge) trySetupStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	want := b.cfg.prefix + ".>"
	s, err := b.js.Stream(ctx, b.cfg.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = b.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        b.cfg.stream,
			Description: "mcl bridge: group messages under " + want,
			Subjects:    []string{want},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxBytes:    b.cfg.streamMaxBytes,
			MaxAge:      b.cfg.streamMaxAge,
			Duplicates:  streamDuplicates,
		})
		if err == nil {
			b.cfg.logger.Info("bridge: created JetStream stream", "stream", b.cfg.stream, "subjects", want,
				"max_bytes", b.cfg.streamMaxBytes, "max_age", b.cfg.streamMaxAge)
		}
	}
	if err != nil {
		return err
	}
	if subj := s.CachedInfo().Config.Subjects; !slices.Contains(subj, want) {
		b.cfg.logger.Warn("bridge: the stream does not list the bridge's subjects; messages outside it are not stored",
			"stream", b.cfg.stream, "subjects", subj, "bridge", want)
	}
	if !b.cfg.dir.fromNATS() {
		return nil
	}
	cc := jetstream.ConsumerConfig{
		Durable:       b.cfg.durable,
		Description:   "mcl bridge: stream to group",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       consumerAckWait,
		MaxAckPending: b.cfg.bufMsgs,
	}
	if f := subjectsFor(b.cfg.prefix, b.cfg.topics); len(f) == 1 {
		cc.FilterSubject = f[0]
	} else {
		cc.FilterSubjects = f
	}
	c, err := s.CreateOrUpdateConsumer(ctx, cc)
	if err != nil {
		return err
	}
	b.roleMu.Lock() // follow reads it, from a hello perhaps
	b.consumer = c
	b.roleMu.Unlock()
	return nil
}

// consume starts or stops consuming the stream as the bridge becomes
// active or stands by, so that a standby bridge takes nothing from the
// shared consumer.
func (b *Bridge) consume(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case on && b.consuming == nil:
		cc, err := b.consumer.Consume(b.fromStream, jetstream.PullMaxMessages(min(b.cfg.bufMsgs, 1000)))
		if err != nil {
			b.cfg.logger.Warn("bridge: consuming the stream", "stream", b.cfg.stream, "err", err)
			return
		}
		b.consuming = cc
	case !on && b.consuming != nil:
		b.consuming.Stop()
		b.consuming = nil
	}
}

// fromStream republishes a stream message on the group and acknowledges
// it, or leaves it to be delivered again when the group side failed or the
// bridge stands by.
func (b *Bridge) fromStream(m jetstream.Msg) {
	switch b.fromNATSMsg(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}) {
	case retry:
		m.NakWithDelay(time.Second)
	default:
		m.Ack()
	}
}
