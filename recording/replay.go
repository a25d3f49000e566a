package recording

import (
	"context"
	"time"
)

// ReplayOptions configures Replay.
type ReplayOptions struct {
	// Speed scales the recorded timing: 1 is real time, 2 twice as fast;
	// 0 sends as fast as possible.
	Speed float64
	// Loop starts over at the end until ctx is done.
	Loop bool
	// Filter selects the records to replay. Start and End are absolute
	// log times (see Span for a file's first log time).
	Filter Filter
	// OnSend, when set, is called after each record is published with the
	// time it was due and the time it went out, for measuring accuracy.
	OnSend func(due, sent time.Time)
	// Control, when set, pauses, resumes and steps the replay: see
	// ReplayControl. Closing it resumes a paused replay, as nothing could
	// resume it after.
	Control <-chan ReplayControl

	clock clock // nil: the real one; tests set a clock that moves when told
}

// ReplayControl is a command to a running Replay, sent on
// ReplayOptions.Control. Replay obeys a command before it sends the next
// record, even a record that is already due.
type ReplayControl int

const (
	// ReplayPause stops the replay's clock: no record goes out until
	// ReplayResume or ReplayStep, and the time spent paused is not made up
	// after by sending the records it held back in a burst.
	ReplayPause ReplayControl = iota + 1
	// ReplayResume starts a paused replay's clock again where it stopped,
	// or at the last record stepped to: the next record is due as long
	// after resuming as it was after that point. It does nothing to a
	// replay that runs.
	ReplayResume
	// ReplayStep sends the next record at once and leaves the replay
	// paused, pausing it first if it ran.
	ReplayStep
)

// ReplayStats counts what Replay did.
type ReplayStats struct {
	Messages uint64        // records published
	Late     uint64        // records published more than a millisecond after they were due
	MaxLate  time.Duration // the latest any record went out
}

// Replay publishes the records of files, in order, on the schedule their log
// times give, scaled by opts.Speed. The schedule is anchored at the start:
// a record that is late (the publisher was slow) goes out at once, and
// those after it are due at their own times again, so a stall never shifts
// the rest of the replay; a pause through opts.Control does shift it, by
// the time paused. It returns when the records are exhausted (or, with
// Loop, when ctx is done), on ctx's cancellation (nil error), on the first
// error from publish, or on damage in a file, after publishing every
// intact record before it.
func Replay(ctx context.Context, files []string, opts ReplayOptions, publish func(Record) error) (ReplayStats, error) {
	var st ReplayStats
	r := replayer{ctx: ctx, speed: opts.Speed, clk: opts.clock, control: opts.Control}
	if r.clk == nil {
		rc := &realClock{}
		defer rc.stop()
		r.clk = rc
	}
	var (
		base        time.Duration // where this pass starts on the timeline
		first, last time.Time     // the log times of this pass's first record and of the latest
	)
	for pass := 0; ; pass++ {
		started := false
		for _, name := range files {
			for rec, err := range Read(name, opts.Filter) {
				if err != nil {
					return st, err
				}
				if !started {
					started = true
					if pass == 0 {
						r.anchor = r.clk.Now()
					} else {
						// The next pass starts where the previous one ended
						// on the schedule, not where it happened to finish.
						base += scale(last.Sub(first), opts.Speed)
					}
					first = rec.LogTime
				}
				last = rec.LogTime
				due, ok := r.wait(base + scale(rec.LogTime.Sub(first), opts.Speed))
				if !ok {
					return st, nil
				}
				if err := publish(rec); err != nil {
					return st, err
				}
				now := r.clk.Now()
				st.Messages++
				if opts.Speed > 0 {
					if late := now.Sub(due); late > time.Millisecond {
						st.Late++
						st.MaxLate = max(st.MaxLate, late)
					}
				}
				if opts.OnSend != nil {
					opts.OnSend(due, now)
				}
			}
		}
		if !opts.Loop || !started || ctx.Err() != nil {
			return st, nil
		}
	}
}

// replayer keeps Replay's timeline: a record at offset off on it (its
// scaled log time since the first record) is due at anchor+off. Pausing
// stops the timeline at pos; resuming moves the anchor so that it goes on
// from pos.
type replayer struct {
	ctx     context.Context
	speed   float64
	clk     clock
	control <-chan ReplayControl
	anchor  time.Time
	paused  bool
	pos     time.Duration // while paused, where the timeline stopped
	step    bool          // while paused, a record may go now
}

