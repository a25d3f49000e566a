package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mcl-go/mcl"
)

// palette colours text for one output stream, or leaves it plain. A
// command makes one per stream it colours, when it starts: the decision
// is taken once.
type palette struct{ on bool }

// newPalette returns the palette for w: colours when w is a terminal and
// the environment allows them (see useColor).
func newPalette(w io.Writer) palette { return palette{useColor(writesTerminal(w), os.Getenv)} }

// useColor decides whether output to a stream is coloured: only on a
// terminal, never when NO_COLOR is set to anything but the empty string
// (https://no-color.org), and not on a terminal that says it is dumb.
func useColor(terminal bool, getenv func(string) string) bool {
	return terminal && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// Select Graphic Rendition sequences.
const (
	sgrBold   = "\x1b[1m"
	sgrRed    = "\x1b[31m"
	sgrYellow = "\x1b[33m"
	sgrReset  = "\x1b[0m"
)

func (p palette) paint(sgr, s string) string {
	if !p.on || s == "" {
		return s
	}
	return sgr + s + sgrReset
}

func (p palette) bold(s string) string { return p.paint(sgrBold, s) }

func (p palette) red(s string) string { return p.paint(sgrRed, s) }

// warn marks something to read before going on: a hazard, a pause.
func (p palette) warn(s string) string { return p.paint(sgrBold+sgrYellow, s) }

// loss is s in red when n, a count of something lost or refused, is not
// zero, and plain when it is.
func (p palette) loss(s string, n uint64) string {
	if n == 0 {
		return s
	}
	return p.red(s)
}

// lossCounters are the counters of mcl.SubscriberStats and
// mcl.PublisherStats that count something lost, refused or failed:
// printCountersIn shows them red when they are not zero.
var lossCounters = map[string]bool{
	"malformed": true, "rejected": true, "incomplete": true, "stalled": true,
	"overrun": true, "evicted": true, "expired": true, "invalid": true,
	"dropped": true, "panics": true, "read_errors": true, "kernel_drops": true,
	"unsupported": true, "lost": true, "late": true, "errors": true,
}

// printCountersIn is printCounters with the counters of losses that are
// not zero in red.
func printCountersIn(w io.Writer, pal palette, cs []mcl.Counter) {
	for _, c := range cs {
		line := fmt.Sprintf("%s %d", c.Name, c.Value)
		if lossCounters[c.Name] {
			line = pal.loss(line, c.Value)
		}
		fmt.Fprintln(w, line)
	}
}
