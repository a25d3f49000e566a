package bench

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
	"github.com/mcl-go/mcl/wire/mcl2"
)

// TestRunMCL2 runs the mcl/2 rows briefly, in each mode, to check that
// each is measured, says how mcl published, and counts loss as the other
// rows do; it asserts no speed.
func TestRunMCL2(t *testing.T) {
	net := sandbox.Require(t)
	for _, c := range []struct {
		mode  string
		cross bool
	}{{ModeInProcess, false}, {ModeCrossProcess, true}} {
		t.Run(c.mode, func(t *testing.T) {
			rep, err := Run(context.Background(), Config{
				Duration: 50 * time.Millisecond,
				Rounds:   50,
				Framing:  FramingMCL2,
				MCL2: MCL2Rows{
					Sizes:         []int{64, 1 << 20},
					DatagramSizes: []int{0, 1452},
					Fanouts:       []int{1},
					LatencySizes:  []int{64},
				},
				CrossProcess: c.cross,
				Spawn:        spawnTest("serve"),
			})
			if err != nil {
				t.Fatal(err)
			}
			checkMCL2Rows(t, rep, 1, pathDatagram(net))
		})
	}
}

// pathDatagram is the datagram size of an mcl/2 Publisher on the
// sandbox's link: its MTU less the IPv6 and UDP headers (65487 bytes on a
// veth of MTU 65535).
func pathDatagram(net *sandbox.Network) int {
	return min(max(net.MTU-48, mcl.MinDatagramSize), mcl.MaxDatagramSize)
}

// checkMCL2Rows checks the rows of a run of mcl/2's default rows:
// throughput 64 B and 1 MB in datagrams of the path's size (path) and of
// 1452, then latency batched and Express, each measured runs times.
func checkMCL2Rows(t *testing.T, rep *Report, runs, path int) {
	t.Helper()
	want := []struct {
		kind    string
		size    int
		variant Variant
	}{
		{"throughput", 64, Variant{Framing: FramingMCL2, DatagramSize: path}},
		{"throughput", 64, Variant{Framing: FramingMCL2, DatagramSize: 1452}},
		{"throughput", 1 << 20, Variant{Framing: FramingMCL2, DatagramSize: path}},
		{"throughput", 1 << 20, Variant{Framing: FramingMCL2, DatagramSize: 1452}},
		{"latency", 64, Variant{Framing: FramingMCL2}},
		{"latency", 64, Variant{Framing: FramingMCL2, Express: true}},
	}
	if len(rep.Rows) != len(want) {
		b, _ := json.MarshalIndent(rep, "", " ")
		t.Fatalf("%d rows, want %d: %s", len(rep.Rows), len(want), b)
	}
	for i, w := range want {
		r := rep.Rows[i]
		if r.Kind != w.kind || r.Size != w.size || r.Variant != w.variant || r.Runs != runs {
			t.Errorf("row %d: %s %d %+v, %d runs; want %s %d %+v, %d", i, r.Kind, r.Size, r.Variant, r.Runs, w.kind, w.size, w.variant, runs)
		}
		sides := map[string]Result{"mcl": r.MCL, "baseline": r.Baseline}
		if r.Kind == "latency" {
			if r.Seed == nil {
				t.Errorf("latency row %d (%s) without the seed's round trips", i, r.Label())
				continue
			}
			sides["seed"] = *r.Seed
			if r.VsSeed <= 0 || r.VsSeedP99 <= 0 {
				t.Errorf("latency row %d (%s): no ratio to the seed: %+v", i, r.Label(), r)
			}
		} else if r.Seed != nil || r.VsSeed != 0 {
			t.Errorf("throughput row %d has a seed side: %+v", i, r)
		}
		lossy := false
		for name, res := range sides {
			if res.Messages == 0 || res.Sent == 0 || r.Ratio <= 0 {
				t.Errorf("%s %s row %d (%s): nothing measured: %+v", r.Kind, name, i, r.Label(), res)
			}
			if res.Lost > res.Sent*uint64(r.Subscribers) || res.Loss < 0 || res.Loss > 1 {
				t.Errorf("%s %s row %d (%s): loss out of bounds: %+v", r.Kind, name, i, r.Label(), res)
			}
			if r.Kind == "throughput" && (res.MsgsPerSec <= 0 || res.MBPerSec <= 0) {
				t.Errorf("throughput %s row %d (%s): no rate: %+v", name, i, r.Label(), res)
			}
			if r.Kind == "latency" && !(0 < res.P50 && res.P50 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max) {
				t.Errorf("latency %s row %d (%s): percentiles out of order: %+v", name, i, r.Label(), res)
			}
			// A row is marked lossy exactly when a side lost something.
			lossy = lossy || res.LossyRuns > 0
			if (res.Lost > 0) != (res.LossyRuns > 0) && runs == 1 {
				t.Errorf("%s %s row %d (%s): lost %d in %d lossy runs", r.Kind, name, i, r.Label(), res.Lost, res.LossyRuns)
			}
		}
		if r.Lossy != lossy {
			t.Errorf("%s row %d (%s): lossy %v, but its sides' lossy runs say %v", r.Kind, i, r.Label(), r.Lossy, lossy)
		}
	}
}

