package membership

import (
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// MaxApplyGap is the gap between committed and applied raft index above which etcd refuses every raft proposal
// with "etcdserver: too many requests", its own publish of the member's name and client URLs included
// (maxGapBetweenApplyAndCommitIndex in etcd's server/etcdserver/v3_server.go).
const MaxApplyGap = 5000

// CatchUp is what the wait knows between samples.
type CatchUp struct {
	Started      time.Time
	Last         Progress
	LastProgress time.Time
}

// CatchUpRule bounds the wait.
type CatchUpRule struct {
	// Stall is how long no progress at all is tolerated before giving up (at most AtLeast, when that is set).
	Stall time.Duration
	// AtLeast is the minimum wait before giving up, whatever the progress (the start timeout for a member that
	// only waits for a quorum).
	AtLeast time.Duration
}

// CatchUpVerdict is JudgeCatchUp's answer.
type CatchUpVerdict struct {
	State  CatchUp
	Moved  bool
	GiveUp bool
	// Nudge asks for one small write to the cluster: see StuckAfterSnapshot.
	Nudge  bool
	Reason string
}

// Advanced says whether cur shows any progress over prev.
func Advanced(prev, cur Progress) bool {
	return cur.Applied > prev.Applied || cur.Committed > prev.Committed || cur.SnapshotBytes > prev.SnapshotBytes || (cur.Ready && !prev.Ready)
}

// StuckAfterSnapshot is the root cause of issue 19. etcd's applySnapshot (server/etcdserver/server.go) advances
// its apply loop's own index to the snapshot's but not the atomic applied index that the request gate reads,
// while the committed index jumps to the snapshot's. A member that applied a snapshot more than MaxApplyGap
// entries ahead of what it had applied before (a wiped member joining a large keyspace) therefore refuses its
// own publish with "too many requests" until it applies an entry written after the snapshot — which, on a
// cluster without writes, never comes. The cure is one small write to the cluster.
func StuckAfterSnapshot(prev, cur Progress) bool {
	return !cur.Ready && cur.Committed > cur.Applied+MaxApplyGap && cur.Applied == prev.Applied
}

// JudgeCatchUp folds one sample into the wait: progress resets the stall clock; the wait gives up only when
// rule.AtLeast has passed and nothing moved for rule.Stall (or for rule.AtLeast, if that is shorter).
func JudgeCatchUp(st CatchUp, cur Progress, now time.Time, rule CatchUpRule) CatchUpVerdict {
	if st.Started.IsZero() {
		st.Started, st.LastProgress = now, now
	}
	v := CatchUpVerdict{Nudge: StuckAfterSnapshot(st.Last, cur)}
	if Advanced(st.Last, cur) {
		st.LastProgress, v.Moved = now, true
	}
	st.Last = cur
	v.State = st
	stalled, waited := now.Sub(st.LastProgress), now.Sub(st.Started)
	// A start timeout shorter than the stall timeout bounds the stall too: an operator who asked for a short
	// wait gets it whenever nothing moves.
	limit := rule.Stall
	if rule.AtLeast > 0 && rule.AtLeast < limit {
		limit = rule.AtLeast
	}
	if stalled >= limit && waited >= rule.AtLeast {
		v.GiveUp = true
		v.Reason = fmt.Sprintf("no progress for %s (applied index %d, committed index %d, %d snapshot bytes received, %d bytes from peers), after %s in all",
			stalled.Round(time.Second), cur.Applied, cur.Committed, cur.SnapshotBytes, cur.PeerBytes, waited.Round(time.Second))
	}
	return v
}

// CatchingUp says whether a failed promote means the learner is still catching up, so that its progress keeps
// the promote going: etcd refuses to promote a learner that is not yet in sync with the leader
// (ErrMemberLearnerNotReady) or answers "too many requests" while applying behind. Any other failure (no answer,
// a cut connection) says nothing about catching up: a learner that is in sync but cannot be promoted must not
// wait forever just because the cluster's writes keep its index moving.
func CatchingUp(err error) bool {
	return errors.Is(err, rpctypes.ErrMemberLearnerNotReady) || errors.Is(err, rpctypes.ErrTooManyRequests)
}

// RequestBackoff is the pause before retrying one of etcd_ctl's own requests during start (promote, status). On
// "too many requests" the member or the leader is applying behind its commits, so the pause doubles up to
// 10 s instead of adding load; other errors keep the usual short doubling up to 2 s.
func RequestBackoff(err error, cur time.Duration) time.Duration {
	const first = 200 * time.Millisecond
	limit := 2 * time.Second
	if errors.Is(err, rpctypes.ErrTooManyRequests) {
		limit = 10 * time.Second
		if cur < time.Second {
			cur = time.Second / 2
		}
	}
	if cur <= 0 {
		return first
	}
	if next := 2 * cur; next < limit {
		return next
	}
	return limit
}
