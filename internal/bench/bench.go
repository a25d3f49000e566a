// Package bench measures mcl against a baseline in one run: the same
// multicast sockets and batch system calls (recvmmsg, sendmmsg) moving the
// same bytes with no framing, no msgpack, no queue. The ratio of the two
// says what mcl costs on top of the kernel. It runs wherever it is called:
// the `mcl bench` command enters the sandbox network first.
//
// The rows measure the seed framing, mcl/2 (mcl.FramingMCL2), or both
// (Config.Framing); see mcl2.go for mcl/2's rows and their baseline.
//
// By default publishers and subscribers share one process. With
// Config.CrossProcess, every subscriber (and the echo of a latency row)
// runs in a process of its own, as users meet mcl between programs; see
// ServeChild.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/sock"
)

// Config says what to measure. Zero fields take Default's values.
type Config struct {
	Group        string        // multicast group (default mcl.DefaultGroup)
	Port         int           // first port; each measurement uses its own
	Duration     time.Duration // how long each throughput row publishes
	Sizes        []int         // payload sizes for throughput rows
	Fanouts      []int         // subscriber counts for throughput rows
	LatencySizes []int         // payload sizes for ping-pong rows
	Rounds       int           // round trips per latency row
	Repeat       int           // times each row is measured; the median is kept
	// Progress, when set, is called before each measurement.
	Progress func(done, total int, what string)
	// CrossProcess runs every subscriber of a throughput row, mcl's and
	// the baseline's, in a process of its own, and the echoes of a latency
	// row in one; the publisher and the pinger stay in the calling process.
	CrossProcess bool
	// Framing says which rows to measure: FramingSeed the rows of mcl's
	// default framing (Sizes, Fanouts, LatencySizes), FramingMCL2 the
	// mcl/2 rows (MCL2), FramingBoth (the default) all of them.
	Framing string
	// MCL2 is what the mcl/2 rows measure.
	MCL2 MCL2Rows
	// Spin is the mcl.Spin of every Connection, mcl's and the baseline's
	// sockets alike (default 0: reads sleep on an empty socket).
	Spin time.Duration
	// Spawn returns the command that runs one of those processes: a
	// program, in the same network namespace, that calls ServeChild with
	// its stdin and stdout. Run sets the command's stdin, stdout, stderr,
	// extra files and process attributes, and starts it. CrossProcess
	// needs it.
	Spawn func() *exec.Cmd
}

// Default is the configuration of `mcl bench`.
var Default = Config{
	Group:        mcl.DefaultGroup,
	Port:         29000,
	Duration:     time.Second,
	Sizes:        []int{64, 1 << 10, 16 << 10, 60 << 10, 1 << 20},
	Fanouts:      []int{1, 4},
	LatencySizes: []int{64, 16 << 10},
	Rounds:       20000,
	Repeat:       1,
	Framing:      FramingBoth,
	MCL2: MCL2Rows{
		Sizes:         []int{64, 1 << 20},
		DatagramSizes: []int{0, 1452},
		Fanouts:       []int{1},
		LatencySizes:  []int{64},
	},
}

// Result is one measurement of one implementation.
//
// Throughput rates count messages delivered, not published: a subscriber
// counts a message once the whole of it has arrived, and MsgsPerSec is
// the mean over the subscribers of what each received, the same for mcl
// and the baseline. A side that drops messages gets no credit for them,
// and Lost says how many there were.
type Result struct {
	Messages   uint64  `json:"messages"`     // messages received, summed over subscribers
	Sent       uint64  `json:"sent"`         // messages published (round trips tried, for latency)
	Lost       uint64  `json:"lost"`         // messages missed, summed over subscribers (round trips timed out, for latency)
	MsgsPerSec float64 `json:"msgs_per_sec"` // messages received per second per subscriber: Messages / subscribers / seconds
	MBPerSec   float64 `json:"mb_per_sec"`   // the same in payload MB (10^6 bytes)
	Loss       float64 `json:"loss"`         // Lost / (Sent × subscribers): the fraction a subscriber missed, on average
	LossyRuns  int     `json:"lossy_runs"`   // runs of the row (of Row.Runs) in which this side lost anything
	WorstLoss  float64 `json:"worst_loss"`   // the highest Loss of those runs

	P50  time.Duration `json:"p50_ns,omitempty"` // round-trip latency percentiles
	P99  time.Duration `json:"p99_ns,omitempty"`
	P999 time.Duration `json:"p999_ns,omitempty"`
	Max  time.Duration `json:"max_ns,omitempty"`
}

