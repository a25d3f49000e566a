package main

import (
	"bytes"
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/census"
	"github.com/mcl-go/mcl/sandbox"
)

// TestColorDecision: colour only on a terminal, never with NO_COLOR set
// to anything but the empty string, never on a dumb terminal.
func TestColorDecision(t *testing.T) {
	for _, tc := range []struct {
		terminal bool
		env      map[string]string
		want     bool
	}{
		{true, map[string]string{"TERM": "xterm-256color"}, true},
		{true, nil, true},
		{true, map[string]string{"NO_COLOR": ""}, true},
		{true, map[string]string{"NO_COLOR": "1"}, false},
		{true, map[string]string{"NO_COLOR": "0"}, false},
		{true, map[string]string{"NO_COLOR": "false"}, false},
		{true, map[string]string{"TERM": "dumb"}, false},
		{false, nil, false},
		{false, map[string]string{"TERM": "xterm"}, false},
	} {
		if got := useColor(tc.terminal, func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("terminal %v, environment %v: colour %v, want %v", tc.terminal, tc.env, got, tc.want)
		}
	}
}

var sgr = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestTopicsTableColor renders a table with a lossy mcl/2 sender in
// colour: the header is bold, the lossy cell and the footer's losses red,
// and without the colours it is the plain table, columns aligned alike.
func TestTopicsTableColor(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := census.New(0)
	good, bad := netip.MustParseAddrPort("[fd6d:636c::1]:40000"), netip.MustParseAddrPort("[fd6d:636c::2]:40000")
	for j := range 3 {
		c.Add("gps", 10, good, at.Add(time.Duration(j)*100*time.Millisecond))
		c.Add("camera/front/a/long/topic", 10, bad, at.Add(time.Duration(j)*100*time.Millisecond))
	}
	now := at.Add(time.Second)
	ts := c.Snapshot(now)
	sortTopics(ts, "name")
	senders := map[netip.AddrPort]census.Loss{good: {}, bad: {Lost: 12, Reordered: 1}}
	foot := topicsFooter{Lost: 12, Reordered: 1}
	var plain, coloured bytes.Buffer
	renderTopicsTable(&plain, palette{}, "[ff15::1]:26000", now, ts, senders, foot, c.Limit())
	renderTopicsTable(&coloured, palette{on: true}, "[ff15::1]:26000", now, ts, senders, foot, c.Limit())
	if strings.Contains(plain.String(), "\x1b[") {
		t.Fatalf("escape sequences in the plain table:\n%q", plain.String())
	}
	if got := sgr.ReplaceAllString(coloured.String(), ""); got != plain.String() {
		t.Errorf("the coloured table is not the plain one in colour:\n%s\nplain:\n%s", got, plain.String())
	}
	for _, want := range []string{
		sgrBold + "TOPIC ",
		sgrRed + "12/1/0" + sgrReset,
		"0/0/0 ", // no loss: plain
		"mcl/2 " + sgrRed + "lost 12" + sgrReset + " reordered 1",
		"undecodable datagrams 0  refused 0",
	} {
		if !strings.Contains(coloured.String(), want) {
			t.Errorf("the coloured table lacks %q:\n%q", want, coloured.String())
		}
	}
}

// TestCountersColor: losses that are not zero are red, other counters
// plain, and without colour the lines are printCounters'.
func TestCountersColor(t *testing.T) {
	cs := mcl.SubscriberStats{Delivered: 5, Dropped: 2, KernelDrops: 0}.Counters()
	var plain, want, coloured bytes.Buffer
	printCountersIn(&plain, palette{}, cs)
	printCounters(&want, cs)
	if plain.String() != want.String() {
		t.Errorf("without colour:\n%s\nwant\n%s", plain.String(), want.String())
	}
	printCountersIn(&coloured, palette{on: true}, cs)
	out := coloured.String()
	if !strings.Contains(out, "\n"+sgrRed+"dropped 2"+sgrReset+"\n") || !strings.Contains(out, "\ndelivered 5\n") || !strings.Contains(out, "\nkernel_drops 0\n") {
		t.Errorf("coloured counters:\n%q", out)
	}
}

// TestNoColorOffTerminal: sub and topics write no escape sequences to
// what is not a terminal, whatever the environment says.
func TestNoColorOffTerminal(t *testing.T) {
	sandbox.Require(t)
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	port := strconv.Itoa(int(nextPort.Add(1)))
	for _, args := range [][]string{
		{"sub", "--port", port, "--timeout", "10ms"},
		{"topics", "--port", port, "--once", "--window", "10ms"},
		{"pub", "--port", port, "--topic", "t", "--payload", "1"},
	} {
		r := mcl_(context.Background(), "", args...)
		if r.code != 0 || strings.Contains(r.stdout+r.stderr, "\x1b[") {
			t.Errorf("mcl %s: %+v", strings.Join(args, " "), r)
		}
	}
}
