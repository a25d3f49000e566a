package main

import (
	"bufio"
	"bytes"
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
	)
	c := &cobra.Command{
		Use:   "pub --topic T [--payload JSON [--count N]]",
		Short: "Publish JSON values as msgpack messages",
		Long: `pub publishes messages on a topic. Without --payload it reads JSON values from
standard input, one per line (lines of any length; blank lines are skipped), and
publishes each as soon as it is read. Each value is packed as Python 2's msgpack
did: objects as maps in key order, strings as str, integers as ints, other
numbers as float64. A line that is not JSON stops pub with an error naming it.
At exit pub writes its counters to standard error, one "name value" a line.

A message over 60000 bytes goes out as fragments of 60000 bytes, back to back,
and a receiver's socket buffer must hold them all: a 50 MB message is 834
datagrams, which the default 4 MiB buffer (mcl sub --rcvbuf, capped by the
kernel's net.core.rmem_max) cannot, and one fragment dropped loses the message.
--rate spreads the datagrams out to a byte rate the receivers keep up with.`,
		Example: `  echo '{"lat": -33.89, "lon": 151.19}' | mcl pub --topic gps
  mcl pub --topic hello --payload '"world"' --count 10 --interval 100ms
  mcl pub --group 239.192.0.1 --port 26001 --topic can --payload '[1, 2, 3]'
  mcl pub --topic map --rate 20M < big-messages.jsonl`,
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
			if cmd.Flags().Changed("rate") {
				r, err := parseRate(rate)
				if err != nil {
					return usagef("--rate %s: %v", rate, err)
				}
				if r < mcl.MinPace {
					return usagef("--rate %s: at least %dM: slower, the fragments of a message come so far apart that receivers drop it", rate, mcl.MinPace/1_000_000)
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
				printCounters(cmd.ErrOrStderr(), p.Stats().Counters())
			}()
			ctx := cmd.Context()
			var wait <-chan time.Time
			publish := func(b []byte) error {
				if wait != nil {
					select {
					case <-wait:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				if interval > 0 {
					wait = time.After(interval)
				}
				return p.PublishRaw(topic, b)
			}
			if cmd.Flags().Changed("payload") {
				b, err := msgjson.FromJSON(nil, []byte(payload))
				if err != nil {
					return usagef("--payload: %v", err)
				}
				for i := 0; i < count; i++ {
					if err := publish(b); err != nil {
						return err
					}
				}
				return nil
			}
			return publishLines(cmd.InOrStdin(), publish)
		},
	}
	g.register(c, false)
	f := c.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic to publish on (required), e.g. gps")
	f.StringVar(&payload, "payload", "", `one JSON value to publish instead of reading standard input, e.g. '{"speed": 3.2}'`)
	f.IntVar(&count, "count", 1, "with --payload: how many times to publish it")
	f.DurationVar(&interval, "interval", 0, "pause between messages, e.g. 100ms (default: none)")
	f.StringVar(&rate, "rate", "", "send at most this many bytes per second, fragments spread out, e.g. 20M (k, M, G: 1000s; at least 1M; default: no limit)")
	return c
}

// parseRate reads a byte rate: a number, then k, M or G for thousands,
// millions or billions.
func parseRate(s string) (int, error) {
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
	if err != nil || v <= 0 || math.IsInf(v, 0) || v*mult > 1e12 {
		return 0, errors.New("not a rate in bytes per second, such as 500k, 20M or 1.5G")
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