// Row pairs mcl with the baseline for one workload. With Repeat, MCL and
// Baseline are the run with the median ratio, but their LossyRuns and
// WorstLoss cover all Runs: a loss in a run that was not kept still marks
// the row.
type Row struct {
	Kind        string `json:"kind"` // "throughput" or "latency"
	Size        int    `json:"size"`
	Subscribers int    `json:"subscribers"`
	// Variant is how mcl's side published: the framing, and for mcl/2
	// the datagram size it used (the path's when not set) and Express.
	Variant
	MCL      Result  `json:"mcl"`
	Baseline Result  `json:"baseline"`
	Ratio    float64 `json:"ratio"` // mcl/baseline: delivered messages/s per subscriber for throughput, p50 for latency
	RatioP99 float64 `json:"ratio_p99,omitempty"`
	// Lossy says that a side lost messages in some run of the row. Its
	// ratio is then not a rate sustained without loss; read it with the
	// loss of each side.
	Lossy bool `json:"lossy"`
	Runs  int  `json:"runs"` // times the row was measured
	// Seed is, in an mcl/2 latency row, mcl's round trips in the seed
	// framing, measured in the same turns as the row's mcl/2 and baseline
	// round trips; VsSeed and VsSeedP99 are mcl/2's p50 and p99 over
	// them. Its Lost counts in Lossy.
	Seed      *Result `json:"seed,omitempty"`
	VsSeed    float64 `json:"vs_seed,omitempty"`
	VsSeedP99 float64 `json:"vs_seed_p99,omitempty"`
}

// The modes of a Report.
const (
	ModeInProcess    = "in-process"    // publishers and subscribers in one process
	ModeCrossProcess = "cross-process" // each subscriber (echo) in a process of its own
)

// Report is a whole run.
type Report struct {
	Mode string        `json:"mode"`              // ModeInProcess or ModeCrossProcess
	Spin time.Duration `json:"spin_ns,omitempty"` // Config.Spin
	Rows []Row         `json:"rows"`
}

