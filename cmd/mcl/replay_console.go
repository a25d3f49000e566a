package main

// replay on a terminal: keys that pause and step, and a status line.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/mcl-go/mcl/recording"
)

// rawTerminal puts in in raw mode, to read keys one at a time as they are
// pressed, when in and w (where the status line goes) are both terminals
// and the process runs in the foreground of in: a background job that set
// or read its terminal would be stopped (SIGTTOU, SIGTTIN). It returns the
// function that restores in's mode, safe to call more than once, or false
// and changes nothing.
func rawTerminal(in io.Reader, w io.Writer) (restore func(), ok bool) {
	f, isFile := in.(*os.File)
	if !isFile || !isTerminal(f) || !writesTerminal(w) {
		return func() {}, false
	}
	fd := int(f.Fd())
	if !foreground(fd) {
		return func() {}, false
	}
	state, err := term.MakeRaw(fd)
	if err != nil {
		return func() {}, false
	}
	var once sync.Once
	return func() { once.Do(func() { term.Restore(fd, state) }) }, true
}

// A replayKey is what a key pressed during replay asks for.
type replayKey int

const (
	keyPause replayKey = iota + 1 // pause, or resume
	keyStep                       // send the next message, stay paused
	keyQuit                       // stop
)

// readReplayKeys reads keys from r, a terminal in raw mode, and sends what
// they ask on keys until r ends or done is closed; then it closes keys.
func readReplayKeys(r io.Reader, keys chan<- replayKey, done <-chan struct{}) {
	defer close(keys)
	br := bufio.NewReader(r)
	for {
		b, err := br.ReadByte()
		if err != nil {
			return
		}
		if b == 0x1b { // ESC: the right arrow is ESC [ C, or ESC O C
			if b, err = br.ReadByte(); err != nil {
				return
			}
			if b == '[' || b == 'O' {
				// A control sequence: parameters, then a final byte
				// from @ to ~.
				for b, err = br.ReadByte(); err == nil && (b < 0x40 || b > 0x7e); b, err = br.ReadByte() {
				}
				if err != nil {
					return
				}
				if b != 'C' {
					continue
				}
				b = 'n'
			}
		}
		var k replayKey
		switch b {
		case ' ':
			k = keyPause
		case 'n', 'N', '.':
			k = keyStep
		case 'q', 'Q', 0x03, 0x04, 0x1c: // Ctrl-C, Ctrl-D and Ctrl-\ too: raw mode turns their signals off
			k = keyQuit
		default:
			continue
		}
		select {
		case keys <- k:
		case <-done:
			return
		}
	}
}

// keyCommand returns the command a pause or step key asks of a replay that
// is paused or not, and whether the replay is paused after it.
func keyCommand(k replayKey, paused bool) (recording.ReplayControl, bool) {
	switch {
	case k == keyStep:
		return recording.ReplayStep, true
	case paused:
		return recording.ReplayResume, false
	}
	return recording.ReplayPause, true
}

// replayConsole is replay on a terminal: it turns keys into commands to
// the replay and keeps a status line at the bottom of the terminal, with
// replay's notes written above it.
type replayConsole struct {
	w      io.Writer // the terminal, in raw mode
	pal    palette
	width  int           // of the terminal, to keep the status on one line
	from   time.Time     // log time of the start of what is replayed
	span   time.Duration // and its length
	ctl    chan<- recording.ReplayControl
	cancel context.CancelFunc
	done   chan struct{} // closed by stop
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex
	count   uint64        // messages sent
	pos     time.Duration // log time of the last one, from from
	total   uint64        // messages to send, once counted
	counted bool
	paused  bool
	shown   bool // the status line is on the terminal
	dirty   bool // and out of date
}

// startReplayConsole starts reading keys from in and drawing the status
// line on w, in raw mode, and counting in the background the messages
// that filter selects in files. Quitting calls cancel; stop ends it all.
func startReplayConsole(ctx context.Context, cancel context.CancelFunc, in io.Reader, w io.Writer, ctl chan<- recording.ReplayControl, from time.Time, span time.Duration, files []string, filter recording.Filter) *replayConsole {
	c := &replayConsole{w: w, pal: newPalette(w), width: 80, from: from, span: span, ctl: ctl, cancel: cancel, done: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if width, _, err := term.GetSize(int(f.Fd())); err == nil && width > 0 {
			c.width = width
		}
	}
	keys := make(chan replayKey)
	// The reader is not waited for: a read of a terminal cannot be
	// interrupted, and it ends with the process.
	go readReplayKeys(in, keys, c.done)
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.loop(ctx, keys)
	}()
	go func() {
		defer c.wg.Done()
		c.countMessages(files, filter)
	}()
	return c
}

