package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl/internal/bench"
	"github.com/mcl-go/mcl/sandbox"
)

func newBenchCmd() *cobra.Command {
	cfg := bench.Default
	var asJSON bool
	c := &cobra.Command{
		Use:   "bench [--duration D] [--rounds N] [--repeat N] [--json]",
		Short: "Measure mcl against plain sockets in a private sandbox network",
		Long: `bench re-runs itself in a private network namespace (as mcl demo does) and
measures, in one run, mcl and a baseline: the same multicast sockets and batch
system calls (recvmmsg, sendmmsg) moving the same bytes with no framing, no
msgpack and no queue. Throughput rows publish for --duration to one and to
four subscribers as fast as they keep up: at most 2 MB of messages in flight,
half the receive buffer mcl requests, so the rows show the rate a receiver
sustains without loss; mcl and the baseline take turns, a fifth of
--duration at a time. Latency rows time --rounds ping-pong round trips,
mcl and the baseline taking turns 50 at a time.
Every row gives messages/s, MB/s (10^6 bytes, per subscriber), loss and the
ratio mcl/baseline (messages/s for throughput; p50 and p99 for latency).
On a shared machine one run of a row can be off by a factor of two:
--repeat measures every row several times, mcl and baseline back to back
each time, and keeps the run with the median ratio. Compare ratios, not
absolute numbers.`,
		Example: `  mcl bench
  mcl bench --duration 3s --rounds 10000
  mcl bench --repeat 5
  mcl bench --json > bench.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Duration <= 0 || cfg.Rounds <= 0 || cfg.Repeat <= 0 {
				return usagef("--duration, --rounds and --repeat must be positive")
			}
			if _, err := sandbox.Enter(); err != nil {
				return fmt.Errorf("bench needs a private network namespace and could not make one: %w", err)
			}
			cfg.Progress = progressBar(cmd.ErrOrStderr())
			rep, err := bench.Run(cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printReport(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	f := c.Flags()
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each throughput row publishes, e.g. 3s")
	f.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "round trips per latency row")
	f.IntVar(&cfg.Repeat, "repeat", cfg.Repeat, "measure every row this many times and keep the median")
	f.BoolVar(&asJSON, "json", false, "print the report as one JSON object instead of a table")
	return c
}

// progressBar draws a bar on w when w is a terminal, and nothing otherwise.
func progressBar(w io.Writer) func(done, total int, what string) {
	if f, ok := w.(*os.File); !ok || !isTerminal(f) {
		return nil
	}
	return func(done, total int, what string) {
		const width = 30
		fill := width * done / total
		fmt.Fprintf(w, "\r[%s%s] %2d/%d %-32s", strings.Repeat("#", fill), strings.Repeat(" ", width-fill), done, total, what)
		if done == total {
			fmt.Fprint(w, "\r\033[K")
		}
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func printReport(w io.Writer, rep *bench.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "throughput\tsubs\tmcl msg/s\tmcl MB/s\tmcl loss\tbase msg/s\tbase MB/s\tbase loss\tratio\t")
	for _, r := range rep.Rows {
		if r.Kind != "throughput" {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f\t%.2f%%\t%.0f\t%.1f\t%.2f%%\t%.2f\t\n", size(r.Size), r.Subscribers,
			r.MCL.MsgsPerSec, r.MCL.MBPerSec, 100*r.MCL.Loss, r.Baseline.MsgsPerSec, r.Baseline.MBPerSec, 100*r.Baseline.Loss, r.Ratio)
	}
	fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t")
	fmt.Fprintln(tw, "latency (round trip)\tmcl p50\tp99\tp99.9\tmax\tbase p50\tp99\tp99.9\tmax\tratio p50\tp99\t")
	for _, r := range rep.Rows {
		if r.Kind != "latency" {
			continue
		}
		m, b := r.MCL, r.Baseline
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t\n", size(r.Size), us(m.P50), us(m.P99), us(m.P999), us(m.Max),
			us(b.P50), us(b.P99), us(b.P999), us(b.Max), r.Ratio, r.RatioP99)
	}
	tw.Flush()
}

func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }

func size(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
