// Package retry is the one poll-until-done loop: call an attempt every Interval until it succeeds, says stop,
// the context ends or a timeout passes, reporting progress at most once per LogEvery so that a long wait logs a
// line every few seconds instead of one per attempt. The decisions (is a report due, is the time up, how long to
// pause) are pure functions of the clock; Poll is the thin loop around them.
//
// It lives under src/etcd_ctl because the shipped binary's waits (peers, membership, status) are meant to use it,
// and tooling may import shipped packages but never the reverse.
package retry

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout is the cause of a GaveUp when Options.Timeout passed.
var ErrTimeout = errors.New("timed out")

// Options configure Poll.
type Options struct {
	// Interval is the pause between attempts. Required (> 0).
	Interval time.Duration
	// Timeout bounds the whole wait, measured from the start of Poll; 0 leaves it to the context. The last
	// attempt happens at the deadline: the pause before it is shortened rather than skipped.
	Timeout time.Duration
	// LogEvery throttles Waiting: it is called after the first failed attempt and then at most once per
	// LogEvery; 0 calls it after every failed attempt.
	LogEvery time.Duration
	// Waiting, if set, reports a failed attempt that will be retried.
	Waiting func(Progress)
}

// Progress describes a wait so far.
type Progress struct {
	Attempts int           // attempts made
	Waited   time.Duration // since Poll started
	Last     error         // what the last attempt returned
}

// GaveUp is Poll's error when the wait ended without success: Cause is ErrTimeout or the context's error, Last
// what the last attempt returned. errors.Is sees both.
type GaveUp struct {
	Progress
	Cause error
}

func (e *GaveUp) Error() string {
	s := fmt.Sprintf("gave up after %s (%d attempts): %v", e.Waited.Round(time.Millisecond), e.Attempts, e.Cause)
	if e.Last != nil {
		s += "; last error: " + e.Last.Error()
	}
	return s
}

func (e *GaveUp) Unwrap() []error {
	if e.Last == nil {
		return []error{e.Cause}
	}
	return []error{e.Cause, e.Last}
}

// stop marks an attempt's error as final.
type stop struct{ err error }

func (s stop) Error() string { return s.err.Error() }
func (s stop) Unwrap() error { return s.err }

// Stop wraps an attempt's error to end Poll at once, returning err unwrapped (no GaveUp).
func Stop(err error) error {
	if err == nil {
		return nil
	}
	return stop{err}
}

// Poll calls attempt until it returns nil (Poll returns nil), returns Stop(err) (Poll returns err), or the wait
// ends: the context is done or Options.Timeout passed (Poll returns a *GaveUp). The attempt gets ctx as is.
func Poll(ctx context.Context, o Options, attempt func(context.Context) error) error {
	if o.Interval <= 0 {
		return errors.New("retry.Poll: Interval must be positive")
	}
	start := time.Now()
	var th Throttle
	th.Every = o.LogEvery
	p := Progress{}
	for {
		err := attempt(ctx)
		p.Attempts++
		p.Waited = time.Since(start)
		p.Last = err
		if err == nil {
			return nil
		}
		var s stop
		if errors.As(err, &s) {
			return s.err
		}
		if ctx.Err() != nil {
			return &GaveUp{Progress: p, Cause: ctx.Err()}
		}
		pause, ok := NextPause(p.Waited, o.Interval, o.Timeout)
		if !ok {
			return &GaveUp{Progress: p, Cause: ErrTimeout}
		}
		if o.Waiting != nil && th.Due(time.Now()) {
			o.Waiting(p)
		}
		if err := Sleep(ctx, pause); err != nil {
			return &GaveUp{Progress: p, Cause: err}
		}
	}
}

// NextPause decides the pause before the next attempt, waited into a wait bounded by timeout (0 = unbounded):
// the interval, shortened so that the last attempt falls on the deadline; false once the deadline has passed.
func NextPause(waited, interval, timeout time.Duration) (time.Duration, bool) {
	if timeout <= 0 {
		return interval, true
	}
	left := timeout - waited
	if left <= 0 {
		return 0, false
	}
	return min(interval, left), true
}

// Throttle decides when a repeated report is due: the first time, then once Every has passed since the last
// one. The zero value (Every 0) is always due.
type Throttle struct {
	Every time.Duration
	last  time.Time
	fired bool
}

// Due reports whether a report is due at now, and if so records now as the last report.
func (t *Throttle) Due(now time.Time) bool {
	if t.fired && now.Sub(t.last) < t.Every {
		return false
	}
	t.fired, t.last = true, now
	return true
}

// Sleep pauses for d or until ctx is done, whichever is first; it returns ctx's error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
