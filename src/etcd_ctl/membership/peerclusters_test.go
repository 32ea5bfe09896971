package membership

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// The peer URL of a real member answers with its cluster ID; a stopped one gives no answer.
func TestProbePeerClustersOfARealMember(t *testing.T) {
	srv, c := startEtcd(t, filepath.Join(t.TempDir(), "etcd"))
	id := uint64(srv.Etcd().Server.Cluster().ID())
	self := c.Self()
	got := ProbePeerClusters(context.Background(), c, []config.Member{self}, 5*time.Second)
	require.Equal(t, id, got[0].ClusterID, "%+v", got[0])
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Stop(stopCtx)
	got = ProbePeerClusters(context.Background(), c, []config.Member{self}, 2*time.Second)
	require.Zero(t, got[0].ClusterID)
	require.NotEmpty(t, got[0].Detail)
}
