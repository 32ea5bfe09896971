package membership

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func TestJudgeCatchUp(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	join := CatchUpRule{Stall: 60 * time.Second}
	restart := CatchUpRule{Stall: 60 * time.Second, AtLeast: 300 * time.Second}
	snapshotApplied := Progress{Applied: 0, Committed: 65560}
	cases := map[string]struct {
		st       CatchUp
		cur      Progress
		now      time.Time
		rule     CatchUpRule
		moved    bool
		giveUp   bool
		nudge    bool
		lastProg time.Time
	}{
		"first sample starts the clocks": {CatchUp{}, Progress{}, at(0), join, false, false, false, at(0)},
		"applied index moving keeps waiting past any deadline": {
			CatchUp{Started: at(0), Last: Progress{Applied: 10, Committed: 9000}, LastProgress: at(3000)},
			Progress{Applied: 20, Committed: 9000}, at(3050), join, true, false, false, at(3050)},
		"only bytes arriving (a snapshot streaming) is progress": {
			CatchUp{Started: at(0), Last: Progress{SnapshotBytes: 1 << 30}, LastProgress: at(0)},
			Progress{SnapshotBytes: 2 << 30}, at(59), join, true, false, false, at(59)},
		"peer bytes alone (heartbeats) are not progress": {
			CatchUp{Started: at(0), Last: Progress{Applied: 5, Committed: 7, PeerBytes: 1000}, LastProgress: at(10)},
			Progress{Applied: 5, Committed: 7, PeerBytes: 2000}, at(70), join, false, true, false, at(10)},
		"a finished snapshot renamed away (bytes drop) is not progress": {
			CatchUp{Started: at(0), Last: Progress{Applied: 5, Committed: 7, SnapshotBytes: 1 << 30}, LastProgress: at(10)},
			Progress{Applied: 5, Committed: 7}, at(70), join, false, true, false, at(10)},
		"becoming ready is progress": {
			CatchUp{Started: at(0), Last: Progress{Applied: 5, Committed: 5}, LastProgress: at(0)},
			Progress{Applied: 5, Committed: 5, Ready: true}, at(70), join, true, false, false, at(70)},
		"stalled but not for the stall timeout": {
			CatchUp{Started: at(0), Last: Progress{Applied: 5, Committed: 7}, LastProgress: at(10)},
			Progress{Applied: 5, Committed: 7}, at(69), join, false, false, false, at(10)},
		"stalled for the stall timeout gives up": {
			CatchUp{Started: at(0), Last: Progress{Applied: 5, Committed: 7}, LastProgress: at(10)},
			Progress{Applied: 5, Committed: 7}, at(70), join, false, true, false, at(10)},
		"a restart waiting for quorum waits at least the start timeout": {
			CatchUp{Started: at(0), Last: Progress{Applied: 5, Committed: 5}, LastProgress: at(0)},
			Progress{Applied: 5, Committed: 5}, at(200), restart, false, false, false, at(0)},
		"a restart stalled past the start timeout gives up": {
			CatchUp{Started: at(0), Last: Progress{Applied: 5, Committed: 5}, LastProgress: at(0)},
			Progress{Applied: 5, Committed: 5}, at(300), restart, false, true, false, at(0)},
		"a start timeout shorter than the stall timeout bounds the stall": {
			CatchUp{Started: at(0), Last: Progress{Applied: 5, Committed: 5}, LastProgress: at(1)},
			Progress{Applied: 5, Committed: 5}, at(6), CatchUpRule{Stall: 120 * time.Second, AtLeast: 5 * time.Second}, false, true, false, at(1)},
		"a short start timeout still waits while the member progresses": {
			CatchUp{Started: at(0), Last: Progress{Applied: 5, Committed: 9000}, LastProgress: at(1)},
			Progress{Applied: 6, Committed: 9000}, at(60), CatchUpRule{Stall: 120 * time.Second, AtLeast: 5 * time.Second}, true, false, false, at(60)},
		"applied stuck far behind a snapshot's commit asks for a nudge": {
			CatchUp{Started: at(0), Last: Progress{Committed: 10}, LastProgress: at(0)},
			snapshotApplied, at(5), join, true, false, true, at(5)},
		"still stuck: nudge again, no progress": {
			CatchUp{Started: at(0), Last: snapshotApplied, LastProgress: at(5)},
			snapshotApplied, at(10), join, false, false, true, at(5)},
		"apply lagging but moving needs no nudge": {
			CatchUp{Started: at(0), Last: Progress{Applied: 100, Committed: 9000}, LastProgress: at(0)},
			Progress{Applied: 200, Committed: 9000}, at(5), join, true, false, false, at(5)},
		"a gap of exactly MaxApplyGap is still accepted by etcd": {
			CatchUp{Started: at(0), Last: Progress{Applied: 1, Committed: 1 + MaxApplyGap}, LastProgress: at(0)},
			Progress{Applied: 1, Committed: 1 + MaxApplyGap}, at(5), join, false, false, false, at(0)},
		"ready members are never nudged": {
			CatchUp{Started: at(0), Last: Progress{Committed: 9000, Ready: true}, LastProgress: at(0)},
			Progress{Committed: 9000, Ready: true}, at(5), join, false, false, false, at(0)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := JudgeCatchUp(tc.st, tc.cur, tc.now, tc.rule)
			if v.Moved != tc.moved || v.GiveUp != tc.giveUp || v.Nudge != tc.nudge {
				t.Fatalf("moved/giveUp/nudge = %t/%t/%t, want %t/%t/%t (%s)", v.Moved, v.GiveUp, v.Nudge, tc.moved, tc.giveUp, tc.nudge, v.Reason)
			}
			if !v.State.LastProgress.Equal(tc.lastProg) {
				t.Fatalf("last progress %s, want %s", v.State.LastProgress, tc.lastProg)
			}
			if v.State.Last != tc.cur {
				t.Fatalf("last sample %+v, want %+v", v.State.Last, tc.cur)
			}
			if v.GiveUp != (v.Reason != "") {
				t.Fatalf("a give-up must say why and only a give-up has a reason: %q", v.Reason)
			}
		})
	}
}

