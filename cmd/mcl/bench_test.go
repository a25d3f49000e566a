package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/bench"
	"github.com/mcl-go/mcl/sandbox"
)

// lossyReport has a row that lost messages on the mcl side, one without
// loss, one whose baseline lost too few to show in hundredths of a percent,
// and one measured five times whose median run lost nothing but two others
// did; an mcl/2 row without loss, and two mcl/2 latency rows, one of which
// lost a round trip of the seed framing's measured beside it.
func lossyReport() *bench.Report {
	seed := bench.Variant{Framing: bench.FramingSeed}
	mcl2 := bench.Variant{Framing: bench.FramingMCL2, DatagramSize: 1452}
	seedRTT := bench.Result{P50: 30 * time.Microsecond, P99: 70 * time.Microsecond, P999: 100 * time.Microsecond, Max: time.Millisecond}
	lostRTT := seedRTT
	lostRTT.Lost, lostRTT.Loss, lostRTT.LossyRuns = 1, 0.001, 1
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
		{Kind: "throughput", Size: 64, Subscribers: 1, Ratio: 0.97, Runs: 1, Variant: mcl2,
			MCL: bench.Result{MsgsPerSec: 2600000, MBPerSec: 166.4}, Baseline: bench.Result{MsgsPerSec: 2680000, MBPerSec: 171.5}},
		{Kind: "latency", Size: 64, Subscribers: 1, Ratio: 1.1, RatioP99: 1.2, Runs: 1, Variant: seed,
			MCL:      seedRTT,
			Baseline: bench.Result{P50: 27 * time.Microsecond, P99: 60 * time.Microsecond, P999: 90 * time.Microsecond, Max: time.Millisecond}},
		{Kind: "latency", Size: 64, Subscribers: 1, Ratio: 1.3, RatioP99: 1.4, Runs: 1, Variant: bench.Variant{Framing: bench.FramingMCL2},
			MCL: bench.Result{P50: 36 * time.Microsecond, P99: 84 * time.Microsecond, P999: 120 * time.Microsecond, Max: time.Millisecond}, Seed: &seedRTT,
			Baseline: bench.Result{P50: 27 * time.Microsecond, P99: 60 * time.Microsecond, P999: 90 * time.Microsecond, Max: time.Millisecond},
			VsSeed:   1.2, VsSeedP99: 1.25},
		{Kind: "latency", Size: 64, Subscribers: 1, Ratio: 1.0, RatioP99: 1.1, Runs: 1, Variant: bench.Variant{Framing: bench.FramingMCL2, Express: true}, Lossy: true,
			MCL: bench.Result{P50: 29 * time.Microsecond, P99: 66 * time.Microsecond, P999: 100 * time.Microsecond, Max: time.Millisecond}, Seed: &lostRTT,
			Baseline: bench.Result{P50: 27 * time.Microsecond, P99: 60 * time.Microsecond, P999: 90 * time.Microsecond, Max: time.Millisecond},
			VsSeed:   0.97, VsSeedP99: 0.94},
	}}
}

