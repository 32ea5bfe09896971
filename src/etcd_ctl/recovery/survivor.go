package recovery

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
)

// SurvivorResult says what RecoverFromSurvivor did.
type SurvivorResult struct {
	ClusterID string `json:"cluster_id"`
	MemberID  string `json:"member_id"`
	// Silent are peers that gave no answer when checked (they must stay stopped or be wiped).
	Silent []string `json:"silent_peers,omitempty"`
}

// RecoverFromSurvivor starts this member's data once with etcd's force-new-cluster (embed.Config
// ForceNewCluster: etcd rewrites the membership in its WAL to this member alone, keeping the cluster ID, member
// ID and every key), waits until it leads its one-member cluster, and stops it again. The next `etcd_ctl
// start` is a normal restart; the other members, once wiped (or with data of members no longer in the
// cluster, which start moves aside), join it as learners through the normal join path.
func RecoverFromSurvivor(ctx context.Context, c *config.Config, lg *zap.Logger) (*SurvivorResult, error) {
	if _, err := c.Validate(time.Now()); err != nil {
		return nil, fmt.Errorf("invalid configuration (nothing was changed):\n%w", err)
	}
	t, err := Inspect(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := DecideSurvivor(t); err != nil {
		return nil, err
	}
	res := &SurvivorResult{Silent: Silent(t.Peers)}
	if err := etcdserver.WriteTLSFiles(c); err != nil {
		return nil, err
	}
	cfg, err := etcdserver.BuildConfig(c, etcdserver.Plan{State: etcdserver.StateExisting, InitialCluster: []config.Member{c.Self()}})
	if err != nil {
		return nil, err
	}
	cfg.ForceNewCluster = true
	lg.Warn("starting this member with force-new-cluster", zap.String("reason", "operator ran etcd_ctl recover-from-survivor: quorum is lost and this member's data survived"))
	srv, err := etcdserver.Start(ctx, cfg, etcdserver.ReadyTimeout(c), lg)
	if err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		srv.Stop(sctx)
		cancel()
	}()
	e := srv.Etcd().Server
	res.ClusterID, res.MemberID = e.Cluster().ID().String(), e.MemberID().String()
	deadline := time.Now().Add(etcdserver.ReadyTimeout(c))
	for e.Leader() != e.MemberID() {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("this member did not become the leader of its one-member cluster within %s", etcdserver.ReadyTimeout(c))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range e.Cluster().Members() {
		if m.ID != e.MemberID() {
			return nil, fmt.Errorf("after force-new-cluster the membership still lists %s", m.ID)
		}
	}
	lg.Info("this member is now a one-member cluster with its data; start it normally", zap.String("cluster-id", res.ClusterID), zap.String("member-id", res.MemberID))
	return res, nil
}
