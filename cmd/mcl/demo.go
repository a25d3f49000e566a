package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/msgjson"
	"github.com/mcl-go/mcl/sandbox"
)

func newDemoCmd() *cobra.Command {
	var duration time.Duration
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run a publisher and a subscriber in a private sandbox network",
		Long: `demo needs no configuration and no network. It re-runs itself inside a private
network namespace with a veth pair of its own (as root, or as a normal user
through an unprivileged user namespace), so nothing it sends can leave the
machine. There a publisher sends a simulated GPS fix every 100 ms and a
200 KB camera frame (4 fragments) every second on the default group
ff15::c73d:cf41:ea8e:b0a0 port 26000, and a subscriber prints what arrives
and its counters once a second.`,
		Example: `  mcl demo
  mcl demo --duration 10s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if duration <= 0 {
				return usagef("--duration %s: must be positive", duration)
			}
			netw, err := sandbox.Enter()
			if err != nil {
				return fmt.Errorf("demo needs a private network namespace and could not make one: %w", err)
			}
			return demo(cmd, netw, duration)
		},
	}
	c.Flags().DurationVar(&duration, "duration", 3*time.Second, "how long to run, e.g. 10s")
	return c
}

func demo(cmd *cobra.Command, netw *sandbox.Network, duration time.Duration) error {
	out := cmd.OutOrStdout()
	conn, err := mcl.NewConnection(mcl.DefaultGroup)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sandbox: private network namespace, veth %s (%s) <-> %s; nothing leaves this machine\n",
		netw.Iface, netw.Addr6, netw.Peer)
	fmt.Fprintf(out, "group %s\n", conn)

	var mu sync.Mutex // the callback and the ticker both write to out
	var line []byte
	sub, err := mcl.Subscribe(conn, func(m *mcl.Message) {
		mu.Lock()
		defer mu.Unlock()
		if len(m.Payload) > 1024 {
			fmt.Fprintf(out, "  recv %-6s %d bytes from %s\n", m.Topic, len(m.Payload), m.Sender)
			return
		}
		line, _, _ = msgjson.ToJSON(line[:0], m.Payload)
		fmt.Fprintf(out, "  recv %-6s %s\n", m.Topic, line)
	})
	if err != nil {
		return err
	}
	defer sub.Close()
	pub, err := mcl.NewPublisher(conn)
	if err != nil {
		return err
	}
	defer pub.Close()

	frame := make([]byte, 200_000)
	gps := time.NewTicker(100 * time.Millisecond)
	defer gps.Stop()
	report := time.NewTicker(time.Second)
	defer report.Stop()
	end := time.After(duration)
	start := time.Now()
	for seq := 0; ; {
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-end:
			// Give the last datagrams a moment to arrive before the final count.
			for wait := time.Now().Add(time.Second); sub.Stats().Delivered < pub.Stats().Messages && time.Now().Before(wait); {
				time.Sleep(5 * time.Millisecond)
			}
			mu.Lock()
			fmt.Fprint(out, "final ")
			printDemoCounters(out, pub.Stats(), sub.Stats())
			mu.Unlock()
			if sub.Stats().Delivered == 0 {
				return errors.New("demo: no message arrived: multicast is not working in the sandbox")
			}
			return nil
		case <-report.C:
			mu.Lock()
			printDemoCounters(out, pub.Stats(), sub.Stats())
			mu.Unlock()
		case t := <-gps.C:
			seq++
			angle := t.Sub(start).Seconds() / 10
			fix := gpsFix{Seq: seq, Lat: -33.8898 + 0.001*math.Sin(angle), Lon: 151.1893 + 0.001*math.Cos(angle)}
			if err := pub.Publish("gps", fix); err != nil {
				return err
			}
			if seq%10 == 1 {
				for i := range frame {
					frame[i] = byte(seq + i)
				}
				if err := pub.Publish("camera", frame); err != nil {
					return err
				}
			}
		}
	}
}

// gpsFix is the demo's message: a struct, so its fields go out in order.
type gpsFix struct {
	Seq int     `msgpack:"seq"`
	Lat float64 `msgpack:"lat"`
	Lon float64 `msgpack:"lon"`
}

func printDemoCounters(w io.Writer, p mcl.PublisherStats, s mcl.SubscriberStats) {
	fmt.Fprintf(w, "counters: published %d messages in %d datagrams; received %d datagrams, delivered %d, fragments %d, reassembled %d, malformed %d, dropped %d\n",
		p.Messages, p.Datagrams, s.Datagrams, s.Delivered, s.Fragments, s.Reassembled, s.Malformed, s.Dropped)
}
