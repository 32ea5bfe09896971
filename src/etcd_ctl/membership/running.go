package membership

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/status"
)

// CheckInterval is how often the creator of a cluster checks whether the deployment's data answers elsewhere.
const CheckInterval = 5 * time.Second

// WatchCreated keeps checking, for as long as this member runs the cluster it created in this start, whether
// another cluster of the deployment answers (DecideRunning). A cluster created while the members holding the
// data were down is only discovered once they restart, which can be any time later. The returned channel
// delivers an ActStepDown decision and closes; it closes without one when ctx ends. Conflicts are recorded
// for `status` and `wait-ready` and the member keeps running: nothing is discarded.
func (m *Manager) WatchCreated(ctx context.Context, st *Start, srv *etcdserver.Server) <-chan Decision {
	out := make(chan Decision, 1)
	if st.Kind != KindBootstrap {
		close(out)
		return out
	}
	go func() {
		defer close(out)
		lastReason := ""
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(CheckInterval):
			}
			d, in, ok := m.checkRunning(ctx, st, srv)
			if !ok {
				continue
			}
			if d.Action == ActKeep && in.OwnMembers > 1 {
				// Others joined: the cluster is the deployment's now, and a member holding other data that
				// restarts reports any conflict itself (Decide).
				m.Log.Info("no longer checking for another cluster of this deployment", zap.String("reason", "other members joined the cluster this member created"))
				return
			}
			if d.Reason != lastReason {
				m.Log.Info("checked for another cluster of this deployment", zap.String("decision", d.Action.String()), zap.String("reason", d.Reason))
				lastReason = d.Reason
			}
			switch d.Action {
			case ActStepDown:
				out <- d
				return
			case ActConflict:
				_ = status.WriteConflict(m.Config, d.Conflict.Error())
			default:
				status.ClearConflict(m.Config)
			}
		}
	}()
	return out
}

// checkRunning gathers RunningInput and decides; ok is false when this member's own cluster could not be read.
func (m *Manager) checkRunning(ctx context.Context, st *Start, srv *etcdserver.Server) (d Decision, in RunningInput, ok bool) {
	c := m.Config
	desired, err := m.Peers.Members(ctx)
	if err != nil {
		return d, in, false
	}
	statuses := Probe(ctx, c, peers.Others(desired), m.ProbeTimeout)
	cli, err := etcdclient.New(c, []string{c.Self().ClientURL}, 5*time.Second)
	if err != nil {
		return d, in, false
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := cli.Get(cctx, ClusterKey)
	if err != nil {
		return d, in, false
	}
	writes, err := ClientWrites(cctx, cli, resp.Header.Revision)
	if err != nil {
		return d, in, false
	}
	e := srv.Etcd().Server
	in = RunningInput{OwnClusterID: uint64(e.Cluster().ID()), OwnNonce: st.nonce, OwnRevision: resp.Header.Revision,
		OwnClientWrites: writes, OwnMembers: len(e.Cluster().Members()), Peers: Views(statuses), SelfName: c.SelfName(), DataDir: c.Paths.DataDir}
	return DecideRunning(in), in, true
}

// StepDown moves the data of a cluster this member created aside after etcd stopped, so that the next Prepare
// joins the cluster that holds the deployment's data.
func (m *Manager) StepDown(d Decision) error {
	return m.moveAside(d.Reason, "stepped-down-new-cluster")
}
