package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/recording"
)

func newReplayCmd() *cobra.Command {
	var (
		g          groupFlags
		opts       recording.ReplayOptions
		topics     []string
		start, end time.Duration
		dryRun     bool
	)
	c := &cobra.Command{
		Use:   "replay FILE... [--group G --port P] [--speed X] [--loop] [--topic T ...] [--start D] [--end D] [--dry-run]",
		Short: "Republish recorded messages with their recorded timing",
		Long: `replay publishes the messages of MCAP recordings made by mcl record, byte for
byte, on the schedule their receive times give, scaled by --speed (0: as fast
as possible). Each message goes to the group it was recorded on unless
--group or --port say otherwise. The schedule is anchored at the start: a
message that is late (the machine was busy) goes out at once and the rest
keep their times, so replay never drifts behind. --start and --end are
offsets from the first message, e.g. --start 1m --end 2m30s. Before the
first message to a group, replay writes to standard error where it sends
(group, port, interface, framing): replaying a vehicle's log onto a live
vehicle's network is a hazard. --dry-run sends nothing and prints, at once,
a JSON line per message it would send. At the end replay writes to standard
error how many messages it sent and how late the latest was.

When standard input and standard error are a terminal, replay shows a
status line (position, messages sent of the total, rate) and reads keys:
  space        pause, or resume: the clock stops while paused, and the
               messages after resuming keep their spacing, not sent in a burst
  n, ., right  send the next message alone, and stay paused
  q, Ctrl-C    stop, as at the end`,
		Example: `  mcl replay logs/*.mcap
  mcl replay trial.mcap --speed 2 --topic gps
  mcl replay trial.mcap --group 239.192.0.1 --port 26001 --loop --start 30s --end 1m`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if opts.Speed < 0 || start < 0 || end < 0 || (end > 0 && end <= start) {
				return usagef("--speed, --start and --end must not be negative, and --end must come after --start")
			}
			if err := checkTopics(topics); err != nil {
				return err
			}
			first, last, err := recording.Span(files)
			if err != nil {
				return err
			}
			opts.Filter.Topics = topics
			if start > 0 {
				opts.Filter.Start = first.Add(start)
			}
			if end > 0 {
				opts.Filter.End = first.Add(end)
			}
			if _, err := g.publishOptions(); err != nil {
				return err
			}
			override := cmd.Flags().Changed("group") || cmd.Flags().Changed("port")
			// Where replay says where it sends: standard error, or above
			// the status line on a terminal.
			notes := cmd.ErrOrStderr()
			warn := newPalette(notes).warn
			pubs := map[netip.AddrPort]*mcl.Publisher{}
			defer func() {
				for _, p := range pubs {
					p.Close()
				}
			}()
			publisher := func(rec recording.Record) (*mcl.Publisher, error) {
				key := rec.Group
				if override || !key.IsValid() {
					key = netip.AddrPort{}
				}
				if p, ok := pubs[key]; ok {
					return p, nil
				}
				gf := g
				if key.IsValid() {
					gf.group, gf.port = key.Addr().String(), int(key.Port())
				}
				conn, err := gf.connection()
				if err != nil {
					return nil, err
				}
				popts, err := g.publishOptions()
				if err != nil {
					return nil, err
				}
				p, err := mcl.NewPublisher(conn, popts...)
				if err != nil {
					return nil, err
				}
				// Replaying a vehicle's log onto a live vehicle's network
				// is a hazard: say where it goes before it goes.
				fmt.Fprintln(notes, warn("replay: sending to "+describeConn(conn)+", "+g.framing+" framing"))
				pubs[key] = p
				return p, nil
			}
			if dryRun {
				return dryReplay(cmd, files, opts, g, override)
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			var con *replayConsole
			restore, raw := rawTerminal(cmd.InOrStdin(), cmd.ErrOrStderr())
			if raw {
				// Restored on every way out: the normal one below, an
				// error, a panic. Ctrl-C is a key in raw mode, read as q.
				defer restore()
				ctl := make(chan recording.ReplayControl)
				opts.Control = ctl
				from, to := first.Add(start), last
				if end > 0 && first.Add(end).Before(to) {
					to = first.Add(end)
				}
				con = startReplayConsole(ctx, cancel, cmd.InOrStdin(), cmd.ErrOrStderr(), ctl, from, to.Sub(from), files, opts.Filter)
				notes = con
				defer con.stop()
			}
			skipped := 0
			st, err := recording.Replay(ctx, files, opts, func(rec recording.Record) error {
				if con != nil {
					con.sent(rec)
				}
				if rec.Encoding != "msgpack" {
					skipped++
					return nil
				}
				p, err := publisher(rec)
				if err != nil {
					return err
				}
				return p.PublishRaw(rec.Topic, rec.Payload)
			})
			if con != nil {
				con.stop()
				restore()
			}
			w := cmd.ErrOrStderr()
			fmt.Fprintf(w, "replayed %d messages; %d more than 1ms late, the latest by %s\n", st.Messages-uint64(skipped), st.Late, st.MaxLate)
			if skipped > 0 {
				fmt.Fprintf(w, "skipped %d messages not in msgpack encoding (replay needs recordings made by mcl record)\n", skipped)
			}
			return err
		},
	}
	g.register(c, false)
	f := c.Flags()
	f.Float64Var(&opts.Speed, "speed", 1, "timing scale: 1 real time, 2 twice as fast, 0 as fast as possible")
	f.BoolVar(&opts.Loop, "loop", false, "start over at the end, until Ctrl-C")
	f.StringArrayVarP(&topics, "topic", "t", nil, "replay only this topic; repeat for several (default: all)"+topicHelp)
	f.DurationVar(&start, "start", 0, "skip messages before this offset from the first, e.g. 30s")
	f.DurationVar(&end, "end", 0, "stop at this offset from the first message, e.g. 2m")
	f.BoolVar(&dryRun, "dry-run", false, "send nothing: print a JSON line per message that would be sent (offset, topic, bytes, destination), at once")
	completeRecordings(c)
	return c
}

// describeConn says where a Connection sends: its group and port, and its
// interface or that the kernel's route chooses one.
func describeConn(c *mcl.Connection) string {
	if c.Interface() != "" {
		return c.String()
	}
	return c.String() + " on the interface the kernel's route chooses"
}

// dryReplay prints what replay would send, a JSON line per message, with
// no timing and no socket.
func dryReplay(cmd *cobra.Command, files []string, opts recording.ReplayOptions, g groupFlags, override bool) error {
	opts.Speed, opts.Loop = 0, false
	out := bufio.NewWriter(cmd.OutOrStdout())
	var first time.Time
	n := 0
	_, err := recording.Replay(cmd.Context(), files, opts, func(rec recording.Record) error {
		if first.IsZero() {
			first = rec.LogTime
		}
		to := rec.Group.String()
		if override || !rec.Group.IsValid() {
			to = net.JoinHostPort(g.group, strconv.Itoa(g.port))
		}
		line, err := json.Marshal(struct {
			Offset   string `json:"offset"`
			Topic    string `json:"topic"`
			Bytes    int    `json:"bytes"`
			Encoding string `json:"encoding"`
			To       string `json:"to"`
		}{rec.LogTime.Sub(first).String(), rec.Topic, len(rec.Payload), rec.Encoding, to})
		if err != nil {
			return err
		}
		out.Write(append(line, '\n'))
		n++
		return nil
	})
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "would replay %d messages (--dry-run: nothing sent)\n", n)
	return err
}
