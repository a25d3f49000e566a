package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/mcl-go/mcl/sandbox"
)

// TestPubSubMCL2 publishes with --framing mcl2, batched and express, and
// in the seed framing, to one `mcl sub`: it prints every message, and a
// line per mcl/2 sender at exit with nothing lost.
func TestPubSubMCL2(t *testing.T) {
	sandbox.Require(t)
	port := strconv.Itoa(int(nextPort.Add(1)))
	done := startSub(t, "--port", port, "--count", "301", "--timeout", "20s")
	big := `"` + strings.Repeat("y", 100_000) + `"`
	for _, args := range [][]string{
		{"--framing", "mcl2", "--payload", "1", "--count", "100"},
		{"--framing", "mcl2", "--express", "--payload", "2", "--count", "100"},
		{"--framing", "mcl2", "--datagram-size", "1452", "--payload", big},
		{"--payload", "3", "--count", "100"},
	} {
		if r := mcl_(context.Background(), "", append([]string{"pub", "--port", port, "--topic", "t"}, args...)...); r.code != 0 {
			t.Fatalf("pub %v: %+v", args, r)
		}
	}
	r := wait(t, done)
	if r.code != 0 {
		t.Fatalf("sub: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	count := map[string]int{}
	for _, l := range lines {
		count[l]++
	}
	for v, n := range map[string]int{"1": 100, "2": 100, big: 1, "3": 100} {
		if got := count[`{"topic":"t","payload":`+v+`}`]; got != n {
			t.Errorf("payload %.10s: %d lines, want %d", v, got, n)
		}
	}
	senders := 0
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "sender ") {
			senders++
			if !strings.Contains(l, " lost 0 ") || !strings.Contains(l, " repeated 0 ") {
				t.Errorf("sender line %q: want nothing lost or repeated", l)
			}
		}
	}
	if c := counters(t, r.stderr); senders != 3 || c["senders"] != 3 || c["lost"] != 0 {
		t.Fatalf("%d sender lines, counters %v; stderr:\n%s", senders, c, r.stderr)
	}
}

// TestSubQuiet: sub --quiet prints the messages and nothing on stderr.
func TestSubQuiet(t *testing.T) {
	sandbox.Require(t)
	port := strconv.Itoa(int(nextPort.Add(1)))
	done := startSub(t, "--port", port, "--count", "3", "--timeout", "20s", "--quiet")
	if r := mcl_(context.Background(), "", "pub", "--port", port, "--topic", "t", "--payload", "1", "--count", "3", "--framing", "mcl2"); r.code != 0 {
		t.Fatalf("pub: %+v", r)
	}
	r := wait(t, done)
	if r.code != 0 || r.stderr != "" || strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("sub --quiet: %+v", r)
	}
}

// TestSubFields: --fields prints only the fields named, null where a
// payload lacks one; a bad path is bad usage.
func TestSubFields(t *testing.T) {
	sandbox.Require(t)
	port := strconv.Itoa(int(nextPort.Add(1)))
	done := startSub(t, "--port", port, "--count", "2", "--timeout", "20s", "--quiet", "--fields", "pose.x,ranges[1],missing,[1]")
	for _, p := range []string{`{"pose": {"x": 1.5, "y": 2}, "ranges": [7, 8, 9]}`, `[1, 2]`} {
		if r := mcl_(context.Background(), "", "pub", "--port", port, "--topic", "t", "--payload", p); r.code != 0 {
			t.Fatalf("pub: %+v", r)
		}
	}
	r := wait(t, done)
	want := `{"topic":"t","fields":{"pose.x":1.5,"ranges[1]":8,"missing":null,"[1]":null}}` + "\n" +
		`{"topic":"t","fields":{"pose.x":null,"ranges[1]":null,"missing":null,"[1]":2}}` + "\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("sub --fields: %+v\nwant %s", r, want)
	}
	subscribed = func() {}
	for _, bad := range []string{"a..b", "r[x]", "r[1]x", "a.[1]", "a.["} {
		if r := mcl_(context.Background(), "", "sub", "--fields", bad, "--timeout", "1ms"); r.code != 2 || !strings.Contains(r.stderr, "--fields") {
			t.Errorf("--fields %q: %+v", bad, r)
		}
	}
}