// TestMCL2Layout checks that the baseline's datagrams are those mcl/2
// sends: as many messages to a full datagram, as many pieces of a large
// message, of the same lengths.
func TestMCL2Layout(t *testing.T) {
	l := mcl2Layout(64, 1452)
	if l.Record != 76 || l.Header != mcl2.HeaderLen || l.PerDatagram != (1452-24)/76 || l.Pieces != 1 {
		t.Errorf("64 B in 1452-byte datagrams: %+v", l)
	}
	for _, dg := range []int{1452, 65487} {
		l := mcl2Layout(1<<20, dg)
		heads, bodies := l.frames(payload(1 << 20))
		room := dg - mcl2.HeaderLen - mcl2.FragmentOverhead - len(benchTopic)
		n := mcl2.Cut(1<<20, room)
		if len(heads) != n || len(bodies) != n || l.Pieces != n || l.Record != 0 {
			t.Fatalf("1 MB in %d-byte datagrams: %d datagrams, layout %+v; mcl/2 cuts %d", dg, len(heads), l, n)
		}
		for i := range heads {
			_, piece, _ := mcl2.Piece(1<<20, n, i)
			if d := len(heads[i]) + len(bodies[i]); d != l.Extra+piece || d > dg {
				t.Errorf("1 MB in %d-byte datagrams: datagram %d is %d bytes, want %d", dg, i, d, l.Extra+piece)
			}
		}
	}
	seed := seedLayout(1 << 20)
	if ds, bodies := seed.frames(payload(1 << 20)); seed.Pieces != 18 || len(ds) != 18 || bodies != nil || len(ds[0]) != 60000 || len(ds[17]) != 1<<20-17*60000 {
		t.Errorf("seed layout of 1 MB: %+v", seed)
	}
}

// TestBatchSender checks that the batched baseline's subscriber counts
// every message sent, in full datagrams and in the part-filled one a
// drain sends.
func TestBatchSender(t *testing.T) {
	sandbox.Require(t)
	for i, dg := range []int{1452, 65487} {
		c, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(28950+i))
		if err != nil {
			t.Fatal(err)
		}
		lay := mcl2Layout(64, dg)
		cs := newCounters(1)
		closeSubs, err := subscribeBaseline(c, lay, cs)
		if err != nil {
			t.Fatal(err)
		}
		s, err := publisherBaseline(c, lay)
		if err != nil {
			t.Fatal(err)
		}
		const n = 5000 // not a multiple of a datagram's messages
		for range n {
			if err := s.publish(); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.drain(); err != nil {
			t.Fatal(err)
		}
		settle(cs, n)
		if got := cs[0].msgs.Load(); got != n || cs[0].bytes.Load() != n*64 {
			t.Errorf("%d-byte datagrams: %d messages (%d bytes) received of %d", dg, got, cs[0].bytes.Load(), n)
		}
		s.close()
		closeSubs()
	}
}
