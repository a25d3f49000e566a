package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mcl-go/mcl/sandbox"
)

func TestMain(m *testing.M) {
	if act := os.Getenv(childEnv); act != "" {
		os.Exit(actChild(act)) // a child process of a test, not the tests
	}
	if _, err := sandbox.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
	}
	os.Exit(m.Run())
}

// TestRun runs a tiny benchmark, in each mode, to check that every row is
// measured and the report holds together; it asserts no speed.
func TestRun(t *testing.T) {
	sandbox.Require(t)
	for _, c := range []struct {
		mode  string
		cross bool
	}{{ModeInProcess, false}, {ModeCrossProcess, true}} {
		t.Run(c.mode, func(t *testing.T) {
			var calls int
			rep, err := Run(context.Background(), Config{
				Duration:     50 * time.Millisecond,
				Sizes:        []int{64, 70_000},
				Fanouts:      []int{1, 2},
				LatencySizes: []int{64},
				Rounds:       50,
				Framing:      FramingSeed,
				Progress:     func(done, total int, what string) { calls++ },
				CrossProcess: c.cross,
				Spawn:        spawnTest("serve"),
			})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Mode != c.mode {
				t.Errorf("mode %q, want %q", rep.Mode, c.mode)
			}
			if len(rep.Rows) != 5 || calls != 6 {
				t.Fatalf("%d rows, %d progress calls; want 5 and 6", len(rep.Rows), calls)
			}
			for _, r := range rep.Rows {
				for name, res := range map[string]Result{"mcl": r.MCL, "baseline": r.Baseline} {
					if res.Messages == 0 || res.Sent == 0 || r.Ratio <= 0 || r.Runs != 1 {
						t.Errorf("%s %s row %+v: nothing measured", r.Kind, name, r)
					}
					if res.Lost > res.Sent*uint64(r.Subscribers) || res.Loss < 0 || res.Loss > 1 {
						t.Errorf("%s %s row %+v: loss out of bounds", r.Kind, name, r)
					}
					if r.Kind == "latency" && !(0 < res.P50 && res.P50 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max) {
						t.Errorf("latency %s percentiles out of order: %+v", name, res)
					}
				}
			}
		})
	}
}

func TestPayloadSize(t *testing.T) {
	for _, n := range []int{64, 257, 258, 1 << 10, 65538, 65539, 1 << 20} {
		if got := len(payload(n)); got != n {
			t.Errorf("payload(%d) is %d bytes", n, got)
		}
	}
}

func TestRepeatKeepsMedian(t *testing.T) {
	ratios := []float64{3, 0.5, 2, 1, 9}
	calls := 0
	row, err := repeat(len(ratios), func() (Row, error) {
		calls++
		return Row{Ratio: ratios[calls-1], Size: calls}, nil
	})
	if err != nil || calls != 5 || row.Ratio != 2 || row.Size != 3 {
		t.Errorf("repeat kept %+v after %d calls (%v); want the third run, ratio 2", row, calls, err)
	}
}

// TestDeliveredRate checks that a throughput rate counts what the
// subscribers received, not what was published: a side that publishes
// twice as fast but loses half gets no credit for the lost half.
func TestDeliveredRate(t *testing.T) {
	m := delivered(2000, []uint64{1000, 1000, 1000, 772}, 64, time.Second)
	if m.Messages != 3772 || m.Lost != 1000+1000+1000+1228 {
		t.Errorf("mcl side: %d received, %d lost; want 3772 and 4228", m.Messages, m.Lost)
	}
	if m.MsgsPerSec != 943 || m.MBPerSec != 943*64/1e6 {
		t.Errorf("mcl side: %v msg/s, %v MB/s; want 943 received per subscriber", m.MsgsPerSec, m.MBPerSec)
	}
	if want := 4228.0 / 8000; m.Loss != want {
		t.Errorf("mcl side: loss %v, want %v", m.Loss, want)
	}
	base := delivered(1000, []uint64{1000, 1000, 1000, 1000}, 64, 2*time.Second)
	if base.MsgsPerSec != 500 || base.Lost != 0 || base.Loss != 0 {
		t.Errorf("baseline: %+v; want 500 msg/s and no loss", base)
	}
	// Counted from messages sent, the ratio would be 2000/500 = 4.
	if got := throughputRatio(m, base); got != 943.0/500 {
		t.Errorf("ratio %v, want %v (delivered per subscriber)", got, 943.0/500)
	}
}

// TestRepeatCountsLossyRuns checks that a row keeps the loss of the runs
// it did not keep: the median run lost nothing, another did.
func TestRepeatCountsLossyRuns(t *testing.T) {
	runs := []Row{
		{Ratio: 1.55, MCL: Result{Lost: 57, Loss: 0.057}},
		{Ratio: 1.0},
		{Ratio: 0.9, Baseline: Result{Lost: 1, Loss: 0.001}},
		{Ratio: 1.2, MCL: Result{Lost: 3, Loss: 0.003}},
		{Ratio: 1.1},
	}
	calls := 0
	row, err := repeat(len(runs), func() (Row, error) {
		calls++
		return runs[calls-1], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if row.Ratio != 1.1 || row.Runs != 5 || !row.Lossy || row.MCL.LossyRuns != 2 || row.Baseline.LossyRuns != 1 {
		t.Errorf("kept %+v; want ratio 1.1, lossy, mcl lossy in 2 of 5 runs, baseline in 1", row)
	}
	if row.MCL.Loss != 0 || row.MCL.WorstLoss != 0.057 || row.Baseline.WorstLoss != 0.001 {
		t.Errorf("kept %+v; want the kept run's loss, 0, and the worst of all runs, 0.057 and 0.001", row)
	}
	clean, _ := repeat(1, func() (Row, error) { return Row{Ratio: 1}, nil })
	if clean.Lossy || clean.Runs != 1 {
		t.Errorf("a run without loss gave %+v", clean)
	}
}

// TestWholes checks that a baseline subscriber counts a message of several
// datagrams only when all of them arrived, in order.
func TestWholes(t *testing.T) {
	const n = 3
	piece := func(seq uint64) []byte {
		d := make([]byte, 100)
		if seq%n == n-1 {
			d = d[:5] // a last piece too short for the whole number
		}
		stamp(d, seq)
		return d
	}
	for _, c := range []struct {
		name string
		seqs []uint64
		want int
	}{
		{"all", []uint64{0, 1, 2, 3, 4, 5}, 2},
		{"middle lost", []uint64{0, 2, 3, 4, 5}, 1},
		{"last lost", []uint64{0, 1, 3, 4, 5}, 1},
		{"first lost", []uint64{1, 2, 3, 4, 5}, 1},
		// Two pieces of one message and the last of the next: as many
		// bytes as a message, but not a message.
		{"pieces of two", []uint64{0, 1, 5, 6, 7, 8}, 1},
		{"short piece of another message", []uint64{0, 1, 8}, 0},
	} {
		w := wholes{n: n}
		got := 0
		for _, s := range c.seqs {
			if w.add(piece(s)) {
				got++
			}
		}
		if got != c.want {
			t.Errorf("%s: %d whole messages, want %d", c.name, got, c.want)
		}
	}
	single := wholes{n: 1}
	if !single.add(make([]byte, 64)) {
		t.Error("a message of one datagram was not counted")
	}
}
