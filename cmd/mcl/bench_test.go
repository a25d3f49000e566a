package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mcl-go/mcl/internal/bench"
)

// lossyReport has a row that lost messages on the mcl side, one without
// loss, one whose baseline lost too few to show in hundredths of a percent,
// and one measured five times whose median run lost nothing but two others
// did.
func lossyReport() *bench.Report {
	return &bench.Report{Rows: []bench.Row{
		{Kind: "throughput", Size: 64, Subscribers: 4, Ratio: 1.55, Lossy: true, Runs: 1,
			MCL:      bench.Result{MsgsPerSec: 130000, MBPerSec: 8.3, Sent: 100000, Lost: 22800, Loss: 0.057, LossyRuns: 1},
			Baseline: bench.Result{MsgsPerSec: 83870, MBPerSec: 5.4, Sent: 100000}},
		{Kind: "throughput", Size: 1 << 10, Subscribers: 1, Ratio: 1.07, Runs: 1,
			MCL: bench.Result{MsgsPerSec: 90000}, Baseline: bench.Result{MsgsPerSec: 84000}},
		{Kind: "throughput", Size: 16 << 10, Subscribers: 1, Ratio: 0.95, Lossy: true, Runs: 1,
			MCL:      bench.Result{MsgsPerSec: 70000},
			Baseline: bench.Result{MsgsPerSec: 73000, Sent: 1000000, Lost: 3, Loss: 3e-6, LossyRuns: 1}},
		{Kind: "throughput", Size: 1 << 20, Subscribers: 4, Ratio: 1.26, Lossy: true, Runs: 5,
			MCL: bench.Result{MsgsPerSec: 2800, LossyRuns: 2, WorstLoss: 0.216}, Baseline: bench.Result{MsgsPerSec: 2200}},
		{Kind: "latency", Size: 64, Subscribers: 1, Ratio: 1.1, RatioP99: 1.2, Runs: 1,
			MCL:      bench.Result{P50: 30 * time.Microsecond, P99: 70 * time.Microsecond, P999: 100 * time.Microsecond, Max: time.Millisecond},
			Baseline: bench.Result{P50: 27 * time.Microsecond, P99: 60 * time.Microsecond, P999: 90 * time.Microsecond, Max: time.Millisecond}},
	}}
}

// TestPrintReportMarksLoss checks that a row that lost messages says so
// next to its ratio, and a row that did not carries no mark.
func TestPrintReportMarksLoss(t *testing.T) {
	var out bytes.Buffer
	printReport(&out, lossyReport())
	row := func(prefix string) []string {
		for line := range strings.Lines(out.String()) {
			if f := strings.Fields(line); len(f) > 3 && strings.Join(f[:3], " ") == prefix {
				return f
			}
		}
		t.Fatalf("no row %q in\n%s", prefix, out.String())
		return nil
	}
	for _, c := range []struct {
		row  string
		want []string // the fields from the mcl loss on
	}{
		{"64 B 4", []string{"5.70%", "83870", "5.4", "0.00%", "1.55", "!", "mcl"}},
		{"1 KB 1", []string{"0.00%", "84000", "0.0", "0.00%", "1.07"}},
		{"16 KB 1", []string{"0.00%", "73000", "0.0", "<0.01%", "0.95", "!", "base"}},
		{"1 MB 4", []string{"0.00%", "2200", "0.0", "0.00%", "1.26", "!", "mcl", "2/5", "up", "to", "21.60%"}},
	} {
		if got := row(c.row)[5:]; strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("row %s ends %q, want %q", c.row, got, c.want)
		}
	}
	if got := row("64 B 30.0µs"); strings.Contains(strings.Join(got, " "), "!") {
		t.Errorf("latency row without loss is marked: %q", got)
	}
	if !strings.Contains(out.String(), "received per second per subscriber") {
		t.Errorf("no legend saying what msg/s counts:\n%s", out.String())
	}
}

// TestReportJSONMarksLoss checks that the JSON of a lossy row says so.
func TestReportJSONMarksLoss(t *testing.T) {
	b, err := json.Marshal(lossyReport())
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Rows []struct {
			Lossy bool `json:"lossy"`
			MCL   struct {
				Lost      uint64  `json:"lost"`
				Loss      float64 `json:"loss"`
				LossyRuns int     `json:"lossy_runs"`
			} `json:"mcl"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if r := rep.Rows[0]; !r.Lossy || r.MCL.Lost != 22800 || r.MCL.Loss != 0.057 || r.MCL.LossyRuns != 1 {
		t.Errorf("lossy row in JSON: %+v", r)
	}
	if rep.Rows[1].Lossy {
		t.Errorf("row without loss is lossy in JSON: %s", b)
	}
}
