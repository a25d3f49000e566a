package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/bridge"
	"github.com/mcl-go/mcl/wire"
)

// bridgeStarted is called with the bridge once it forwards; tests replace
// it.
var bridgeStarted = func(*bridge.Bridge) {}

func newBridgeCmd() *cobra.Command {
	var (
		g        groupFlags
		natsURLs string
		prefix   string
		dir      string
		asJSON   bool
		every    time.Duration
		bufMsgs  int
		bufBytes int
		name     string
		stream   string
		durable  string
		maxBytes int64
		maxAge   time.Duration
	)
	c := &cobra.Command{
		Use:   "bridge --nats URL[,URL...] [--topic PATTERN ...] [--subject-prefix mcl] [--direction both|to-nats|from-nats]",
		Short: "Forward messages between the group and a NATS cluster",
		Long: `bridge joins a group and connects to a NATS server or cluster, and forwards
messages both ways: each group message becomes one NATS message on subject
PREFIX.SEGMENT.SEGMENT (the topic's /-separated segments, escaped as
docs/bridge.md says), its exact topic in the header Mcl-Topic and its msgpack
payload, byte-exact, as the body; NATS messages under PREFIX are republished
on the group. Run one at each site, on the same NATS cluster and prefix, and
the sites' groups become one.

Messages larger than the server's max_payload travel in parts and are joined
again. Bridges never forward back what a bridge forwarded: on NATS they
recognise their group's bridges by the Mcl-Origin header, on the group by
their sending address, which they announce on the topic _mcl/bridge. Several
bridges with the same settings on one group are redundant: one forwards, the
others take over when it stops.

The NATS connection reconnects for ever, to any cluster member; what waits
meanwhile is bounded by --buffer-messages and --buffer-bytes, the rest is
dropped and counted.

With --stream NAME, messages to NATS go into that JetStream stream (created if
missing, subjects PREFIX.>, bounded by --stream-max-bytes and --stream-max-age)
and messages from NATS come from it through the durable consumer --durable
(default: --name): a site whose bridge was away gets what it missed, in order,
then the live messages. Delivery is then at least once: after a crash a few
messages may arrive twice.

On Ctrl-C bridge writes its counters to standard error,
one "name value" a line; with --json it writes them as one JSON object a line
to standard output instead, and every --stats interval too.`,
		Example: `  mcl bridge --nats nats://10.0.0.5:4222
  mcl bridge --group 239.192.0.1 --iface eth0 --nats nats://h1:4222,nats://h2:4222 --topic 'camera/*' --topic gps
  mcl bridge --nats nats://h1:4222 --direction to-nats --subject-prefix robot7 --json --stats 10s
  mcl bridge --nats nats://h1:4222 --stream MCL --durable lab2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if natsURLs == "" {
				return usagef("--nats is required: the NATS server(s) to bridge to, e.g. --nats nats://127.0.0.1:4222")
			}
			if err := checkTopics(g.topics); err != nil {
				return err
			}
			d, err := bridge.ParseDirection(dir)
			if err != nil {
				return usagef("--direction %q: use both, to-nats or from-nats", dir)
			}
			if every < 0 {
				return usagef("--stats must not be negative")
			}
			if g.gap <= 0 {
				return usagef("--gap %v: must be positive", g.gap)
			}
			copts := []mcl.Option{mcl.Port(g.port), mcl.ReadBuffer(g.rcvBuf), mcl.Hops(g.hops)}
			if g.iface != "" {
				copts = append(copts, mcl.Interface(g.iface))
			}
			conn, err := mcl.NewConnection(g.group, copts...)
			if err != nil {
				return usage(err)
			}
			pubOpts, err := g.publishOptions()
			if err != nil {
				return err
			}
			opts := []bridge.Option{
				bridge.SubjectPrefix(prefix), bridge.Forward(d), bridge.Topics(g.topics...),
				bridge.BufferLimits(bufMsgs, bufBytes),
				bridge.SubscribeOptions(mcl.ReassemblyLimits(wire.Limits{Gap: g.gap})),
				bridge.PublishOptions(pubOpts...),
				bridge.Logger(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))),
			}
			if name != "" {
				opts = append(opts, bridge.Name(name))
			}
			if stream != "" {
				opts = append(opts, bridge.Stream(stream), bridge.StreamLimits(maxBytes, maxAge))
				if durable != "" {
					opts = append(opts, bridge.Durable(durable))
				} else if name == "" && d != bridge.ToNATS {
					return usagef("--stream with --direction %s needs --durable NAME (or --name): the consumer that remembers what this site received, one per site", d)
				}
			} else if durable != "" {
				return usagef("--durable needs --stream")
			}
			b, err := bridge.New(conn, natsURLs, opts...)
			if errors.Is(err, bridge.ErrBadOption) {
				return usage(err)
			} else if err != nil {
				return err
			}
			defer b.Close()
			ctx := cmd.Context()
			done := make(chan error, 1)
			go func() { done <- b.Run(ctx) }()
			select {
			case <-b.Ready():
				bridgeStarted(b)
			case err := <-done:
				return err
			}
			var tick <-chan time.Time
			if every > 0 && asJSON {
				t := time.NewTicker(every)
				defer t.Stop()
				tick = t.C
			}
		loop:
			for {
				select {
				case <-tick:
					if err := writeBridgeJSON(cmd.OutOrStdout(), b.Stats()); err != nil {
						return err
					}
				case err = <-done:
					break loop
				}
			}
			b.Close()
			if asJSON {
				if werr := writeBridgeJSON(cmd.OutOrStdout(), b.Stats()); werr != nil && err == nil {
					err = werr
				}
			} else {
				for _, c := range b.Stats().Counters() {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s %d\n", c.Name, c.Value)
				}
			}
			return err
		},
	}
	// Receiving flags (--rcvbuf, --gap) and sending ones (--hops, --framing).
	g.register(c, true)
	f := c.Flags()
	f.IntVar(&g.hops, "hops", mcl.DefaultHops, "multicast hop limit (IPv4 TTL) of republished messages, 0..255")
	f.StringVar(&g.framing, "framing", "seed", "datagram format of republished messages: seed (every node reads it) or mcl2 (Go nodes only, see docs/mcl2.md)")
	f.StringVar(&natsURLs, "nats", "", "NATS server URLs, comma-separated (members of one cluster), e.g. nats://h1:4222,nats://h2:4222")
	f.StringArrayVarP(&g.topics, "topic", "t", nil, "forward only this topic; repeat for several (default: all topics)"+topicHelp)
	f.StringVar(&prefix, "subject-prefix", bridge.DefaultPrefix, "first token(s) of every NATS subject; bridges that exchange messages share it")
	f.StringVar(&dir, "direction", "both", "both, to-nats (group to NATS only) or from-nats (NATS to group only)")
	f.BoolVar(&asJSON, "json", false, "write the counters as JSON objects to standard output")
	f.DurationVar(&every, "stats", 0, "with --json, also write the counters this often, e.g. 10s (default: at exit only)")
	f.IntVar(&bufMsgs, "buffer-messages", bridge.DefaultBufferMessages, "group messages that may wait for NATS; more are dropped and counted")
	f.IntVar(&bufBytes, "buffer-bytes", bridge.DefaultBufferBytes, "bytes that may wait for NATS (also nats.go's reconnect buffer); more are dropped and counted")
	f.StringVar(&name, "name", "", `NATS connection name shown by the server (default "mcl bridge")`)
	f.StringVar(&stream, "stream", "", "JetStream stream to publish into and catch up from (created if missing); default: core NATS, nothing stored")
	f.StringVar(&durable, "durable", "", "with --stream, the durable consumer that forwards the stream to the group, one per site (default: --name)")
	f.Int64Var(&maxBytes, "stream-max-bytes", bridge.DefaultStreamMaxBytes, "with --stream, the size a stream the bridge creates keeps; older messages are discarded")
	f.DurationVar(&maxAge, "stream-max-age", bridge.DefaultStreamMaxAge, "with --stream, how long a stream the bridge creates keeps messages")
	return c
}

func writeBridgeJSON(w io.Writer, s bridge.Stats) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
