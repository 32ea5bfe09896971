package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNextPause(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		waited, interval, timeout time.Duration
		want                      time.Duration
		ok                        bool
	}{
		{"unbounded", time.Hour, time.Second, 0, time.Second, true},
		{"well before the deadline", time.Second, time.Second, 10 * time.Second, time.Second, true},
		{"shortened to land on the deadline", 9500 * time.Millisecond, time.Second, 10 * time.Second, 500 * time.Millisecond, true},
		{"exactly at the deadline", 10 * time.Second, time.Second, 10 * time.Second, 0, false},
		{"past the deadline", 11 * time.Second, time.Second, 10 * time.Second, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NextPause(tc.waited, tc.interval, tc.timeout)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestThrottle(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name  string
		every time.Duration
		at    []time.Duration // offsets from t0 of successive Due calls
		want  []bool
	}{
		{"first is always due", 10 * time.Second, []time.Duration{0}, []bool{true}},
		{"then once per period", 10 * time.Second,
			[]time.Duration{0, 1 * time.Second, 9 * time.Second, 10 * time.Second, 15 * time.Second, 21 * time.Second},
			[]bool{true, false, false, true, false, true}},
		{"zero period: every call", 0, []time.Duration{0, 0, time.Millisecond}, []bool{true, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := Throttle{Every: tc.every}
			var got []bool
			for _, d := range tc.at {
				got = append(got, th.Due(t0.Add(d)))
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestPollSucceedsAfterRetries(t *testing.T) {
	n := 0
	var reports []Progress
	err := Poll(context.Background(), Options{Interval: time.Millisecond, Waiting: func(p Progress) { reports = append(reports, p) }},
		func(context.Context) error {
			n++
			if n < 4 {
				return errors.New("not yet")
			}
			return nil
		})
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.Len(t, reports, 3, "LogEvery 0 reports every failed attempt")
	require.Equal(t, 3, reports[2].Attempts)
	require.EqualError(t, reports[2].Last, "not yet")
}

func TestPollTimeout(t *testing.T) {
	start := time.Now()
	last := errors.New("connection refused")
	var reports int
	err := Poll(context.Background(), Options{Interval: 20 * time.Millisecond, Timeout: 200 * time.Millisecond, LogEvery: time.Hour,
		Waiting: func(Progress) { reports++ }},
		func(context.Context) error { return last })
	elapsed := time.Since(start)
	var g *GaveUp
	require.ErrorAs(t, err, &g)
	require.ErrorIs(t, err, ErrTimeout)
	require.ErrorIs(t, err, last)
	require.GreaterOrEqual(t, elapsed, 200*time.Millisecond, "the last attempt is at the deadline")
	require.Less(t, elapsed, 2*time.Second)
	require.GreaterOrEqual(t, g.Attempts, 3)
	require.Equal(t, 1, reports, "LogEvery throttles the reports")
	require.Contains(t, err.Error(), "timed out; last error: connection refused")
}

func TestPollContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := Poll(ctx, Options{Interval: 10 * time.Millisecond}, func(context.Context) error { return errors.New("busy") })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, ErrTimeout)

	// A context already done still gets one attempt, and its result wins.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	require.NoError(t, Poll(done, Options{Interval: time.Second}, func(context.Context) error { return nil }))
}

func TestPollStop(t *testing.T) {
	final := errors.New("invalid configuration")
	n := 0
	err := Poll(context.Background(), Options{Interval: time.Millisecond, Timeout: time.Minute}, func(context.Context) error {
		n++
		return Stop(final)
	})
	require.Equal(t, final, err, "Stop returns the error itself, not a GaveUp")
	require.Equal(t, 1, n)
	require.NoError(t, Stop(nil))
	require.Error(t, Poll(context.Background(), Options{}, func(context.Context) error { return nil }), "Interval is required")
}

func TestSleep(t *testing.T) {
	require.NoError(t, Sleep(context.Background(), time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	require.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
	require.Less(t, time.Since(start), time.Second)
	require.ErrorIs(t, Sleep(ctx, 0), context.Canceled)
	require.NoError(t, Sleep(context.Background(), 0))
}