// wait blocks until the record at offset off on the timeline is due, and
// obeys the commands that come meanwhile. It returns the time the record
// was due, or false when ctx is done first.
func (r *replayer) wait(off time.Duration) (time.Time, bool) {
	for {
		if r.paused {
			if r.step {
				// A stepped record moves the stopped timeline to it, so
				// that resuming goes on from there.
				r.step = false
				r.pos = max(r.pos, off)
				return r.clk.Now(), true
			}
			select {
			case <-r.ctx.Done():
				return time.Time{}, false
			case c, ok := <-r.control:
				r.obey(c, ok)
			}
			continue
		}
		// A command already sent is obeyed first, so that a pause stops
		// even a replay that is behind or unpaced.
		select {
		case c, ok := <-r.control:
			r.obey(c, ok)
			continue
		default:
		}
		if r.ctx.Err() != nil {
			return time.Time{}, false
		}
		due := r.anchor.Add(off)
		if r.speed <= 0 {
			return due, true
		}
		// The Go timer wakes at millisecond granularity: it takes the long
		// part of a wait, and a precise sleep of the thread the last
		// millisecond.
		if d := due.Sub(r.clk.Now()) - time.Millisecond; d > 0 {
			select {
			case <-r.ctx.Done():
				return time.Time{}, false
			case c, ok := <-r.control:
				r.obey(c, ok)
				continue
			case <-r.clk.After(d):
			}
			if r.ctx.Err() != nil {
				return time.Time{}, false
			}
		}
		r.clk.Sleep(due.Sub(r.clk.Now()))
		return due, true
	}
}

// obey carries out a command received from the control channel (ok false:
// the channel is closed).
func (r *replayer) obey(c ReplayControl, ok bool) {
	if !ok {
		// Nothing can resume the replay now: resume it, and stop listening.
		r.control, c = nil, ReplayResume
	}
	now := r.clk.Now()
	switch c {
	case ReplayPause, ReplayStep:
		if !r.paused {
			r.paused, r.pos = true, now.Sub(r.anchor)
		}
		r.step = c == ReplayStep
	case ReplayResume:
		if r.paused {
			r.paused, r.step = false, false
			r.anchor = now.Add(-r.pos)
		}
	}
}

// clock is Replay's time: the real one, or in tests one that moves only
// when told.
type clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed. A call may
	// reuse the previous call's channel: only the last one is waited on.
	After(d time.Duration) <-chan time.Time
	// Sleep blocks for d, to tens of microseconds where the system can.
	Sleep(d time.Duration)
}

// realClock is the system's clock, with one timer reused for every wait.
type realClock struct{ t *time.Timer }

func (*realClock) Now() time.Time { return time.Now() }

func (c *realClock) After(d time.Duration) <-chan time.Time {
	if c.t == nil {
		c.t = time.NewTimer(d)
	} else {
		c.t.Reset(d) // since Go 1.23 Reset discards a value not received
	}
	return c.t.C
}

func (*realClock) Sleep(d time.Duration) { sleepPrecise(d) }

func (c *realClock) stop() {
	if c.t != nil {
		c.t.Stop()
	}
}

func scale(d time.Duration, speed float64) time.Duration {
	if speed <= 0 {
		return 0
	}
	return time.Duration(float64(d) / speed)
}

// Span returns the first and last log times of the files, in order, for
// turning offsets such as --start 30s into the absolute times of Filter.
func Span(files []string) (first, last time.Time, err error) {
	for _, name := range files {
		f, err := Open(name)
		if err != nil {
			return first, last, err
		}
		info, ierr := f.Info()
		f.Close()
		if info.MessageCount == 0 {
			if ierr != nil {
				return first, last, ierr
			}
			continue
		}
		s, e := time.Unix(0, int64(info.MessageStartTime)), time.Unix(0, int64(info.MessageEndTime))
		if first.IsZero() || s.Before(first) {
			first = s
		}
		if e.After(last) {
			last = e
		}
	}
	return first, last, nil
}