// Run measures every row of cfg. The end of ctx stops it between two turns
// of a row (and ends its child processes at once), with ctx's error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = withDefaults(cfg)
	switch cfg.Framing {
	case FramingSeed, FramingMCL2, FramingBoth:
	default:
		return nil, fmt.Errorf("bench: framing %q: use %q, %q or %q", cfg.Framing, FramingSeed, FramingMCL2, FramingBoth)
	}
	if cfg.Spin < 0 || cfg.Spin > time.Millisecond {
		return nil, fmt.Errorf("bench: spin %v: use 0 (never) to 1ms", cfg.Spin)
	}
	rep := &Report{Mode: ModeInProcess, Spin: cfg.Spin}
	throughput, latency := throughputRow, latencyRow
	if cfg.CrossProcess {
		if cfg.Spawn == nil {
			return nil, errors.New("bench: cross-process mode needs Config.Spawn")
		}
		p := processes{spawn: cfg.Spawn}
		throughput, latency = p.throughputRow, p.latencyRow
		rep.Mode = ModeCrossProcess
	}
	// After ctx ends, a row fails with whatever its end broke (a child
	// killed, a socket closed): report the interruption instead.
	stopped := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	withSeed, withMCL2 := cfg.Framing != FramingMCL2, cfg.Framing != FramingSeed
	total := 0
	if withSeed {
		total += len(cfg.Sizes)*len(cfg.Fanouts) + len(cfg.LatencySizes)
	}
	if withMCL2 {
		m := cfg.MCL2
		total += len(m.Sizes)*len(m.DatagramSizes)*len(m.Fanouts) + len(m.LatencySizes)
	}
	total *= cfg.Repeat
	done := 0
	step := func(what string) {
		if cfg.Progress != nil {
			cfg.Progress(done, total, what)
		}
		done++
	}
	port := cfg.Port
	nextConn := func() (*mcl.Connection, error) {
		port++
		return mcl.NewConnection(cfg.Group, mcl.Port(port), mcl.Spin(cfg.Spin))
	}
	if withSeed {
		for _, subs := range cfg.Fanouts {
			for _, size := range cfg.Sizes {
				row, err := repeat(cfg.Repeat, func() (Row, error) {
					step(fmt.Sprintf("throughput %s x%d", sizeName(size), subs))
					return measureThroughput(ctx, throughput, nextConn, flow{size: size, subs: subs, d: cfg.Duration, v: Variant{Framing: FramingSeed}}, stopped)
				})
				if err != nil {
					return nil, err
				}
				rep.Rows = append(rep.Rows, row)
			}
		}
	}
	if withMCL2 {
		for _, subs := range cfg.MCL2.Fanouts {
			for _, size := range cfg.MCL2.Sizes {
				for _, dg := range cfg.MCL2.DatagramSizes {
					v := Variant{Framing: FramingMCL2, DatagramSize: dg}
					row, err := repeat(cfg.Repeat, func() (Row, error) {
						step(fmt.Sprintf("throughput %s x%d %s", sizeName(size), subs, v.Label()))
						return measureThroughput(ctx, throughput, nextConn, flow{size: size, subs: subs, d: cfg.Duration, v: v}, stopped)
					})
					if err != nil {
						return nil, err
					}
					rep.Rows = append(rep.Rows, row)
				}
			}
		}
	}
	if withSeed {
		for _, size := range cfg.LatencySizes {
			row, err := repeat(cfg.Repeat, func() (Row, error) {
				row := Row{Kind: "latency", Size: size, Subscribers: 1, Variant: Variant{Framing: FramingSeed}}
				step(fmt.Sprintf("latency %s", sizeName(size)))
				var conns [4]*mcl.Connection
				for i := range conns {
					var err error
					if conns[i], err = nextConn(); err != nil {
						return row, err
					}
				}
				var err error
				row.MCL, row.Baseline, err = latency(ctx, conns[0], conns[1], conns[2], conns[3], size, cfg.Rounds)
				if err != nil {
					return row, fmt.Errorf("latency, %s: %w", sizeName(size), stopped(err))
				}
				row.Ratio = ratio(float64(row.MCL.P50), float64(row.Baseline.P50))
				row.RatioP99 = ratio(float64(row.MCL.P99), float64(row.Baseline.P99))
				return row, nil
			})
			if err != nil {
				return nil, err
			}
			rep.Rows = append(rep.Rows, row)
		}
	}
	if withMCL2 {
		latency2 := latencyRows2
		if cfg.CrossProcess {
			latency2 = processes{spawn: cfg.Spawn}.latencyRows2
		}
		for _, size := range cfg.MCL2.LatencySizes {
			rows, err := repeatGroup(cfg.Repeat, func() ([]Row, error) {
				step(fmt.Sprintf("latency %s mcl2", sizeName(size)))
				conns := make([]*mcl.Connection, 2*(len(latencyVariants2)+1))
				for i := range conns {
					var err error
					if conns[i], err = nextConn(); err != nil {
						return nil, err
					}
				}
				rows, err := latency2(ctx, conns, size, cfg.Rounds)
				if err != nil {
					return nil, fmt.Errorf("latency, %s mcl2: %w", sizeName(size), stopped(err))
				}
				return rows, nil
			})
			if err != nil {
				return nil, err
			}
			rep.Rows = append(rep.Rows, rows...)
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(total, total, "done")
	}
	return rep, nil
}

