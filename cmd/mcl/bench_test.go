package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcl-go/mcl/internal/bench"
	"github.com/mcl-go/mcl/sandbox"
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

// TestPrintReportMode checks that the table says which mode it ran in.
func TestPrintReportMode(t *testing.T) {
	for _, mode := range []string{bench.ModeInProcess, bench.ModeCrossProcess} {
		var out bytes.Buffer
		printReport(&out, &bench.Report{Mode: mode})
		if first, _, _ := strings.Cut(out.String(), "\n"); !strings.HasPrefix(first, "mode: "+mode+": ") {
			t.Errorf("first line %q, want the mode %s", first, mode)
		}
	}
}

// childBench makes the children of `mcl bench --cross-process` this test
// binary, run as `mcl bench child` (see runChildCommand), with env added
// to their environment, until the end of the test.
func childBench(t *testing.T, env ...string) {
	t.Helper()
	saved := benchChild
	t.Cleanup(func() { benchChild = saved })
	benchChild = func() *exec.Cmd {
		cmd := exec.Command("/proc/self/exe")
		cmd.Env = append(os.Environ(), append(env, childArgs+`=["bench", "child"]`)...)
		return cmd
	}
}

// TestBenchCrossProcess runs a tiny `mcl bench --cross-process` and checks
// that every row comes out measured, in that mode; it asserts no speed.
func TestBenchCrossProcess(t *testing.T) {
	sandbox.Require(t)
	childBench(t)
	// Fewer rows than the command's: each child is a process to start,
	// slow under the race detector. One and four subscribers, one payload
	// of one datagram and one of two.
	saved := bench.Default
	t.Cleanup(func() { bench.Default = saved })
	bench.Default.Sizes, bench.Default.LatencySizes = []int{64, 60 << 10}, []int{64}
	r := mcl_(context.Background(), "", "bench", "--cross-process", "--duration", "50ms", "--rounds", "30", "--json")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v in %s", err, r.stdout)
	}
	if rep.Mode != bench.ModeCrossProcess {
		t.Errorf("mode %q, want %q", rep.Mode, bench.ModeCrossProcess)
	}
	want := len(bench.Default.Sizes)*len(bench.Default.Fanouts) + len(bench.Default.LatencySizes)
	if len(rep.Rows) != want {
		t.Fatalf("%d rows, want %d", len(rep.Rows), want)
	}
	for _, row := range rep.Rows {
		for name, res := range map[string]bench.Result{"mcl": row.MCL, "base": row.Baseline} {
			if res.Messages == 0 || res.Sent == 0 || row.Ratio <= 0 || row.Runs != 1 || res.Loss < 0 || res.Loss > 1 {
				t.Errorf("%s %d x%d, %s: %+v", row.Kind, row.Size, row.Subscribers, name, row)
			}
			if row.Kind == "throughput" && (res.MsgsPerSec <= 0 || res.MBPerSec <= 0) {
				t.Errorf("%s %d x%d, %s: no rate: %+v", row.Kind, row.Size, row.Subscribers, name, res)
			}
			if row.Kind == "latency" && !(0 < res.P50 && res.P50 <= res.P99 && res.P99 <= res.Max) {
				t.Errorf("latency %d, %s: percentiles out of order: %+v", row.Size, name, res)
			}
		}
	}
}

// TestBenchChildOutsideSandbox checks that `mcl bench child` refuses to run
// in a process that was not started inside the sandbox.
func TestBenchChildOutsideSandbox(t *testing.T) {
	cmd := exec.Command("/proc/self/exe")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCL_SANDBOX=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, childArgs+`=["bench", "child"]`)
	cmd.Stdin = strings.NewReader(`{"role":"echo","group":"ff15::c73d:cf41:ea8e:b0a0","ports":[28990,28991,28992,28993]}` + "\n")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "runs nowhere else") || strings.Contains(string(out), "ready") {
		t.Errorf("bench child outside the sandbox: %v, %q; want a refusal", err, out)
	}
}