// countMessages counts the messages replay will send (in one pass), for
// the status line's total, without holding up the replay.
func (c *replayConsole) countMessages(files []string, filter recording.Filter) {
	var n uint64
	for _, name := range files {
		for _, err := range recording.Read(name, filter) {
			if err != nil {
				break // the replay stops there too, and says why
			}
			n++
			if n%1024 == 0 {
				select {
				case <-c.done:
					return
				default:
				}
			}
		}
	}
	c.mu.Lock()
	c.total, c.counted, c.dirty = n, true, true
	c.mu.Unlock()
}

// redraw is how often, at most, the status line is drawn.
const redraw = 100 * time.Millisecond

// loop obeys keys and redraws the status line until stop.
func (c *replayConsole) loop(ctx context.Context, keys <-chan replayKey) {
	tick := time.NewTicker(redraw)
	defer tick.Stop()
	// The rate is measured over the last second: the counts of the last
	// ten redraws.
	type sample struct {
		at    time.Time
		count uint64
	}
	var samples []sample
	rate := 0.0
	for {
		select {
		case <-c.done:
			return
		case k, ok := <-keys:
			if !ok {
				keys = nil // standard input ended: no more keys, the replay goes on
				continue
			}
			if k == keyQuit {
				c.cancel()
				continue
			}
			c.mu.Lock()
			cmd, paused := keyCommand(k, c.paused)
			c.mu.Unlock()
			select {
			case c.ctl <- cmd:
			case <-ctx.Done():
				continue
			case <-c.done:
				return
			}
			c.mu.Lock()
			c.paused, c.dirty = paused, true
			c.mu.Unlock()
		case now := <-tick.C:
			c.mu.Lock()
			samples = append(samples, sample{now, c.count})
			if len(samples) > 11 {
				samples = samples[1:]
			}
			if s := samples[0]; now.Sub(s.at) > 0 && len(samples) > 1 {
				r := float64(c.count-s.count) / now.Sub(s.at).Seconds()
				c.dirty = c.dirty || r != rate
				rate = r
			}
			if c.dirty {
				c.draw(rate)
			}
			c.mu.Unlock()
		}
	}
}

// sent counts a message replay sent, or skipped.
func (c *replayConsole) sent(rec recording.Record) {
	c.mu.Lock()
	c.count++
	c.pos = rec.LogTime.Sub(c.from)
	c.dirty = true
	c.mu.Unlock()
}

// draw replaces the status line; c.mu is held.
func (c *replayConsole) draw(rate float64) {
	line := replayStatus(c.pal, c.width-1, c.paused, c.pos, c.span, c.count, c.total, c.counted, rate)
	io.WriteString(c.w, "\r\x1b[K"+line)
	c.shown, c.dirty = true, false
}

// Write writes p above the status line, with the carriage returns that
// raw mode no longer adds to line feeds.
func (c *replayConsole) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))
	if c.shown {
		out = append([]byte("\r\x1b[K"), out...)
		c.shown, c.dirty = false, true
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// stop stops reading keys and drawing, and clears the status line. It
// is safe to call more than once.
func (c *replayConsole) stop() {
	c.once.Do(func() {
		close(c.done)
		c.wg.Wait()
		if c.shown {
			io.WriteString(c.w, "\r\x1b[K")
		}
	})
}

// replayStatus is the status line: whether replay runs or is paused, the
// position in time, messages sent of the total (per pass, with --loop),
// the rate, and the keys; cut to width bytes.
func replayStatus(pal palette, width int, paused bool, pos, span time.Duration, count, total uint64, counted bool, rate float64) string {
	state, keys := "replay", "space pause  n step  q quit"
	if paused {
		state, keys = "PAUSED", "space resume  n next  q quit"
	}
	of := "?"
	if counted {
		of = strconv.FormatUint(total, 10)
		if total > 0 && count > total { // --loop
			count = (count-1)%total + 1
		}
	}
	rest := fmt.Sprintf(" %s/%s  %d/%s msgs  %.0f msg/s  ", fmtClock(pos), fmtClock(span), count, of, rate)
	if len(state)+len(rest)+len(keys) > width {
		keys = ""
		if n := width - len(state); n < len(rest) {
			rest = rest[:max(n, 0)]
		}
	}
	if paused {
		state = pal.warn(state)
	}
	return state + rest + keys
}

// fmtClock formats a position in a recording as a clock: m:ss.s, or
// h:mm:ss from an hour.
func fmtClock(d time.Duration) string {
	d = max(d, 0)
	if d >= time.Hour {
		return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	}
	tenths := int(d / (100 * time.Millisecond))
	return fmt.Sprintf("%d:%02d.%d", tenths/600, tenths/10%60, tenths%10)
}