// repeat measures a row n times and returns the measurement whose ratio
// is the median: on a shared machine one run of a row can be off by a
// factor of two, a median of several much less. The row it returns says
// in how many runs each side lost messages, so that a loss is not hidden
// by a run without one.
func repeat(n int, measure func() (Row, error)) (Row, error) {
	rows := make([]Row, 0, n)
	for range n {
		r, err := measure()
		if err != nil {
			return r, err
		}
		rows = append(rows, r)
	}
	return median(rows), nil
}

// repeatGroup is repeat for a measurement that makes several rows at once
// (mcl/2's latency rows, whose pingers take turns): each of its rows is
// kept as repeat keeps one, from the run of its own median ratio.
func repeatGroup(n int, measure func() ([]Row, error)) ([]Row, error) {
	var runs [][]Row
	for range n {
		rs, err := measure()
		if err != nil {
			return nil, err
		}
		runs = append(runs, rs)
	}
	kept := make([]Row, len(runs[0]))
	for i := range kept {
		rows := make([]Row, 0, n)
		for _, rs := range runs {
			rows = append(rows, rs[i])
		}
		kept[i] = median(rows)
	}
	return kept, nil
}

// median returns the run of a row whose ratio is the median, with Runs,
// LossyRuns, WorstLoss and Lossy covering all runs.
func median(rows []Row) Row {
	n := len(rows)
	slices.SortFunc(rows, func(a, b Row) int { return cmp.Compare(a.Ratio, b.Ratio) })
	kept := rows[n/2]
	kept.Runs = n
	kept.MCL.LossyRuns, kept.Baseline.LossyRuns = 0, 0
	if kept.Seed != nil {
		s := *kept.Seed
		s.LossyRuns = 0
		kept.Seed = &s
	}
	for _, r := range rows {
		sides := []struct{ kept, run *Result }{{&kept.MCL, &r.MCL}, {&kept.Baseline, &r.Baseline}}
		if kept.Seed != nil && r.Seed != nil {
			sides = append(sides, struct{ kept, run *Result }{kept.Seed, r.Seed})
		}
		for _, side := range sides {
			if side.run.Lost > 0 {
				side.kept.LossyRuns++
				side.kept.WorstLoss = max(side.kept.WorstLoss, side.run.Loss)
			}
		}
	}
	kept.Lossy = kept.MCL.LossyRuns > 0 || kept.Baseline.LossyRuns > 0 || (kept.Seed != nil && kept.Seed.LossyRuns > 0)
	return kept
}

func withDefaults(c Config) Config {
	d := Default
	c.Group = cmp.Or(c.Group, d.Group)
	c.Port = cmp.Or(c.Port, d.Port)
	c.Duration = cmp.Or(c.Duration, d.Duration)
	c.Rounds = cmp.Or(c.Rounds, d.Rounds)
	c.Repeat = cmp.Or(c.Repeat, d.Repeat)
	if c.Sizes == nil {
		c.Sizes = d.Sizes
	}
	if c.Fanouts == nil {
		c.Fanouts = d.Fanouts
	}
	if c.LatencySizes == nil {
		c.LatencySizes = d.LatencySizes
	}
	c.Framing = cmp.Or(c.Framing, d.Framing)
	if c.MCL2.Sizes == nil {
		c.MCL2.Sizes = d.MCL2.Sizes
	}
	if c.MCL2.DatagramSizes == nil {
		c.MCL2.DatagramSizes = d.MCL2.DatagramSizes
	}
	if c.MCL2.Fanouts == nil {
		c.MCL2.Fanouts = d.MCL2.Fanouts
	}
	if c.MCL2.LatencySizes == nil {
		c.MCL2.LatencySizes = d.MCL2.LatencySizes
	}
	return c
}

