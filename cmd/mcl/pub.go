package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/msgjson"
)

func newPubCmd() *cobra.Command {
	var (
		g        groupFlags
		topic    string
		payload  string
		count    int
		interval time.Duration
	)
	c := &cobra.Command{
		Use:   "pub --topic T [--payload JSON [--count N]]",
		Short: "Publish JSON values as msgpack messages",
		Long: `pub publishes messages on a topic. Without --payload it reads JSON values from
standard input, one per line (lines of any length; blank lines are skipped), and
publishes each as soon as it is read. Each value is packed as Python 2's msgpack
did: objects as maps in key order, strings as str, integers as ints, other
numbers as float64. A line that is not JSON stops pub with an error naming it.
At exit pub writes its counters to standard error, one "name value" a line.`,
		Example: `  echo '{"lat": -33.89, "lon": 151.19}' | mcl pub --topic gps
  mcl pub --topic hello --payload '"world"' --count 10 --interval 100ms
  mcl pub --group 239.192.0.1 --port 26001 --topic can --payload '[1, 2, 3]'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("topic") {
				return usagef("--topic is required (it may be empty: --topic '')")
			}
			if count < 1 {
				return usagef("--count %d: must be at least 1", count)
			}
			conn, err := g.connection()
			if err != nil {
				return err
			}
			p, err := mcl.NewPublisher(conn)
			if err != nil {
				return err
			}
			defer func() {
				p.Close()
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
	return c
}

// publishLines publishes each non-blank line of r, read whole whatever
// its length.
func publishLines(r io.Reader, publish func([]byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var packed []byte
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
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
