package recording

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when the test advances it, or when
// the replayer sleeps. Every timer armed is announced on armed, so that a
// test knows the replayer has done what comes before the wait.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	armed  chan struct{}
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0, armed: make(chan struct{}, 100)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	c.armed <- struct{}{}
	return ch
}

func (c *fakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
}

// Advance moves the clock on by d and fires the timers due by then.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- c.now
	}
	c.timers = kept
}

// watchdog is how long a test waits for what should come at once before
// it fails; it times nothing.
const watchdog = 10 * time.Second

// replayRun is a Replay running in the background on a fake clock: each
// record published sends its first payload byte on sent.
type replayRun struct {
	clk  *fakeClock
	sent chan int
	done chan struct{}
	st   ReplayStats
	err  error
	dues []time.Duration // from t0, in the order sent
	late []time.Duration // sent minus due
}

// startReplay writes a recording of one-byte messages 0, 1, ... at the
// offsets given and replays it at speed with ctl as its control; hook,
// when not nil, is called as each message is published.
func startReplay(t *testing.T, ctx context.Context, speed float64, ctl <-chan ReplayControl, hook func(int), offsets ...time.Duration) *replayRun {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.mcap")
	rec, err := Create(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, off := range offsets {
		if err := rec.Write(group, msg("t", []byte{byte(i)}, t0.Add(off))); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	r := &replayRun{clk: newFakeClock(), sent: make(chan int, len(offsets)), done: make(chan struct{})}
	opts := ReplayOptions{Speed: speed, Control: ctl, clock: r.clk, OnSend: func(due, sent time.Time) {
		r.dues, r.late = append(r.dues, due.Sub(t0)), append(r.late, sent.Sub(due))
	}}
	go func() {
		defer close(r.done)
		r.st, r.err = Replay(ctx, []string{path}, opts, func(rec Record) error {
			if hook != nil {
				hook(int(rec.Payload[0]))
			}
			r.sent <- int(rec.Payload[0])
			return nil
		})
	}()
	return r
}

// next waits for the next record to be published and checks which it is.
func (r *replayRun) next(t *testing.T, want int) {
	t.Helper()
	got := -1
	select {
	case got = <-r.sent:
	case <-r.done:
		// The last message and the end can both be ready: select picks
		// either, so the end counts only when nothing is left to read.
		select {
		case got = <-r.sent:
		default:
			t.Fatalf("replay ended before message %d: %+v, %v", want, r.st, r.err)
		}
	case <-time.After(watchdog):
		t.Fatalf("message %d not sent", want)
	}
	if got != want {
		t.Fatalf("published message %d, want %d", got, want)
	}
}

// waiting waits for the replayer to arm a timer: it waits for a message
// that is not due yet.
func (r *replayRun) waiting(t *testing.T) {
	t.Helper()
	select {
	case <-r.clk.armed:
	case i := <-r.sent:
		t.Fatalf("message %d went out at once; it should wait", i)
	case <-r.done:
		t.Fatalf("replay ended: %+v, %v", r.st, r.err)
	case <-time.After(watchdog):
		t.Fatal("the replayer does not wait for the next message")
	}
}

// finish waits for Replay to return and checks its stats and schedule.
func (r *replayRun) finish(t *testing.T, messages uint64, dues ...time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(watchdog):
		t.Fatal("replay did not return")
	}
	if r.err != nil || r.st.Messages != messages || r.st.Late != 0 {
		t.Fatalf("replay: %+v, %v; want %d messages, none late", r.st, r.err, messages)
	}
	if len(r.dues) != len(dues) {
		t.Fatalf("due at %v, want %v", r.dues, dues)
	}
	for i := range dues {
		if r.dues[i] != dues[i] || r.late[i] != 0 {
			t.Errorf("message %d due at +%v and sent %v after; want due at +%v, sent then", i, r.dues[i], r.late[i], dues[i])
		}
	}
}

// TestReplayPauseHoldsClock pauses between two messages 100ms apart for
// 10s: the second goes out 100ms after resuming, not at once in a burst.
func TestReplayPauseHoldsClock(t *testing.T) {
	ctl := make(chan ReplayControl)
	r := startReplay(t, t.Context(), 1, ctl, nil, 0, 100*time.Millisecond, 200*time.Millisecond)
	r.next(t, 0)
	r.waiting(t) // for message 1
	ctl <- ReplayPause
	ctl <- ReplayPause // obeyed once the first is: paused now
	r.clk.Advance(10 * time.Second)
	ctl <- ReplayResume
	for i := 1; i <= 2; i++ {
		r.waiting(t)
		r.clk.Advance(100 * time.Millisecond)
		r.next(t, i)
	}
	r.finish(t, 3, 0, 10*time.Second+100*time.Millisecond, 10*time.Second+200*time.Millisecond)
}

// TestReplayStep steps through two messages of a paused replay, each sent
// at once and alone, then resumes: the next message is due as long after
// resuming as it was after the last one stepped, however far the steps
// moved in the recording.
func TestReplayStep(t *testing.T) {
	ctl := make(chan ReplayControl)
	r := startReplay(t, t.Context(), 1, ctl, nil, 0, time.Hour, time.Hour+time.Second, time.Hour+3*time.Second)
	r.next(t, 0)
	r.waiting(t) // an hour, for message 1
	for i := 1; i <= 2; i++ {
		ctl <- ReplayStep // pauses the running replay, or steps the paused one
		r.next(t, i)
	}
	ctl <- ReplayPause // obeyed once the replay waits again, paused
	select {
	case i := <-r.sent:
		t.Fatalf("message %d went out after two steps without a third", i)
	default:
	}
	ctl <- ReplayResume
	r.waiting(t)
	r.clk.Advance(2 * time.Second)
	r.next(t, 3)
	r.finish(t, 4, 0, 0, 0, 2*time.Second)
}

// TestReplayControlClosed: closing the control channel resumes a paused
// replay, as nothing could resume it after.
func TestReplayControlClosed(t *testing.T) {
	ctl := make(chan ReplayControl)
	r := startReplay(t, t.Context(), 1, ctl, nil, 0, time.Second)
	r.next(t, 0)
	r.waiting(t)
	ctl <- ReplayPause
	ctl <- ReplayPause
	close(ctl)
	r.waiting(t)
	r.clk.Advance(time.Second)
	r.next(t, 1)
	r.finish(t, 2, 0, time.Second)
}

// TestReplayCancelPaused: cancelling the context ends a paused replay.
func TestReplayCancelPaused(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	ctl := make(chan ReplayControl)
	r := startReplay(t, ctx, 1, ctl, nil, 0, time.Second)
	r.next(t, 0)
	r.waiting(t)
	ctl <- ReplayPause
	ctl <- ReplayPause
	cancel()
	r.finish(t, 1, 0)
}

// TestReplayPauseUnpaced: at speed 0 every message is due at once, and a
// pause sent while one is published stops the next all the same.
func TestReplayPauseUnpaced(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	ctl := make(chan ReplayControl, 1)
	r := startReplay(t, ctx, 0, ctl, func(i int) {
		if i == 0 {
			ctl <- ReplayPause
		}
	}, 0, time.Millisecond, 2*time.Millisecond)
	r.next(t, 0)
	ctl <- ReplayStep
	r.next(t, 1)
	cancel()
	r.finish(t, 2, 0, 0)
}
