package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcl-go/mcl/sandbox"
)

// TestPubSchedule: the n-th message is due no earlier than n periods after
// the first, and after a stall the missed slots are dropped, not made up
// in a burst. Only lower bounds are asserted: a busy machine makes every
// wait longer, never shorter.
func TestPubSchedule(t *testing.T) {
	const period = 20 * time.Millisecond
	s := newSchedule(t.Context(), period)
	defer s.stop()
	before := time.Now()
	for n := range 5 {
		if !s.wait() {
			t.Fatal("wait: false")
		}
		if d := time.Since(before); d < time.Duration(n)*period {
			t.Errorf("message %d due %v after the start, under %v", n, d, time.Duration(n)*period)
		}
	}
	time.Sleep(5 * period) // a sender that stalls for five slots
	stalled := time.Now()
	for range 3 {
		s.wait()
	}
	// One slot is due at once, the next at or after the stall's end, the
	// one after a period later: not three at once to catch up.
	if d := time.Since(stalled); d < period {
		t.Errorf("three messages %v after a stall; the schedule made up for it in a burst", d)
	}
}

// TestPubScheduleStops: a schedule whose context is done stops at once.
func TestPubScheduleStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s := newSchedule(ctx, time.Hour)
	defer s.stop()
	if !s.wait() {
		t.Fatal("the first message waits for nothing")
	}
	cancel()
	if s.wait() {
		t.Fatal("wait after cancel: true")
	}
	if newSchedule(ctx, 0).wait() {
		t.Fatal("wait without a period after cancel: true")
	}
}

func TestPubParseRates(t *testing.T) {
	for s, want := range map[string]float64{"10": 10, "0.5": 0.5, "999999": 999999, "1e3": 1000} {
		if got, err := parseHz(s); err != nil || got != want {
			t.Errorf("parseHz(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for s, want := range map[string]int{"20M": 20e6, "20MB": 20e6, "20MB/s": 20e6, "1.5G": 1.5e9, "500k": 500e3, "3000000": 3e6} {
		if got, err := parsePace(s); err != nil || got != want {
			t.Errorf("parsePace(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "-1", "NaN", "Inf", "fast", "MB/s", "20X"} {
		if _, err := parsePace(s); err == nil {
			t.Errorf("parsePace(%q): no error", s)
		}
	}
}

// TestPubRateUsage: --rate takes messages per second; a byte rate, what
// --rate took before --pace, is refused with the flag to use instead.
func TestPubRateUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "20M"}, "--rate 20M: --rate is messages per second (below 1000000), as in ros2 topic pub -r; for 20M bytes per second use --pace 20M"},
		{[]string{"--rate", "1.5G"}, "use --pace 1.5G"},
		{[]string{"--rate", "20MB/s"}, "use --pace 20MB/s"},
		{[]string{"--rate", "5000000"}, "use --pace 5000000"},
		{[]string{"-r", "500k"}, "use --pace 500k"},
		{[]string{"--rate", "0"}, "--rate 0: not a rate in messages per second, such as 10 or 0.5"},
		{[]string{"--rate", "-5"}, "not a rate in messages per second"},
		{[]string{"--rate", "NaN"}, "not a rate in messages per second"},
		{[]string{"--rate", "fast"}, "not a rate in messages per second"},
		{[]string{"--rate", "10", "--interval", "1s"}, "--rate and --interval"},
		{[]string{"--pace", "20X"}, "--pace 20X: not a rate in bytes per second"},
	} {
		args := append([]string{"pub", "--topic", "t", "--payload", "1"}, tc.args...)
		r := mcl_(context.Background(), "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("mcl %s: exit %d, %q; want exit 2 and %q", strings.Join(args, " "), r.code, r.stderr, tc.want)
		}
	}
}

// TestPubRate publishes --count messages at --rate: all arrive, and the
// last went out no sooner than the rate allows.
func TestPubRate(t *testing.T) {
	sandbox.Require(t)
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"payload", "", []string{"--payload", `"x"`, "--count", "5", "--rate", "25"}},
		{"stdin", "1\n2\n3\n4\n5\n", []string{"-r", "25"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := strconv.Itoa(int(nextPort.Add(1)))
			done := startSub(t, "--port", port, "--count", "5", "--timeout", "20s")
			start := time.Now()
			r := mcl_(context.Background(), tc.stdin, append([]string{"pub", "--port", port, "--topic", "t"}, tc.args...)...)
			took := time.Since(start)
			if r.code != 0 || counters(t, r.stderr)["messages"] != 5 {
				t.Fatalf("pub: %+v", r)
			}
			if min := 4 * time.Second / 25; took < min {
				t.Errorf("5 messages at 25 Hz in %v, under %v", took, min)
			}
			if s := wait(t, done); s.code != 0 || strings.Count(s.stdout, "\n") != 5 {
				t.Errorf("sub: %+v", s)
			}
		})
	}
}

// TestPubRateForever: --rate with --payload and no --count publishes
// until Ctrl-C, which ends pub as the end of its input would: exit 0,
// counters printed.
func TestPubRateForever(t *testing.T) {
	sandbox.Require(t)
	port := strconv.Itoa(int(nextPort.Add(1)))
	done := startSub(t, "--port", port, "--count", "3", "--timeout", "20s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := make(chan result, 1)
	go func() { pub <- mcl_(ctx, "", "pub", "--port", port, "--topic", "t", "--payload", "1", "--rate", "50") }()
	if s := wait(t, done); s.code != 0 || strings.Count(s.stdout, "\n") != 3 {
		t.Fatalf("sub: %+v", s)
	}
	cancel() // Ctrl-C
	r := wait(t, pub)
	if r.code != 0 || counters(t, r.stderr)["messages"] < 3 {
		t.Errorf("pub --rate until Ctrl-C: %+v", r)
	}
}
