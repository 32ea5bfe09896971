package membership

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
)

// PromoteOutcome classifies one MemberPromote attempt.
type PromoteOutcome int

const (
	// PromoteDone: etcd acknowledged the promote.
	PromoteDone PromoteOutcome = iota
	// PromoteAlreadyVoter: etcd answers that the member is not a learner. The member exists and votes, so an
	// earlier promote took effect and only its reply was lost (a timeout, a dropped connection): the join is
	// complete.
	PromoteAlreadyVoter
	// PromoteRetry: the learner is not caught up yet, or the request did not get an answer; try again.
	PromoteRetry
	// PromoteGone: the cluster has no such member (someone removed it); promoting again cannot help.
	PromoteGone
	// PromoteGaveUp: the promote timeout passed without a definite answer.
	PromoteGaveUp
)

// ClassifyPromote is the promote rule. etcd's answers come from its server/etcdserver/api/membership errors
// (ErrMemberNotLearner, ErrIDNotFound) as the client sees them in api/v3rpc/rpctypes (ErrMemberNotLearner,
// ErrMemberNotFound, ErrMemberLearnerNotReady).
func ClassifyPromote(err error, deadlinePassed bool) PromoteOutcome {
	switch {
	case err == nil:
		return PromoteDone
	case errors.Is(err, rpctypes.ErrMemberNotLearner):
		return PromoteAlreadyVoter
	case errors.Is(err, rpctypes.ErrMemberNotFound):
		return PromoteGone
	case deadlinePassed:
		return PromoteGaveUp
	}
	return PromoteRetry
}

// Role is what the live member list says about one member ID.
type Role int

const (
	// RoleUnknown: the member list could not be read.
	RoleUnknown Role = iota
	// RoleAbsent: the ID is not in the member list.
	RoleAbsent
	// RoleLearner: the ID is a learner.
	RoleLearner
	// RoleVoter: the ID is a voting member.
	RoleVoter
)

func (r Role) String() string { return [...]string{"unknown", "absent", "learner", "voter"}[r] }

// Rollback is what undoing a failed join does.
type Rollback struct {
	// RemoveMember removes the learner from the cluster.
	RemoveMember bool
	// MoveDataAside moves the learner's data dir aside (only once it is certainly not a member any more).
	MoveDataAside bool
	Reason        string
}

// DecideRollback is the rollback rule: only a learner is ever removed, and data is moved aside only when the
// cluster certainly no longer holds the member. A voter is never removed: its promote took effect, and its
// data is a full copy that a restart resumes with.
func DecideRollback(r Role) Rollback {
	switch r {
	case RoleLearner:
		return Rollback{RemoveMember: true, MoveDataAside: true, Reason: "the learner never became a voting member; removing it so that the next start joins afresh"}
	case RoleAbsent:
		return Rollback{MoveDataAside: true, Reason: "the learner is no longer in the cluster; its data belongs to no member"}
	case RoleVoter:
		return Rollback{Reason: "the member is already a voting member (its promote took effect); keeping it and its data, the next start restarts with them"}
	}
	return Rollback{Reason: "the member list cannot be read, so it is unknown whether the member votes; keeping it and its data (the next start checks again)"}
}

// roleOf looks id up in the live member list.
func roleOf(ctx context.Context, cli *clientv3.Client, id uint64) (Role, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(lctx)
	if err != nil {
		return RoleUnknown, err
	}
	for _, m := range list.Members {
		if m.ID == id {
			if m.IsLearner {
				return RoleLearner, nil
			}
			return RoleVoter, nil
		}
	}
	return RoleAbsent, nil
}

