package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/msgjson"
	"github.com/mcl-go/mcl/wire"
)

func newPubCmd() *cobra.Command {
	var (
		g        groupFlags
		topic    string
		payload  string
		count    int
		interval time.Duration
		rate     string
		pace     string
	)
	c := &cobra.Command{
		Use:   "pub --topic T [--payload JSON [--count N]] [--rate HZ]",
		Short: "Publish JSON values as msgpack messages",
		Long: `pub publishes messages on a topic. Without --payload it reads JSON values from
standard input, one per line (lines of any length; blank lines are skipped), and
publishes each as soon as it is read. Each value is packed as Python 2's msgpack
did: objects as maps in key order, strings as str, integers as ints, other
numbers as float64. A line that is not JSON stops pub with an error naming it.
At exit pub writes its counters to standard error, one "name value" a line.

--rate HZ publishes HZ messages a second (as ros2 topic pub -r): with
--payload, that one until Ctrl-C, or --count times; from standard input, a
line at most every 1/HZ seconds. Messages keep to a fixed schedule that does
not drift; a message that is late (a slow send, a line slow to come) goes
out at once and the next keeps its own time. --interval D keeps the same
schedule, D apart (with --payload, --count times: once by default).

A message over 60000 bytes goes out as fragments of 60000 bytes, back to back,
and a receiver's socket buffer must hold them all: a 50 MB message is 834
datagrams, which the default 4 MiB buffer (mcl sub --rcvbuf, capped by the
kernel's net.core.rmem_max) cannot, and one fragment dropped loses the message.
--pace spreads the datagrams out to a byte rate the receivers keep up with.
(--rate was that byte rate before; a byte rate given to --rate is refused.)`,
		Example: `  echo '{"lat": -33.89, "lon": 151.19}' | mcl pub --topic gps
  mcl pub --topic hello --payload '"world"' --rate 10
  mcl pub --topic hello --payload '"world"' --count 10 --interval 100ms
  mcl pub --group 239.192.0.1 --port 26001 --topic can --payload '[1, 2, 3]'
  mcl pub --topic map --pace 20M < big-messages.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if !cmd.Flags().Changed("topic") {
				return usagef("--topic is required (it may be empty: --topic '')")
			}
			if count < 1 {
				return usagef("--count %d: must be at least 1", count)
			}
			if err := wire.CheckTopic(topic); err != nil {
				return usagef("--topic: %d bytes: at most %d", len(topic), wire.MaxTopic)
			}
			opts, err := g.publishOptions()
			if err != nil {
				return err
			}
			period := max(interval, 0)
			if cmd.Flags().Changed("rate") {
				if cmd.Flags().Changed("interval") {
					return usagef("--rate and --interval both set the time between messages: give one")
				}
				hz, err := parseHz(rate)
				if err != nil {
					return usage(err)
				}
				period = time.Duration(float64(time.Second) / hz)
			}
			if cmd.Flags().Changed("pace") {
				r, err := parsePace(pace)
				if err != nil {
					return usagef("--pace %s: %v", pace, err)
				}
				if r < mcl.MinPace {
					return usagef("--pace %s: at least %dM: slower, the fragments of a message come so far apart that receivers drop it", pace, mcl.MinPace/1_000_000)
				}
				opts = append(opts, mcl.Pace(r))
			}
			conn, err := g.connection()
			if err != nil {
				return err
			}
			p, err := mcl.NewPublisher(conn, opts...)
			if err != nil {
				return err
			}
			defer func() {
				if cerr := p.Close(); cerr != nil && err == nil {
					err = cerr // a batched send that failed after its Publish
				}
				printCountersIn(cmd.ErrOrStderr(), newPalette(cmd.ErrOrStderr()), p.Stats().Counters())
			}()
			s := newSchedule(cmd.Context(), period)
			defer s.stop()
			publish := func(b []byte) error {
				if !s.wait() {
					return errStopped
				}
				return p.PublishRaw(topic, b)
			}
			if cmd.Flags().Changed("payload") {
				b, err := msgjson.FromJSON(nil, []byte(payload))
				if err != nil {
					return usagef("--payload: %v", err)
				}
				// --rate alone repeats until Ctrl-C, as ros2 topic pub -r does.
				forever := cmd.Flags().Changed("rate") && !cmd.Flags().Changed("count")
				for i := 0; forever || i < count; i++ {
					if err := publish(b); err != nil {
						return ignoreStopped(err)
					}
				}
				return nil
			}
			return ignoreStopped(publishLines(cmd.InOrStdin(), publish))
		},
	}
	g.register(c, false)
	f := c.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic to publish on (required), e.g. gps")
	f.StringVar(&payload, "payload", "", `one JSON value to publish instead of reading standard input, e.g. '{"speed": 3.2}'`)
	f.IntVar(&count, "count", 1, "with --payload: how many times to publish it (with --rate: default until Ctrl-C)")
	f.DurationVar(&interval, "interval", 0, "time between messages, e.g. 100ms (default: none)")
	f.StringVarP(&rate, "rate", "r", "", "messages per second, e.g. 10 or 0.5; with --payload and no --count, until Ctrl-C (default: as fast as they come)")
	f.StringVar(&pace, "pace", "", "send at most this many bytes per second, fragments spread out, e.g. 20M or 20MB/s (k, M, G: 1000s; at least 1M; default: no limit)")
	return c
}

// errStopped ends publishing when the command's context is done (Ctrl-C).
var errStopped = errors.New("stopped")

// ignoreStopped returns err, or nil for errStopped: Ctrl-C is how pub
// --rate ends, and ends pub as the end of its input does.
func ignoreStopped(err error) error {
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

// schedule times messages period apart on a time.Ticker's schedule: the
// n-th message no earlier than n periods after the first, so the rate
// never drifts below what was asked, however long each send takes. A
// message that is late goes out at once and the next keeps its own time;
// slots missed while the sender stalled are dropped, not made up in a burst.
type schedule struct {
	ctx    context.Context
	period time.Duration // 0: no waiting
	t      *time.Ticker  // from the first message
}

func newSchedule(ctx context.Context, period time.Duration) *schedule {
	return &schedule{ctx: ctx, period: period}
}

// wait blocks until the next message's time, and returns false if ctx is
// done first.
func (s *schedule) wait() bool {
	switch {
	case s.ctx.Err() != nil:
		return false
	case s.period <= 0:
		return true
	case s.t == nil:
		s.t = time.NewTicker(s.period)
		return true
	}
	select {
	case <-s.t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *schedule) stop() {
	if s.t != nil {
		s.t.Stop()
	}
}

// maxHz bounds --rate: from a million up, a number is the byte rate that
// --rate took before --pace.
const maxHz = 1e6

// parseHz reads --rate, messages per second. What --rate took before
// --pace, a byte rate (20M, 1.5G, or a number of a million or more), is
// refused with a pointer to --pace, never read as a message rate. Errors:
// the message of a usage error.
func parseHz(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err == nil && v > 0 && v < maxHz {
		return v, nil
	}
	if _, perr := parsePace(s); perr == nil {
		return 0, fmt.Errorf("--rate %s: --rate is messages per second (below %.0f), as in ros2 topic pub -r; for %s bytes per second use --pace %s", s, maxHz, s, s)
	}
	return 0, fmt.Errorf("--rate %s: not a rate in messages per second, such as 10 or 0.5", s)
}

// parsePace reads a byte rate: a number, then k, M or G for thousands,
// millions or billions, then optionally B or B/s (20M, 20MB, 20MB/s).
func parsePace(s string) (int, error) {
	s = strings.TrimSuffix(strings.TrimSuffix(s, "/s"), "B")
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"):
		mult = 1e3
	case strings.HasSuffix(s, "M"):
		mult = 1e6
	case strings.HasSuffix(s, "G"):
		mult = 1e9
	}
	num := s
	if mult > 1 {
		num = s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) || v*mult > 1e12 { // !(v > 0): NaN too
		return 0, errors.New("not a rate in bytes per second, such as 500k, 20M or 1.5GB/s")
	}
	return int(v * mult), nil
}

// publishLines publishes each non-blank line of r, read whole whatever
// its length into one buffer, reused: a huge line is held once, and its
// msgpack once more, not the several times reading it in chunks and
// joining them would.
func publishLines(r io.Reader, publish func([]byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var line, packed []byte
	for n := 1; ; n++ {
		var err error
		line, err = readLine(br, line[:0])
		if len(line) > 4<<20 {
			// Reading a huge line left its parts behind: give their
			// memory back before packing needs as much again, or the
			// process holds three times the line instead of two.
			debug.FreeOSMemory()
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var perr error
			packed, perr = msgjson.FromJSON(packed[:0], line)
			if perr != nil {
				return fmt.Errorf("standard input line %d: %v", n, perr)
			}
			if perr := publish(packed); perr != nil {
				return perr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read standard input: %w", err)
		}
	}
}

// readLine returns the next line of br, with its newline if it has one,
// in line's memory when it fits. A line longer than br's buffer is read
// in parts, joined once its length is known: growing one buffer as the
// parts come would copy the line again at each step and leave the
// process holding several times its size.
func readLine(br *bufio.Reader, line []byte) ([]byte, error) {
	chunk, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return append(line[:0], chunk...), err
	}
	var parts [][]byte
	n := 0
	for err == bufio.ErrBufferFull {
		parts = append(parts, bytes.Clone(chunk))
		n += len(chunk)
		chunk, err = br.ReadSlice('\n')
	}
	n += len(chunk)
	if cap(line) < n {
		line = make([]byte, 0, n)
	}
	line = line[:0]
	for _, p := range parts {
		line = append(line, p...)
	}
	return append(line, chunk...), err
}
