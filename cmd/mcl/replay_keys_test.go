package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcl-go/mcl/recording"
)

// TestReplayKeys reads the keys of a raw terminal: space, n, . and the
// right arrow (in both cursor modes), q and the control keys whose
// signals raw mode turns off; other keys and escape sequences are
// ignored, a lone ESC included.
func TestReplayKeys(t *testing.T) {
	in := " n.\x1b[C\x1bOC" + // pause, then four steps
		"x\x1b[D\x1b[1;5A\x1b" + // a key and sequences replay does not use, a lone ESC...
		"q\x03\x04\x1c" // ...then the ways to quit
	keys := make(chan replayKey)
	go readReplayKeys(strings.NewReader(in), keys, nil)
	var got []replayKey
	for k := range keys {
		got = append(got, k)
	}
	want := []replayKey{keyPause, keyStep, keyStep, keyStep, keyStep, keyQuit, keyQuit, keyQuit, keyQuit}
	if !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
}

// TestReplayKeyCommand: space pauses a running replay and resumes a paused one;
// a step pauses and sends one message, whichever it was.
func TestReplayKeyCommand(t *testing.T) {
	for _, tc := range []struct {
		key        replayKey
		paused     bool
		want       recording.ReplayControl
		wantPaused bool
	}{
		{keyPause, false, recording.ReplayPause, true},
		{keyPause, true, recording.ReplayResume, false},
		{keyStep, true, recording.ReplayStep, true},
		{keyStep, false, recording.ReplayStep, true},
	} {
		if c, p := keyCommand(tc.key, tc.paused); c != tc.want || p != tc.wantPaused {
			t.Errorf("key %v, paused %v: %v, paused %v; want %v, %v", tc.key, tc.paused, c, p, tc.want, tc.wantPaused)
		}
	}
}

func TestReplayStatus(t *testing.T) {
	for _, tc := range []struct {
		width        int
		paused       bool
		pos, span    time.Duration
		count, total uint64
		counted      bool
		rate         float64
		want         string
	}{
		{80, false, 1500 * time.Millisecond, 90 * time.Second, 15, 900, true, 10, "replay 0:01.5/1:30.0  15/900 msgs  10 msg/s  space pause  n step  q quit"},
		{80, true, 2*time.Hour + 3*time.Minute + 4*time.Second, 3 * time.Hour, 7, 0, false, 0, "PAUSED 2:03:04/3:00:00  7/? msgs  0 msg/s  space resume  n next  q quit"},
		{80, false, 0, time.Second, 2001, 1000, true, 5, "replay 0:00.0/0:01.0  1/1000 msgs  5 msg/s  space pause  n step  q quit"}, // --loop: the third pass
		{39, false, 0, time.Minute, 1, 2, true, 0, "replay 0:00.0/1:00.0  1/2 msgs  0 msg/s"},                                       // no room for the keys
		{20, false, 0, time.Minute, 1, 2, true, 0, "replay 0:00.0/1:00.0"},
	} {
		got := replayStatus(palette{}, tc.width, tc.paused, tc.pos, tc.span, tc.count, tc.total, tc.counted, tc.rate)
		if got != tc.want || len(got) > tc.width {
			t.Errorf("status %q, want %q (at most %d bytes)", got, tc.want, tc.width)
		}
	}
	if got := replayStatus(palette{on: true}, 80, true, 0, time.Second, 1, 2, true, 0); !strings.HasPrefix(got, sgrBold+sgrYellow+"PAUSED"+sgrReset+" 0:00.0") {
		t.Errorf("paused, in colour: %q", got)
	}
}

// TestReplayConsoleWrite: replay's notes go above the status line, which
// is cleared first and drawn again after, with carriage returns for raw
// mode.
func TestReplayConsoleWrite(t *testing.T) {
	var b bytes.Buffer
	c := &replayConsole{w: &b, width: 80, span: time.Minute}
	c.Write([]byte("first\n"))
	c.mu.Lock()
	c.draw(0)
	c.mu.Unlock()
	c.Write([]byte("second\nthird\n"))
	want := "first\r\n" + "\r\x1b[Kreplay 0:00.0/1:00.0  0/? msgs  0 msg/s  space pause  n step  q quit" + "\r\x1b[Ksecond\r\nthird\r\n"
	if b.String() != want || !c.dirty {
		t.Errorf("wrote %q, dirty %v; want %q and the status to redraw", b.String(), c.dirty, want)
	}
}