// promoteLearner promotes this learner, retrying while it catches up: at least PromoteTimeout, and past it as long
// as etcd says it is catching up (CatchingUp) and sample shows progress (JudgeCatchUp with
// etcd.join_stall_timeout_in_seconds). A promote whose reply was lost
// counts as done once etcd says the member is no longer a learner.
func (m *Manager) promoteLearner(ctx context.Context, st *Start, id uint64, sample func() Progress) error {
	cli, done, err := m.joinClient(ctx, st)
	if err != nil {
		return err
	}
	defer done()
	hexID := strconv.FormatUint(id, 16)
	rule := CatchUpRule{Stall: m.CatchUpRule().Stall, AtLeast: m.PromoteTimeout}
	var state CatchUp
	var backoff time.Duration
	lastLog := m.Now()
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := cli.MemberPromote(pctx, id)
		cancel()
		cur := sample()
		judged := cur
		if !CatchingUp(err) {
			judged = state.Last // only catching up counts as progress (see CatchingUp)
		}
		v := JudgeCatchUp(state, judged, m.Now(), rule)
		state = v.State
		state.Last = cur
		switch ClassifyPromote(err, v.GiveUp || ctx.Err() != nil) {
		case PromoteDone:
			m.Log.Info("promoted this member to a voting member", zap.String("reason", "the learner caught up with the leader"), zap.String("member-id", hexID))
			return nil
		case PromoteAlreadyVoter:
			m.Log.Info("this member is already a voting member", zap.String("reason", "etcd answers that it is not a learner: an earlier promote took effect and its reply was lost"),
				zap.String("member-id", hexID), zap.Error(err))
			return nil
		case PromoteGone:
			return fmt.Errorf("promoting learner %s: the cluster no longer has this member (it was removed while catching up): %w", hexID, err)
		case PromoteGaveUp:
			// A last look: the final promote may have taken effect without a reply.
			if role, _ := roleOf(context.Background(), cli, id); role == RoleVoter {
				m.Log.Info("this member is already a voting member", zap.String("reason", "the member list shows it voting although no promote reply arrived"), zap.String("member-id", hexID))
				return nil
			}
			why := v.Reason
			if why == "" {
				why = "the start was cancelled"
			}
			return fmt.Errorf("promoting learner %s: it did not catch up: %s: %w", hexID, why, err)
		}
		if now := m.Now(); now.Sub(lastLog) >= ProgressLogEvery {
			lastLog = now
			p := state.Last
			m.Log.Info("learner catching up before promotion", zap.String("member-id", hexID), zap.Uint64("applied-index", p.Applied), zap.Uint64("committed-index", p.Committed),
				zap.Int64("snapshot-bytes", p.SnapshotBytes), zap.Int64("peer-bytes", p.PeerBytes), zap.Duration("since-progress", now.Sub(state.LastProgress).Round(time.Second)), zap.NamedError("promote-error", err))
		}
		backoff = RequestBackoff(err, backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
}

// joinClient returns the join's client, or a new one to the desired members for a learner restarted with its
// data (no join in this start).
func (m *Manager) joinClient(ctx context.Context, st *Start) (*clientv3.Client, func(), error) {
	if st.cli != nil {
		return st.cli, func() {}, nil
	}
	desired, err := m.Peers.Members(ctx)
	if err != nil {
		return nil, nil, err
	}
	cli, err := etcdclient.New(m.Config, peers.ClientURLs(desired), 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	return cli, func() { cli.Close() }, nil
}

// rollbackJoin undoes a join whose learner did not become a voting member (DecideRollback): it removes the
// learner and moves its data aside, and leaves a member that already votes alone.
func (m *Manager) rollbackJoin(st *Start) error {
	defer st.release()
	if st.Kind != KindJoin || st.cli == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	role, lerr := roleOf(ctx, st.cli, st.learnerID)
	rb := DecideRollback(role)
	m.Log.Warn("rolling back the join", zap.String("member-id", strconv.FormatUint(st.learnerID, 16)), zap.String("role", role.String()),
		zap.String("reason", rb.Reason), zap.NamedError("member-list-error", lerr))
	var errs []error
	if rb.RemoveMember {
		if _, err := st.cli.MemberRemove(ctx, st.learnerID); err != nil {
			// Without the removal the data may still belong to a member: keep it.
			return fmt.Errorf("removing learner %x: %w", st.learnerID, err)
		}
		m.Log.Warn("removed this learner from the cluster", zap.String("reason", "the join did not complete"))
	}
	if rb.MoveDataAside {
		if has, _ := HasData(m.Config.Paths.DataDir); has {
			if err := m.moveAside("the data dir belongs to a learner that was rolled back", "rolled-back-learner"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// LockReleaseTimeout bounds releasing the membership lock (delete the lock key, revoke the session's lease).
// If it passes, the lease still expires on its own after its TTL, so the lock never stays held for good.
const LockReleaseTimeout = 10 * time.Second

// releaseLock deletes the lock key and closes the session within LockReleaseTimeout.
func releaseLock(mu *concurrency.Mutex, session *concurrency.Session) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if mu != nil {
			ctx, cancel := context.WithTimeout(context.Background(), LockReleaseTimeout/2)
			_ = mu.Unlock(ctx)
			cancel()
		}
		if session != nil {
			// Session.Close revokes the lease with a deadline of the lease TTL; do not wait that long.
			session.Orphan()
			ctx, cancel := context.WithTimeout(context.Background(), LockReleaseTimeout/2)
			_, _ = session.Client().Revoke(ctx, session.Lease())
			cancel()
		}
	}()
	select {
	case <-done:
	case <-time.After(LockReleaseTimeout):
	}
}