func TestCatchingUp(t *testing.T) {
	cases := map[string]struct {
		err  error
		want bool
	}{
		"learner not in sync":        {fmt.Errorf("promote: %w", rpctypes.ErrMemberLearnerNotReady), true},
		"too many requests":          {rpctypes.ErrTooManyRequests, true},
		"no error":                   {nil, false},
		"connection cut":             {errors.New("rpc error: code = Unavailable desc = error reading from server: EOF"), false},
		"deadline":                   {fmt.Errorf("promote: %w", context.DeadlineExceeded), false},
		"already a voter (not here)": {rpctypes.ErrMemberNotLearner, false},
	}
	for name, tc := range cases {
		if got := CatchingUp(tc.err); got != tc.want {
			t.Errorf("%s: CatchingUp(%v) = %t, want %t", name, tc.err, got, tc.want)
		}
	}
}

func TestRequestBackoff(t *testing.T) {
	busy := fmt.Errorf("promoting: %w", rpctypes.ErrTooManyRequests)
	other := errors.New("connection refused")
	cases := []struct {
		err       error
		cur, want time.Duration
	}{
		{other, 0, 200 * time.Millisecond},
		{other, 200 * time.Millisecond, 400 * time.Millisecond},
		{other, 1600 * time.Millisecond, 2 * time.Second},
		{other, 2 * time.Second, 2 * time.Second},
		{busy, 0, time.Second},
		{busy, 200 * time.Millisecond, time.Second},
		{busy, 2 * time.Second, 4 * time.Second},
		{busy, 8 * time.Second, 10 * time.Second},
		{busy, 10 * time.Second, 10 * time.Second},
		{rpctypes.ErrTooManyRequests, 0, time.Second},
	}
	for _, tc := range cases {
		if got := RequestBackoff(tc.err, tc.cur); got != tc.want {
			t.Errorf("RequestBackoff(%v, %s) = %s, want %s", tc.err, tc.cur, got, tc.want)
		}
	}
}
