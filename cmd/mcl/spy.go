package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/census"
	"github.com/mcl-go/mcl/internal/spy"
)

func newSpyCmd() *cobra.Command {
	var (
		g   groupFlags
		cfg spy.Config
		hp  string
	)
	c := &cobra.Command{
		Use:   "spy [--topic PATTERN ...] [--http 127.0.0.1:8088]",
		Short: "Serve a live web page of every topic on a group",
		Long: `spy joins a group, counts every message by topic as mcl topics does, keeps
the last --keep messages of each, and serves a web page at --http: the topic
table (sortable, filterable by pattern), and for the topic clicked its
senders, its last messages as JSON trees, a plot of its rate and of any
numeric field clicked, a download of its last messages as JSON lines. The
page updates itself at most ten times a second over Server-Sent Events; its
assets are in the binary, so it works offline.

It listens on 127.0.0.1 unless --http names another address. Anyone who can
reach that address can read every message on the group: listen elsewhere
only on a network you trust (see docs/spy.md). Topics and payloads are shown
as text, never markup; at most --max-topics topics and --keep messages each
are kept, and messages of further topics are counted as refused.`,
		Example: `  mcl spy                      # then open http://127.0.0.1:8088/
  mcl spy --topic 'robot1/**' --http 127.0.0.1:9000
  mcl spy --http 0.0.0.0:8088  # every interface: anyone on the network can read the group`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("spy takes no arguments; got %q (a topic goes with --topic)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.MaxTopics <= 0 {
				return usagef("--max-topics %d: must be positive", cfg.MaxTopics)
			}
			if cfg.Keep <= 0 || cfg.Keep > spy.MaxKeep {
				return usagef("--keep %d: use 1..%d", cfg.Keep, spy.MaxKeep)
			}
			if cfg.Window <= 0 {
				return usagef("--window must be positive")
			}
			if cfg.Interval < spy.MinInterval {
				return usagef("--interval %v: at least %v", cfg.Interval, spy.MinInterval)
			}
			host, _, err := net.SplitHostPort(hp)
			if err != nil {
				return usagef("--http %q: want HOST:PORT, e.g. 127.0.0.1:8088", hp)
			}
			if host == "" {
				return usagef("--http %q: name the address to listen on: 127.0.0.1 for this host only, 0.0.0.0 or :: for every interface", hp)
			}
			opts, err := g.subscribeOptions()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", hp)
			if err != nil {
				return fmt.Errorf("--http: %w", err)
			}
			defer ln.Close()
			conn, err := g.connection()
			if err != nil {
				return err
			}
			loopback := isLoopback(ln.Addr())
			cfg.AnyHost = !loopback
			cfg.Where = conn.String()
			var sub *mcl.Subscriber
			cfg.Footer = func() spy.Footer {
				if sub == nil {
					return spy.Footer{}
				}
				st := sub.Stats()
				return spy.Footer{Undecodable: st.Malformed, Lost: st.Lost, Reordered: st.Reordered, Repeated: st.Repeated, Dropped: st.Dropped}
			}
			cfg.Senders = func() map[netip.AddrPort]census.Loss {
				if sub == nil {
					return nil
				}
				return senderLosses(sub)
			}
			srv := spy.New(cfg)
			// Count in the Subscriber's goroutine; render per frame.
			sub, err = mcl.Subscribe(conn, func(m *mcl.Message) {
				at := m.Received
				if at.IsZero() {
					at = time.Now()
				}
				srv.Add(m.Topic, m.Payload, m.Sender, at)
			}, opts...)
			if err != nil {
				return err
			}
			defer sub.Close()
			hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
			served := make(chan error, 1)
			go func() { served <- hs.Serve(ln) }()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "mcl spy: %s on http://%s/\n", conn.String(), ln.Addr())
			if !loopback {
				fmt.Fprintf(cmd.ErrOrStderr(), "mcl spy: warning: listening on %s, not loopback: anyone who can reach it reads every message of the group\n", ln.Addr())
			}
			subscribed()
			select {
			case <-cmd.Context().Done():
				hs.Close() // ends the event streams too
				return nil
			case err := <-served:
				if errors.Is(err, http.ErrServerClosed) {
					return nil
				}
				return fmt.Errorf("--http: %w", err)
			}
		},
	}
	g.register(c, true)
	f := c.Flags()
	f.StringArrayVarP(&g.topics, "topic", "t", nil, "watch only this topic; repeat for several (default: all topics)"+topicHelp)
	f.StringVar(&hp, "http", "127.0.0.1:8088", "address to serve the page on; another host than 127.0.0.1 or ::1 exposes the group's messages to whoever reaches it")
	f.IntVar(&cfg.MaxTopics, "max-topics", census.DefaultLimit, "most topics to track; messages of further topics are counted as refused")
	f.IntVar(&cfg.Keep, "keep", spy.DefaultKeep, fmt.Sprintf("messages kept per topic, for the page and its download (1..%d)", spy.MaxKeep))
	f.IntVar(&cfg.MaxKeptBytes, "max-kept-bytes", spy.DefaultMaxKeptBytes, "payload bytes kept in all topics; past it, messages are listed without their payload")
	f.DurationVar(&cfg.Window, "window", census.DefaultWindow, "span that rate and bandwidth are measured over")
	f.DurationVar(&cfg.Interval, "interval", spy.DefaultInterval, "time between two updates of the page (at least 100ms)")
	return c
}

// isLoopback reports whether a listener's address is on the loopback
// interface only.
func isLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}
