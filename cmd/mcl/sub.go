package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/msgjson"
	"github.com/mcl-go/mcl/wire"
)

// subscribed is called once the subscriber has joined the group; tests
// replace it to know when to start publishing.
var subscribed = func() {}

func newSubCmd() *cobra.Command {
	var (
		g       groupFlags
		count   int
		timeout time.Duration
		meta    bool
		quiet   bool
		fields  []string
	)
	c := &cobra.Command{
		Use:   "sub [--topic T ...] [--count N] [--timeout D]",
		Short: "Print received messages as JSON lines",
		Long: `sub joins a group and prints each message as one line of JSON:
  {"topic": "gps", "payload": {"lat": -33.89, "lon": 151.19}}
The payload is rendered from msgpack: maps as objects, str as JSON strings,
and bytes that are not UTF-8 text (msgpack bin, or a Python 2 str holding
binary) as {"$bytes": "<base64>"}; see docs/cli.md for every rule. With
--meta each line also carries "sender" (address:port) and "time" (RFC 3339).
With --fields pose.x,ranges[3] a line carries only those fields of the
payload, {"topic": T, "fields": {"pose.x": 1.5, "ranges[3]": 7}}, null
where a payload lacks one.

It receives both framings: the seed's (Python nodes, and mcl pub by default)
and mcl/2's (mcl pub --framing mcl2, see docs/mcl2.md). --topic takes names
and patterns ("*" one /-separated segment, "**" any number).

sub stops after --count messages, after --timeout, or on Ctrl-C, then writes
its counters to standard error, one "name value" a line ("delivered N" among
them), and a line per mcl/2 sender heard: "sender ID from ADDR datagrams N
lost N reordered N repeated N late N jumps N"; --quiet leaves them out. It
exits 1 when --timeout ends it before --count messages arrived.`,
		Example: `  mcl sub
  mcl sub --topic gps --topic imu --count 100
  mcl sub --topic 'camera/*' --topic '**/front'
  mcl sub --group 239.192.0.1 --iface eth0 --timeout 10s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 0 || timeout < 0 {
				return usagef("--count and --timeout must not be negative")
			}
			conn, err := g.connection()
			if err != nil {
				return err
			}
			var paths []fieldPath
			for _, f := range fields {
				p, err := parseFieldPath(f)
				if err != nil {
					return usagef("--fields: %v", err)
				}
				paths = append(paths, p)
			}
			opts, err := g.subscribeOptions()
			if err != nil {
				return err
			}
			s, err := mcl.SubscribeSync(conn, opts...)
			if err != nil {
				return err
			}
			subscribed()
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			var line, topic []byte
			got := 0
			for count == 0 || got < count {
				m, err := s.Next(ctx)
				if err != nil {
					break
				}
				got++
				topic = wire.AppendStr(topic[:0], []byte(m.Topic))
				line, err = appendLine(line[:0], topic, m, meta, paths)
				if err != nil { // a payload that passed the wire check; should not happen
					fmt.Fprintf(cmd.ErrOrStderr(), "mcl: message %d on topic %q: %v\n", got, m.Topic, err)
					continue
				}
				out.Write(line)
				if err := out.Flush(); err != nil {
					s.Close()
					return fmt.Errorf("write standard output: %w", err)
				}
			}
			s.Close()
			if !quiet {
				pal := newPalette(cmd.ErrOrStderr())
				printCountersIn(cmd.ErrOrStderr(), pal, s.Stats().Counters())
				printSenders(cmd.ErrOrStderr(), pal, s.Senders())
			}
			if count > 0 && got < count && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &exitError{1, fmt.Errorf("timeout after %s: received %d of %d messages", timeout, got, count)}
			}
			return nil
		},
	}
	g.register(c, true)
	f := c.Flags()
	f.StringArrayVarP(&g.topics, "topic", "t", nil, "print only this topic; repeat for several (default: all topics)"+topicHelp)
	f.IntVarP(&count, "count", "n", 0, "exit after this many messages (default: no limit)")
	f.DurationVar(&timeout, "timeout", 0, "exit after this long, e.g. 10s or 1m30s (default: no limit)")
	f.BoolVar(&meta, "meta", false, `add "sender" and "time" to each line`)
	f.BoolVarP(&quiet, "quiet", "q", false, "write no counters and sender lines at exit")
	f.StringSliceVar(&fields, "fields", nil, `print only these fields of each payload, as {"topic": T, "fields": {"pose.x": 1.5, ...}}: keys by dots, list indexes in brackets (pose.x,ranges[3]); a field not there is null`)
	return c
}

// appendLine renders one message as a JSON line. The topic comes as a
// msgpack str and goes through the payload renderer, so that a topic that
// is not UTF-8 follows the same rule as payload bytes.
func appendLine(b, topic []byte, m *mcl.Message, meta bool, fields []fieldPath) ([]byte, error) {
	b = append(b, `{"topic":`...)
	b, _, err := msgjson.ToJSON(b, topic)
	if err != nil {
		return b, err
	}
	if len(fields) > 0 {
		b = append(b, `,"fields":`...)
		rendered, _, err := msgjson.ToJSON(nil, m.Payload)
		if err != nil {
			return b, err
		}
		if b, err = appendFields(b, rendered, fields); err != nil {
			return b, err
		}
	} else {
		b = append(b, `,"payload":`...)
		if b, _, err = msgjson.ToJSON(b, m.Payload); err != nil {
			return b, err
		}
	}
	if meta {
		b = fmt.Appendf(b, `,"sender":%q,"time":%q`, m.Sender.String(), m.Received.Format(time.RFC3339Nano))
	}
	return append(b, "}\n"...), nil
}

// printSenders writes a line per mcl/2 sender heard: its id, where it
// sent from, and what became of its datagrams, losses in red on pal.
func printSenders(w io.Writer, pal palette, ss []mcl.SenderStats) {
	for _, x := range ss {
		fmt.Fprintf(w, "sender %016x from %s datagrams %d %s reordered %d repeated %d %s jumps %d\n",
			x.ID, x.Addr, x.Datagrams, pal.loss(fmt.Sprintf("lost %d", x.Lost), x.Lost),
			x.Reordered, x.Repeated, pal.loss(fmt.Sprintf("late %d", x.Late), x.Late), x.Jumps)
	}
}
