package membership

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
)

// CheckInterval is how often a member in a cluster without client writes checks whether the deployment's data
// answers elsewhere.
const CheckInterval = 5 * time.Second

// WatchNewCluster keeps checking (DecideRunning), for as long as this member's cluster holds no client writes,
// whether another cluster of the deployment answers. Every start kind is watched: a creator restarted (monit,
// reboot) on the cluster it created alone is as much in the way as one that has just created it. A cluster created while the members
// holding the data were down is only discovered once they restart, which can be any time later. The returned
// channel delivers an ActStepDown decision and closes; it closes without one when ctx ends or once the cluster
// holds client writes (from then on it is data, and members restarting with other data report any conflict
// themselves). A conflict seen here is recorded for `status` and `wait-ready`; nothing is discarded.
func (m *Manager) WatchNewCluster(ctx context.Context, st *Start, srv *etcdserver.Server) <-chan Decision {
	out := make(chan Decision, 1)
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
			if d.Reason != lastReason {
				m.Log.Info("checked for another cluster of this deployment", zap.String("decision", d.Action.String()), zap.String("reason", d.Reason))
				lastReason = d.Reason
			}
			switch {
			case d.Action == ActStepDown:
				out <- d
				return
			case d.Action == ActConflict:
				_ = WriteConflict(m.Config, d.Conflict.Error())
			case in.OwnClientWrites:
				ClearConflict(m.Config)
				m.Log.Info("no longer checking for another cluster of this deployment", zap.String("reason", "this member's cluster holds client writes"))
				return
			}
		}
	}()
	return out
}

// checkRunning gathers RunningInput and decides; ok is false when this member's own store could not be read.
// The own store is read serializably: a member whose cluster lost its leader must still be able to decide.
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
	resp, err := cli.Get(cctx, ClusterKey, clientv3.WithSerializable())
	if err != nil {
		return d, in, false
	}
	writes, err := clientWrites(cctx, cli, resp.Header.Revision, true)
	if err != nil {
		return d, in, false
	}
	e := srv.Etcd().Server
	in = RunningInput{OwnClusterID: uint64(e.Cluster().ID()), OwnNonce: st.nonce, OwnRevision: resp.Header.Revision, OwnClientWrites: writes,
		OwnHasLeader: e.Leader() != 0, Created: st.creator, Peers: Views(statuses), SelfName: c.SelfName(), DataDir: c.Paths.DataDir}
	return DecideRunning(in), in, true
}

// StepDown moves the data of a cluster without client writes aside after etcd stopped, so that the next
// Prepare joins the cluster that holds the deployment's data.
func (m *Manager) StepDown(d Decision) error {
	return m.moveAside(d.Reason, "stepped-down-new-cluster")
}
