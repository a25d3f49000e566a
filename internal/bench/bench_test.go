package bench

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mcl-go/mcl/sandbox"
)

func TestMain(m *testing.M) {
	if _, err := sandbox.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
	}
	os.Exit(m.Run())
}

// TestRun runs a tiny benchmark to check that every row is measured and
// the report holds together; it asserts no speed.
func TestRun(t *testing.T) {
	sandbox.Require(t)
	var calls int
	rep, err := Run(Config{
		Duration:     50 * time.Millisecond,
		Sizes:        []int{64, 70_000},
		Fanouts:      []int{1, 2},
		LatencySizes: []int{64},
		Rounds:       50,
		Progress:     func(done, total int, what string) { calls++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 5 || calls != 6 {
		t.Fatalf("%d rows, %d progress calls; want 5 and 6", len(rep.Rows), calls)
	}
	for _, r := range rep.Rows {
		for name, res := range map[string]Result{"mcl": r.MCL, "baseline": r.Baseline} {
			if res.Messages == 0 || res.Sent == 0 || r.Ratio <= 0 {
				t.Errorf("%s %s row %+v: nothing measured", r.Kind, name, r)
			}
			if r.Kind == "latency" && !(0 < res.P50 && res.P50 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max) {
				t.Errorf("latency %s percentiles out of order: %+v", name, res)
			}
		}
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
