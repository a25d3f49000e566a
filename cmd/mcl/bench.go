package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mcl-go/mcl/internal/bench"
	"github.com/mcl-go/mcl/sandbox"
)

func newBenchCmd() *cobra.Command {
	cfg := bench.Default
	var asJSON bool
	var mtu int
	c := &cobra.Command{
		Use:   "bench [--duration D] [--rounds N] [--repeat N] [--framing seed|mcl2|both] [--cross-process] [--mtu N] [--spin D] [--json]",
		Short: "Measure mcl against plain sockets in a private sandbox network",
		Long: `bench re-runs itself in a private network namespace (as mcl demo does) and
measures, in one run, mcl and a baseline: the same multicast sockets and batch
system calls (recvmmsg, sendmmsg) moving the same bytes with no framing, no
msgpack and no queue. Throughput rows publish for --duration to one and to
four subscribers as fast as they keep up: at most 2 MB of messages in flight,
half the receive buffer mcl requests, so that the rows show the rate a
receiver sustains without loss; mcl and the baseline take turns, a fifth of
--duration at a time. Latency rows time --rounds ping-pong round trips,
mcl and the baseline taking turns 50 at a time.
Every row gives messages/s and MB/s (10^6 bytes) received per subscriber,
loss and the ratio mcl/baseline (messages/s for throughput; p50 and p99 for
latency). Only messages a subscriber received count, on both sides; a row in
which a side lost messages has a "!" after its ratio and names that side.
On a shared machine one run of a row can be off by a factor of two:
--repeat measures every row several times, mcl and baseline back to back
each time, and keeps the run with the median ratio. Compare ratios, not
absolute numbers.
By default the publisher and the subscribers of a row share one process, and
mcl's four subscribers share one socket. --cross-process runs each subscriber
in a process of its own, and a latency row's echo in one, apart from the
publisher (the pinger), as programs meet mcl; the rows are counted the same
way, mcl and the baseline alike. The first line of the table (and "mode" in
the JSON) says which mode ran.
--framing picks the rows: "seed", mcl's default framing (one message a
datagram); "mcl2", the opt-in mcl/2 framing (docs/mcl2.md); "both", the
default, both sets. mcl/2's throughput rows publish 64 B and 1 MB messages,
batched, in datagrams of the path's size (65487 bytes on the sandbox's veth)
and of 1452 bytes (what an Ethernet link carries); their baseline sends the
same bytes in datagrams of the same size: for 64 B messages, as many to a
full datagram as mcl/2 puts in one, every datagram full, with sendmmsg; for
1 MB, mcl/2's pieces, as one run with UDP GSO, as mcl/2 sends them. Its
latency rows time mcl/2 batched and Express round trips, taking turns with
the seed framing's and the baseline's: "vs seed" is mcl/2's percentile over
the seed framing's of the same turns.
--mtu sets the MTU of the sandbox's veth pair (65535 by default, where no
datagram is fragmented): 1500 measures what an Ethernet link does, the seed
framing's 60000-byte datagrams cut by IP into 41 fragments each, mcl/2's
datagrams fitting the link.
--spin D gives every socket, mcl's and the baseline's, mcl.Spin(D): reads
poll for D after a datagram before they sleep (CPU for latency; see the
option's documentation).`,
		Example: `  mcl bench
  mcl bench --duration 3s --rounds 10000
  mcl bench --repeat 5
  mcl bench --framing mcl2 --repeat 3
  mcl bench --cross-process --repeat 5
  mcl bench --mtu 1500
  mcl bench --cross-process --spin 50us
  mcl bench --json > bench.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Duration <= 0 || cfg.Rounds <= 0 || cfg.Repeat <= 0 {
				return usagef("--duration, --rounds and --repeat must be positive")
			}
			switch cfg.Framing {
			case bench.FramingSeed, bench.FramingMCL2, bench.FramingBoth:
			default:
				return usagef("--framing %q: use seed, mcl2 or both", cfg.Framing)
			}
			if mtu != 0 && (mtu < 1280 || mtu > 65535) {
				return usagef("--mtu %d: use 1280..65535 (IPv6 needs 1280)", mtu)
			}
			if _, err := sandbox.Enter(); err != nil {
				return fmt.Errorf("bench needs a private network namespace and could not make one: %w", err)
			}
			if mtu != 0 {
				if _, err := sandbox.SetMTU(mtu); err != nil {
					return fmt.Errorf("--mtu %d: %w", mtu, err)
				}
			}
			cfg.Progress = progressBar(cmd.ErrOrStderr())
			cfg.Spawn = benchChild
			rep, err := bench.Run(cmd.Context(), cfg)
			if errors.Is(err, context.Canceled) {
				return errors.New("bench interrupted")
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			mtu := 0
			if n, err := sandbox.Current(); err == nil {
				mtu = n.MTU
			}
			printReport(cmd.OutOrStdout(), rep, mtu)
			return nil
		},
	}
	f := c.Flags()
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each throughput row publishes, e.g. 3s")
	f.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "round trips per latency row")
	f.IntVar(&cfg.Repeat, "repeat", cfg.Repeat, "measure every row this many times and keep the median")
	f.StringVar(&cfg.Framing, "framing", cfg.Framing, "rows to measure: seed (mcl's default framing), mcl2 (the mcl/2 framing) or both")
	f.BoolVar(&cfg.CrossProcess, "cross-process", false, "run each subscriber, and each latency row's echo, in a process of its own, apart from the publisher")
	f.BoolVar(&asJSON, "json", false, "print the report as one JSON object instead of a table")
	f.DurationVar(&cfg.Spin, "spin", 0, "poll every socket for this long after a datagram before sleeping (mcl.Spin), e.g. 50us; 0..1ms")
	f.IntVar(&mtu, "mtu", 0, "MTU of the sandbox's links, e.g. 1500 for an Ethernet link's (default: 65535)")
	c.AddCommand(newBenchChildCmd())
	return c
}

// benchChild returns the command that runs a child process of
// `mcl bench --cross-process`: this program again, as `mcl bench child`.
// Tests replace it, as their program is not mcl.
var benchChild = func() *exec.Cmd { return exec.Command("/proc/self/exe", "bench", "child") }

// newBenchChildCmd is `mcl bench child`, hidden: a subscriber or an echo of
// `mcl bench --cross-process`, which starts it and tells it on its stdin
// what to do. It runs only in the sandbox it inherits from its parent.
func newBenchChildCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "child",
		Short:  "A subscriber or echo process of mcl bench --cross-process (started by it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Entering a sandbox of its own would put it in another
			// network than its parent's; outside any, it must not send.
			if !sandbox.Inside() {
				return errors.New("bench child is started by mcl bench --cross-process, inside its sandbox, and runs nowhere else")
			}
			if _, err := sandbox.Current(); err != nil {
				return err
			}
			return bench.ServeChild(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
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

// isTerminal reports whether f is a terminal (golang.org/x/term: not
// merely a character device, which /dev/null is too).
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// printReport writes rep as a throughput table, a latency table and a
// legend. A row in which a side lost messages, in the run shown or in any
// run of --repeat, gets a "!" after its ratio and names that side in its
// last column: its rate then counts only what arrived, at a pace the
// receiver did not sustain without loss.
func printReport(w io.Writer, rep *bench.Report, mtu int) {
	fmt.Fprintln(w, modeLine(rep.Mode))
	if rep.Spin > 0 {
		fmt.Fprintf(w, "spin: every socket, mcl's and the baseline's, polls for %v after a datagram\n", rep.Spin)
	}
	if mtu > 0 {
		fmt.Fprintf(w, "link: a veth pair of MTU %d\n", mtu)
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "throughput\tframing\tsubs\tmcl msg/s\tmcl MB/s\tmcl loss\tbase msg/s\tbase MB/s\tbase loss\tratio\tlost in\t")
	for _, r := range rep.Rows {
		if r.Kind != "throughput" {
			continue
		}
		m, b := r.MCL, r.Baseline
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.1f\t%s\t%.0f\t%.1f\t%s\t%s\t%s\t\n", size(r.Size), r.Label(), r.Subscribers,
			m.MsgsPerSec, m.MBPerSec, loss(m), b.MsgsPerSec, b.MBPerSec, loss(b), marked(r.Ratio, r.Lossy), lostIn(r))
	}
	// An empty line ends the columns: the "lost in" of one table would
	// widen a ratio column of the other.
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "latency (round trip)\tframing\tmcl p50\tp99\tp99.9\tmax\tbase p50\tp99\tp99.9\tmax\tratio p50\tp99\tvs seed p50\tp99\tlost in\t")
	for _, r := range rep.Rows {
		if r.Kind != "latency" {
			continue
		}
		m, b := r.MCL, r.Baseline
		vs, vs99 := "-", "-"
		if r.Seed != nil {
			vs, vs99 = fmt.Sprintf("%.2f", r.VsSeed), fmt.Sprintf("%.2f", r.VsSeedP99)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t\n", size(r.Size), r.Label(), us(m.P50), us(m.P99), us(m.P999), us(m.Max),
			us(b.P50), us(b.P99), us(b.P999), us(b.Max), r.Ratio, marked(r.RatioP99, r.Lossy), vs, vs99, lostIn(r))
	}
	tw.Flush()
	// The padding of empty cells would leave every line without a loss
	// ending in spaces.
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	fmt.Fprint(w, legend)
}

// modeLine says where the publishers and subscribers of the rows ran.
func modeLine(mode string) string {
	switch mode {
	case bench.ModeInProcess:
		return "mode: in-process: the publisher and the subscribers (the pinger and the echo) of a row in one process"
	case bench.ModeCrossProcess:
		return "mode: cross-process: each subscriber (the echo) in a process of its own, apart from the publisher (the pinger)"
	}
	return "mode: " + mode
}

// legend says what the columns of printReport count.
const legend = `
msg/s, MB/s: messages (payload MB, 10^6 bytes) received per second per subscriber: what all the
  subscribers received over their number, for mcl and base alike; lost messages do not count.
loss: of the messages published, the share a subscriber missed (mean of the subscribers);
  <0.01% is a loss too small to show, 0.00% none.
framing: how mcl published: seed (the default framing), mcl2/N (mcl/2 batched in datagrams of N
  bytes; base sends the same bytes in datagrams of the same size), mcl2 express.
vs seed: mcl/2's percentile over the seed framing's, measured in the same turns.
ratio: mcl/base of msg/s (throughput) or of a percentile (latency). "!": a side lost messages
  (latency: round trips without a reply in 1 s), named in "lost in"; under --repeat, with the
  runs that lost of all and the worst loss (the row shows the run of median ratio). Such a
  row's rates were not sustained without loss.
`

// loss formats the share of messages a side lost.
func loss(r bench.Result) string { return percent(r.Loss) }

// percent formats a fraction so that a loss never shows as none: under
// 0.005% it would round to 0.00%.
func percent(f float64) string {
	switch {
	case f == 0:
		return "0.00%"
	case f < 0.0001:
		return "<0.01%"
	}
	return fmt.Sprintf("%.2f%%", 100*f)
}

// marked formats a ratio, followed by "!" if its row lost messages; the
// space in its place keeps the figures of the column aligned.
func marked(ratio float64, lossy bool) string {
	if lossy {
		return fmt.Sprintf("%.2f !", ratio)
	}
	return fmt.Sprintf("%.2f  ", ratio)
}

// lostIn names the sides of r that lost messages and, when r was measured
// more than once, in how many of its runs and at worst how much: the row
// shows only the run of median ratio.
func lostIn(r bench.Row) string {
	var sides []string
	for _, s := range []struct {
		name string
		res  bench.Result
	}{{"mcl", r.MCL}, {"base", r.Baseline}, {"seed", seedOf(r)}} {
		switch {
		case s.res.LossyRuns == 0:
		case r.Runs > 1:
			sides = append(sides, fmt.Sprintf("%s %d/%d up to %s", s.name, s.res.LossyRuns, r.Runs, percent(s.res.WorstLoss)))
		default:
			sides = append(sides, s.name)
		}
	}
	return strings.Join(sides, ", ")
}

// seedOf returns the seed framing's round trips of an mcl/2 latency row,
// or nothing.
func seedOf(r bench.Row) bench.Result {
	if r.Seed == nil {
		return bench.Result{}
	}
	return *r.Seed
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
