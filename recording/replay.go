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
}

// ReplayStats counts what Replay did.
type ReplayStats struct {
	Messages uint64        // records published
	Late     uint64        // records published more than a millisecond after they were due
	MaxLate  time.Duration // the latest any record went out
}

// Replay publishes the records of files, in order, on the schedule their log
// times give, scaled by opts.Speed. The schedule is anchored at the start:
// a record that is late (the publisher was paused, or slow) goes out at
// once, and those after it are due at their own times again, so a stall
// never shifts the rest of the replay. It returns when the records are
// exhausted (or, with Loop, when ctx is done), on ctx's cancellation (nil
// error), on the first error from publish, or on damage in a file, after
// publishing every intact record before it.
func Replay(ctx context.Context, files []string, opts ReplayOptions, publish func(Record) error) (ReplayStats, error) {
	var st ReplayStats
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var (
		anchor     time.Time // wall time of the first record of this pass
		first      time.Time // its log time
		last       time.Time // the latest log time seen, to place the next pass
		havePassed bool
	)
	for {
		started := false
		for _, name := range files {
			for rec, err := range Read(name, opts.Filter) {
				if err != nil {
					return st, err
				}
				if !started {
					started = true
					if !havePassed {
						anchor, first = time.Now(), rec.LogTime
					} else {
						// The next pass starts where the previous one ended
						// on the schedule, not where it happened to finish.
						anchor, first = anchor.Add(scale(last.Sub(first), opts.Speed)), rec.LogTime
					}
				}
				last = rec.LogTime
				due := anchor.Add(scale(rec.LogTime.Sub(first), opts.Speed))
				if opts.Speed > 0 {
					// The Go timer wakes at millisecond granularity: it
					// takes the long part of a wait, and a precise sleep
					// of the thread the last millisecond.
					if wait := time.Until(due) - time.Millisecond; wait > 0 {
						timer.Reset(wait)
						select {
						case <-ctx.Done():
							return st, nil
						case <-timer.C:
						}
					}
					if ctx.Err() != nil {
						return st, nil
					}
					sleepPrecise(time.Until(due))
				} else if ctx.Err() != nil {
					return st, nil
				}
				if err := publish(rec); err != nil {
					return st, err
				}
				now := time.Now()
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
		havePassed = true
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