// throughputRatio is the ratio of a throughput row: messages delivered per
// second per subscriber, mcl over the baseline. Neither side's rate counts
// a message its subscribers did not receive (see delivered).
func throughputRatio(m, base Result) float64 { return ratio(m.MsgsPerSec, base.MsgsPerSec) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// payload returns a msgpack bin value of exactly size bytes in all, so
// mcl and the baseline move the same number of payload bytes.
func payload(size int) []byte {
	var b []byte
	switch n := size - 2; {
	case n < 256:
		b = []byte{0xc4, byte(n)}
	case size-3 < 1<<16:
		n = size - 3
		b = []byte{0xc5, byte(n >> 8), byte(n)}
	default:
		n = size - 5
		b = []byte{0xc6, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	for len(b) < size {
		b = append(b, byte(len(b)))
	}
	return b
}

// counter counts what one subscriber received.
type counter struct {
	msgs, bytes atomic.Uint64
	last        atomic.Int64 // unix nanoseconds of the last message
}

func (c *counter) add(n int) {
	c.msgs.Add(1)
	c.bytes.Add(uint64(n))
	c.last.Store(time.Now().UnixNano())
}

// at counts a message of n bytes that arrived at t. mcl/2's rows count
// mcl's messages so, with the time mcl read their datagram
// (Message.Received), as their baseline reads the clock once a datagram
// (addN): its datagrams hold hundreds of messages. A clock read for each
// message (add) cost about 45 ns on this machine, as much as mcl/2 spent
// delivering one: the 64 B row's mcl side ran at 7.4-8.1 M messages/s
// with it, and at 9.7-13.8 M without (five runs each, alternating).
func (c *counter) at(n int, t time.Time) {
	c.msgs.Add(1)
	c.bytes.Add(uint64(n))
	c.last.Store(t.UnixNano())
}

// addN counts msgs messages of bytes in all, received at once.
func (c *counter) addN(msgs, bytes int) {
	c.msgs.Add(uint64(msgs))
	c.bytes.Add(uint64(bytes))
	c.last.Store(time.Now().UnixNano())
}

// settle waits until the counters stop moving or reach want, so that
// datagrams still in socket buffers when publishing ends are counted.
func settle(cs []*counter, want uint64) {
	quiet := 0
	prev := uint64(0)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		sum := uint64(0)
		for _, c := range cs {
			sum += c.msgs.Load()
		}
		if sum >= want {
			return
		}
		if sum == prev {
			if quiet++; quiet >= 20 {
				return
			}
		} else {
			quiet = 0
		}
		prev = sum
		time.Sleep(5 * time.Millisecond)
	}
}

func percentiles(r *Result, rtts []time.Duration) {
	slices.Sort(rtts)
	at := func(q float64) time.Duration { return rtts[min(len(rtts)-1, int(q*float64(len(rtts))))] }
	r.P50, r.P99, r.P999, r.Max = at(0.50), at(0.99), at(0.999), rtts[len(rtts)-1]
	r.Messages, r.Sent = uint64(len(rtts)), uint64(len(rtts))
}

// sockConfig is what a baseline socket gets: the defaults mcl uses,
// GRO included (a Subscriber's socket takes runs of datagrams that the
// kernel coalesced, as mcl/2's large messages go out with UDP GSO), so
// that its readers take each datagram of a read from Message.Datagrams;
// and a Subscriber's spin (mcl.Spin), so that both wait for datagrams alike.
func sockConfig(c *mcl.Connection) sock.Config {
	return sock.Config{
		Group:       c.Group(),
		Hops:        mcl.DefaultHops,
		Loopback:    true,
		ReadBuffer:  mcl.DefaultReadBuffer,
		WriteBuffer: 4 << 20,
		GRO:         true,
		Spin:        c.Spin(),
	}
}
