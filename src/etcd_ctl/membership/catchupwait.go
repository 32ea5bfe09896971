package membership

import (
	"context"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
)

// Progress is etcdserver's sample of a starting member, judged here.
type Progress = etcdserver.Progress

const (
	// ProgressLogEvery is how often a starting member logs its catch-up progress.
	ProgressLogEvery = 5 * time.Second
	// NudgeEvery bounds the writes that unstick a member after a snapshot (see StuckAfterSnapshot).
	NudgeEvery = 5 * time.Second
	// nudgeLeaseTTL is the TTL of the lease a nudge grants: the grant is the write; the lease expires unused.
	nudgeLeaseTTL = 60
)

// CatchUpRule returns the bounds of a start's waits: at least etcd.start_timeout_in_seconds, as before, and
// past it for as long as the member shows progress within etcd.join_stall_timeout_in_seconds.
func (m *Manager) CatchUpRule() CatchUpRule {
	e := m.Config.Etcd
	return CatchUpRule{Stall: time.Duration(e.JoinStallTimeoutInSeconds) * time.Second, AtLeast: time.Duration(e.StartTimeoutInSeconds) * time.Second}
}

// ReadyWaiter is the wait for etcd to become ready in start st (etcdserver.StartWaiting): it judges each sample
// with JudgeCatchUp, logs progress every ProgressLogEvery, and nudges the cluster while StuckAfterSnapshot.
// Call the returned func once the wait is over.
func (m *Manager) ReadyWaiter(ctx context.Context, st *Start) (etcdserver.Waiter, func()) {
	rule := m.CatchUpRule()
	nudger := &nudger{m: m, st: st}
	var state CatchUp
	var lastLog, lastNudge time.Time
	wait := func(p Progress) error {
		now := m.Now()
		v := JudgeCatchUp(state, p, now, rule)
		state = v.State
		if v.GiveUp {
			return fmt.Errorf("%w within %s (etcd.start_timeout_in_seconds) and made no progress for etcd.join_stall_timeout_in_seconds (%s, or the start timeout if shorter) in this %s: %s; "+
				"check that the other members are running and reachable on their peer URLs", etcdserver.ErrNotReady, rule.AtLeast, rule.Stall, st.Kind, v.Reason)
		}
		if v.Nudge && now.Sub(lastNudge) >= NudgeEvery {
			lastNudge = now
			nudger.nudge(ctx, p)
		}
		if now.Sub(lastLog) >= ProgressLogEvery {
			lastLog = now
			m.Log.Info("waiting for etcd to become ready", zap.String("kind", st.Kind), zap.Uint64("applied-index", p.Applied),
				zap.Uint64("committed-index", p.Committed), zap.Int64("snapshot-bytes", p.SnapshotBytes), zap.Int64("peer-bytes", p.PeerBytes),
				zap.Duration("since-progress", now.Sub(state.LastProgress).Round(time.Second)), zap.Duration("waited", now.Sub(state.Started).Round(time.Second)))
		}
		return nil
	}
	return wait, nudger.close
}

// nudger writes to the cluster through the join's client, or for a restart through a client of its own to the
// other members (this member's client port serves nothing before it is ready).
type nudger struct {
	m   *Manager
	st  *Start
	cli *clientv3.Client
	own bool
}

func (n *nudger) nudge(ctx context.Context, p Progress) {
	cli, err := n.client(ctx)
	if err == nil {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var resp *clientv3.LeaseGrantResponse
		resp, err = cli.Grant(gctx, nudgeLeaseTTL)
		cancel()
		if err == nil {
			n.m.Log.Info("wrote one entry to the cluster so that this member's etcd accepts its own publish",
				zap.String("reason", fmt.Sprintf("etcd applied a snapshot (committed index %d) but its request gate still sees applied index %d, so it refuses every proposal "+
					"with \"too many requests\" until it applies an entry written after the snapshot", p.Committed, p.Applied)),
				zap.String("entry", "lease grant "+strconv.FormatInt(int64(resp.ID), 16)+", expires unused"))
			return
		}
	}
	n.m.Log.Warn("could not write to the cluster to unstick this member; retrying", zap.Error(err))
}

func (n *nudger) client(ctx context.Context) (*clientv3.Client, error) {
	if n.st.cli != nil {
		return n.st.cli, nil
	}
	if n.cli != nil {
		return n.cli, nil
	}
	desired, err := n.m.Peers.Members(ctx)
	if err != nil {
		return nil, err
	}
	others := peers.ClientURLs(peers.Others(desired))
	if len(others) == 0 {
		return nil, fmt.Errorf("no other member to write to")
	}
	if n.cli, err = etcdclient.New(n.m.Config, others, 5*time.Second); err != nil {
		return nil, err
	}
	n.own = true
	return n.cli, nil
}

func (n *nudger) close() {
	if n.own && n.cli != nil {
		n.cli.Close()
	}
}
