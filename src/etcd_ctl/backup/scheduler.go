package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// Keys in the cluster's keyspace, under etcd_ctl's own prefix.
const (
	// LockKey is the prefix of the lock a member holds while it takes a scheduled snapshot.
	LockKey = "/etcd-release/backup-lock"
	// LastKey records the cluster's most recent snapshot (a Last as JSON), so that whichever member holds the
	// lock next knows whether one is due: the interval is the cluster's, not each member's.
	LastKey = "/etcd-release/backup/last"
)

// Scheduler takes the cluster's scheduled snapshots from one member. Every member runs one; a snapshot is
// taken by the member that finds one due and wins the lock, and recorded under LastKey, so the cluster takes
// one per interval however many members run a scheduler, and never two at once.
type Scheduler struct {
	// Client talks to this member only; Endpoint is its client URL.
	Client   *clientv3.Client
	Endpoint string
	Member   string
	Interval time.Duration
	// CheckEvery is how often the scheduler looks whether a snapshot is due (the first look is after one
	// CheckEvery, so a starting member does not add a snapshot to its start).
	CheckEvery time.Duration
	Options    Options
	Log        *zap.Logger
	// AfterTake, if set, runs after a snapshot is written and before it is recorded (the off-VM copy).
	AfterTake func(context.Context, *Meta)
}

// Run checks every CheckEvery until ctx ends. Failures are logged; the next check tries again.
func (s *Scheduler) Run(ctx context.Context) {
	if s.Interval <= 0 {
		s.Log.Info("scheduled snapshots are off", zap.String("reason", "etcd.backup.interval_in_minutes is 0"))
		return
	}
	t := time.NewTicker(s.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.Log.Warn("scheduled snapshot failed; trying again at the next check", zap.Error(err), zap.Duration("next-check-in", s.CheckEvery))
		}
	}
}

// Tick takes a snapshot if one is due and no other member is taking one; it returns the snapshot taken, if any.
func (s *Scheduler) Tick(ctx context.Context) (*Meta, error) {
	last, err := ReadLast(ctx, s.Client)
	if err != nil {
		return nil, err
	}
	if due, _ := Due(s.now(), last, s.Interval); !due {
		return nil, nil
	}
	session, err := concurrency.NewSession(s.Client, concurrency.WithTTL(60), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("opening a session for the backup lock: %w", err)
	}
	defer session.Close()
	mu := concurrency.NewMutex(session, LockKey)
	if err := mu.TryLock(ctx); err != nil {
		if errors.Is(err, concurrency.ErrLocked) {
			s.Log.Debug("another member is taking the scheduled snapshot")
			return nil, nil
		}
		return nil, fmt.Errorf("taking the backup lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = mu.Unlock(uctx)
		cancel()
	}()
	// Another member may have finished one between the first read and the lock.
	if last, err = ReadLast(ctx, s.Client); err != nil {
		return nil, err
	}
	due, reason := Due(s.now(), last, s.Interval)
	if !due {
		return nil, nil
	}
	s.Log.Info("taking a scheduled snapshot", zap.String("reason", reason))
	m, err := Take(ctx, s.Client, s.Endpoint, s.Options)
	if err != nil {
		return nil, err
	}
	if s.AfterTake != nil {
		s.AfterTake(ctx, m)
	}
	return m, RecordLast(ctx, s.Client, Last{Time: m.Time, Revision: m.Revision, Member: s.Member, File: m.Path(), CopiedTo: m.CopiedTo})
}

func (s *Scheduler) now() time.Time {
	if s.Options.Now != nil {
		return s.Options.Now()
	}
	return time.Now()
}

// ReadLast reads the cluster's record of its most recent snapshot (nil if none).
func ReadLast(ctx context.Context, cli *clientv3.Client) (*Last, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := cli.Get(cctx, LastKey)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", LastKey, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var l Last
	if err := json.Unmarshal(resp.Kvs[0].Value, &l); err != nil {
		// A garbled record must not stop snapshots: treat it as none, which makes one due.
		return nil, nil
	}
	return &l, nil
}

// RecordLast stores l under LastKey.
func RecordLast(ctx context.Context, cli *clientv3.Client, l Last) error {
	b, _ := json.Marshal(l)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Put(cctx, LastKey, string(b)); err != nil {
		return fmt.Errorf("recording the snapshot under %s: %w", LastKey, err)
	}
	return nil
}