// TestPrintReportMarksLoss checks that a row that lost messages says so
// next to its ratio, and a row that did not carries no mark.
func TestPrintReportMarksLoss(t *testing.T) {
	var out bytes.Buffer
	printReport(&out, lossyReport(), 0)
	row := func(prefix string) []string {
		for line := range strings.Lines(out.String()) {
			if f := strings.Fields(line); len(f) > 4 && strings.Join(f[:4], " ") == prefix {
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
		{"64 B seed 4", []string{"5.70%", "83870", "5.4", "0.00%", "1.55", "!", "mcl"}},
		{"1 KB seed 1", []string{"0.00%", "84000", "0.0", "0.00%", "1.07"}},
		{"16 KB seed 1", []string{"0.00%", "73000", "0.0", "<0.01%", "0.95", "!", "base"}},
		{"1 MB seed 4", []string{"0.00%", "2200", "0.0", "0.00%", "1.26", "!", "mcl", "2/5", "up", "to", "21.60%"}},
		{"64 B mcl2/1452 1", []string{"0.00%", "2680000", "171.5", "0.00%", "0.97"}},
	} {
		if got := row(c.row)[6:]; strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("row %s ends %q, want %q", c.row, got, c.want)
		}
	}
	if got := row("64 B seed 30.0µs"); strings.Contains(strings.Join(got, " "), "!") || got[len(got)-2] != "-" || got[len(got)-1] != "-" {
		t.Errorf("latency row without loss is marked, or has a ratio to itself: %q", got)
	}
	// The fields from the p50 ratio on: to the baseline, to the seed
	// framing, and which side lost.
	if got := strings.Join(row("64 B mcl2 36.0µs")[11:], " "); got != "1.30 1.40 1.20 1.25" {
		t.Errorf("mcl/2 latency row ends %q, want its ratios to the baseline and the seed framing", got)
	}
	if got := strings.Join(row("64 B mcl2 express")[12:], " "); got != "1.00 1.10 ! 0.97 0.94 seed" {
		t.Errorf("mcl/2 Express latency row whose seed side lost ends %q, want it marked, naming the seed", got)
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
		printReport(&out, &bench.Report{Mode: mode}, 0)
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
	r := mcl_(context.Background(), "", "bench", "--cross-process", "--framing", "seed", "--duration", "50ms", "--rounds", "30", "--json")
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

// TestBenchMCL2 runs mcl/2's rows briefly through the command, in each
// mode, as a table, and checks that each row is there, named by how mcl
// published, with its ratios, and marked exactly when a side lost
// messages; it asserts no speed.
func TestBenchMCL2(t *testing.T) {
	net := sandbox.Require(t)
	childBench(t)
	// The datagrams of an mcl/2 Publisher by default: what the sandbox's
	// link carries, less the IPv6 and UDP headers (65487 bytes).
	path := min(max(net.MTU-48, mcl.MinDatagramSize), mcl.MaxDatagramSize)
	for _, mode := range []string{bench.ModeInProcess, bench.ModeCrossProcess} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"bench", "--framing", "mcl2", "--duration", "50ms", "--rounds", "30"}
			if mode == bench.ModeCrossProcess {
				args = append(args, "--cross-process")
			}
			r := mcl_(context.Background(), "", args...)
			if r.code != 0 {
				t.Fatalf("exit status %d: %s", r.code, r.stderr)
			}
			if !strings.HasPrefix(r.stdout, "mode: "+mode+": ") {
				t.Errorf("not in mode %s:\n%s", mode, r.stdout)
			}
			// Throughput rows by size, framing and subscribers; latency
			// rows by framing.
			throughput, latency := map[string][]string{}, map[string][]string{}
			for line := range strings.Lines(r.stdout) {
				switch f := strings.Fields(line); {
				case len(f) < 11 || f[1] != "B" && f[1] != "MB":
				case strings.HasSuffix(f[3], "µs"):
					latency[f[2]] = f
				case f[3] == "express":
					latency["mcl2 express"] = f[1:] // aligned with the others
				default:
					throughput[strings.Join(f[:4], " ")] = f
				}
			}
			for _, row := range []string{
				fmt.Sprintf("64 B mcl2/%d 1", path), "64 B mcl2/1452 1",
				fmt.Sprintf("1 MB mcl2/%d 1", path), "1 MB mcl2/1452 1",
			} {
				f, ok := throughput[row]
				if !ok {
					t.Errorf("no row %q in\n%s", row, r.stdout)
					continue
				}
				// Fields from 4: mcl msg/s, MB/s, loss, base msg/s, MB/s,
				// loss, ratio, and "!" and the side when one lost.
				if ratio, err := strconv.ParseFloat(f[10], 64); err != nil || ratio <= 0 {
					t.Errorf("row %q without a ratio: %q", row, f)
				}
				lost := f[6] != "0.00%" || f[9] != "0.00%"
				if marked := len(f) > 11 && f[11] == "!"; marked != lost {
					t.Errorf("row %q: marked %v, but a side lost messages: %v: %q", row, marked, lost, f)
				}
			}
			for _, framing := range []string{"mcl2", "mcl2 express"} {
				f, ok := latency[framing]
				if !ok {
					t.Errorf("no latency row %q in\n%s", framing, r.stdout)
					continue
				}
				// Fields from 3: mcl p50 .. max, base p50 .. max, ratio p50,
				// p99 ("!" after it when a side lost), vs seed p50, p99.
				if f[13] == "!" {
					f = append(f[:13:13], f[14:]...)
				}
				for _, at := range []int{11, 12, 13, 14} {
					if v, err := strconv.ParseFloat(f[at], 64); err != nil || v <= 0 {
						t.Errorf("latency row %q: field %d is %q, not a ratio: %q", framing, at, f[at], f)
					}
				}
			}
		})
	}
	r := mcl_(context.Background(), "", "bench", "--framing", "mcl3")
	if r.code != 2 || !strings.Contains(r.stderr, "--framing") {
		t.Errorf("bench --framing mcl3: status %d, %q; want a usage error", r.code, r.stderr)
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
