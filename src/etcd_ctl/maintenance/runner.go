package maintenance

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// LockKey serialises defragmentation across etcd_ctl processes (the loop's coordinator and operators running
// `etcd_ctl defrag`). It is not the membership lock: a defragmentation may run while a member joins.
const LockKey = "/etcd-release/maintenance-lock"

// ErrLocked means another etcd_ctl holds LockKey.
var ErrLocked = errors.New("another etcd_ctl is defragmenting (it holds " + LockKey + ")")

// Hooks let other packages (metrics) observe what maintenance does. Every field is optional.
type Hooks struct {
	// OnCompact is called after a compaction etcd_ctl made (not etcd's automatic ones).
	OnCompact func(revision int64, err error)
	// OnDefrag is called after each defragmentation.
	OnDefrag func(r DefragResult, err error)
	// OnDisarm is called after the NOSPACE alarm was disarmed.
	OnDisarm func()
}

// Runner carries out steps against a cluster.
type Runner struct {
	Config *config.Config
	// Client reaches the cluster (preferably every member's endpoint).
	Client *clientv3.Client
	Log    *zap.Logger
	Hooks  Hooks
}

// execute carries out one step and logs it as a decision with its reason.
func (r *Runner) execute(ctx context.Context, s Step, rec *Recovery, c Cluster) error {
	lg := r.Log.With(zap.String("action", string(s.Action)), zap.String("reason", s.Reason))
	switch s.Action {
	case Compact:
		err := compact(ctx, r.Client, s.Revision)
		if r.Hooks.OnCompact != nil {
			r.Hooks.OnCompact(s.Revision, err)
		}
		if err != nil {
			return fmt.Errorf("compacting to revision %d: %w", s.Revision, err)
		}
		if rec != nil {
			rec.CompactedAt = s.Revision
		}
		lg.Info("compacted the keyspace", zap.Int64("revision", s.Revision))
	case MoveLeader:
		if err := moveLeader(ctx, r.Config, s.Target, s.To); err != nil {
			return err
		}
		lg.Info("moved leadership away before defragmenting", zap.String("from", s.Target.Name), zap.String("to", s.To.Name))
	case Defrag:
		res, err := defragMember(ctx, r.Client, s.Target, s.Reason)
		if r.Hooks.OnDefrag != nil {
			r.Hooks.OnDefrag(res, err)
		}
		if err != nil {
			return err
		}
		if rec != nil {
			rec.Defragmented[s.Target.ID] = true
		}
		lg.Info("defragmented member", zap.String("member", s.Target.Name), zap.Int64("db-size-before", res.Before),
			zap.Int64("db-size-after", res.After), zap.Int64("reclaimed-bytes", res.Reclaimed()), zap.Duration("took", res.Took))
	case Disarm:
		if err := disarmNospace(ctx, r.Client, c); err != nil {
			return err
		}
		if r.Hooks.OnDisarm != nil {
			r.Hooks.OnDisarm()
		}
		lg.Info("disarmed the NOSPACE alarm")
	}
	return nil
}

// Recover runs NOSPACE recovery until the alarm is disarmed, nothing is left to do, or a step is blocked; it
// returns the last step. It takes no lock (with the alarm raised, the lock's write would fail). rec carries what
// earlier attempts of the same recovery did (nil: start afresh), so a blocked member is not defragmented again
// at every check.
func (r *Runner) Recover(ctx context.Context, rec *Recovery) (Step, error) {
	th := ThresholdsFrom(r.Config.Etcd)
	if rec == nil {
		rec = &Recovery{}
	}
	if rec.Defragmented == nil {
		rec.Defragmented = map[uint64]bool{}
	}
	for i := 0; i < 32; i++ {
		c, err := Gather(ctx, r.Client)
		if err != nil {
			return Step{}, err
		}
		s := NextRecovery(c, th, *rec)
		switch s.Action {
		case None:
			return s, nil
		case Blocked:
			r.Log.Warn("NOSPACE recovery cannot continue", zap.String("reason", s.Reason))
			return s, nil
		}
		if err := r.execute(ctx, s, rec, c); err != nil {
			return s, err
		}
		if s.Action == Disarm {
			return s, nil
		}
	}
	return Step{}, errors.New("NOSPACE recovery did not finish within 32 steps")
}

// DefragNext carries out ordinary defragmentation of at most one member (moving leadership away first if it
// needs to), holding LockKey. It returns the decision made.
func (r *Runner) DefragNext(ctx context.Context) (Step, error) {
	th := ThresholdsFrom(r.Config.Etcd)
	var last Step
	err := r.withLock(ctx, func() error {
		for i := 0; i < 3; i++ { // a leader move, then the defragmentation
			c, err := Gather(ctx, r.Client)
			if err != nil {
				return err
			}
			last = NextDefrag(c, th)
			if last.Action == None || last.Action == Blocked {
				return nil
			}
			if err := r.execute(ctx, last, nil, c); err != nil {
				return err
			}
			if last.Action == Defrag {
				return nil
			}
		}
		return nil
	})
	return last, err
}

// DefragAll defragments every answering member, one at a time in member ID order, whatever its fragmentation
// (what an operator asks for with `etcd_ctl defrag`). A member is skipped when the other voters are not a healthy
// quorum; a leader hands leadership over first. With the NOSPACE alarm raised it runs Recover instead.
func (r *Runner) DefragAll(ctx context.Context) ([]DefragResult, []Step, error) {
	c, err := Gather(ctx, r.Client)
	if err != nil {
		return nil, nil, err
	}
	var results []DefragResult
	var skipped []Step
	onDefrag := r.Hooks.OnDefrag
	defer func() { r.Hooks.OnDefrag = onDefrag }()
	r.Hooks.OnDefrag = func(res DefragResult, err error) {
		if err == nil {
			results = append(results, res)
		}
		if onDefrag != nil {
			onDefrag(res, err)
		}
	}
	if c.Nospace() {
		r.Log.Warn("the NOSPACE alarm is raised: running NOSPACE recovery (compact, defragment, disarm) without the maintenance lock",
			zap.String("reason", "every write, the lock's included, fails while the alarm is raised"))
		s, err := r.Recover(ctx, nil)
		return results, []Step{s}, err
	}
	ids := make([]uint64, 0, len(c.Members))
	for _, m := range c.Members {
		ids = append(ids, m.ID)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	err = r.withLock(ctx, func() error {
		for _, id := range ids {
			s, err := r.defragMemberNow(ctx, id)
			if err != nil {
				return err
			}
			if s.Action != Defrag {
				skipped = append(skipped, s)
			}
		}
		return nil
	})
	return results, skipped, err
}

// defragMemberNow defragments member id (the operator's request), moving leadership away first.
func (r *Runner) defragMemberNow(ctx context.Context, id uint64) (Step, error) {
	for i := 0; i < 3; i++ {
		c, err := Gather(ctx, r.Client)
		if err != nil {
			return Step{}, err
		}
		s := OperatorDefrag(c, id)
		if s.Action == None || s.Action == Blocked {
			r.Log.Warn("not defragmenting member", zap.String("member", s.Target.Name), zap.String("reason", s.Reason))
			return s, nil
		}
		if err := r.execute(ctx, s, nil, c); err != nil {
			return s, err
		}
		if s.Action == Defrag {
			return s, nil
		}
	}
	return Step{}, fmt.Errorf("member %x is still the leader after moving leadership away twice", id)
}

// withLock runs fn holding LockKey, or returns ErrLocked at once when another etcd_ctl holds it.
func (r *Runner) withLock(ctx context.Context, fn func() error) error {
	// The session's lease outlives a slow defragmentation's keep-alive gaps.
	s, err := concurrency.NewSession(r.Client, concurrency.WithTTL(60), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("opening a session for %s: %w", LockKey, err)
	}
	defer s.Close()
	mu := concurrency.NewMutex(s, LockKey)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := mu.TryLock(lctx); err != nil {
		if errors.Is(err, concurrency.ErrLocked) {
			return ErrLocked
		}
		return fmt.Errorf("taking %s: %w", LockKey, err)
	}
	defer func() {
		uctx, ucancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ucancel()
		_ = mu.Unlock(uctx)
	}()
	return fn()
}
