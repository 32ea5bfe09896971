package membership

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
)

// startEtcd runs a real one-member embedded etcd (through etcdserver, as `etcd_ctl start` does) on a random
// loopback address.
func startEtcd(t *testing.T, dataDir string) (*etcdserver.Server, *config.Config) {
	t.Helper()
	addr := net.IPv4(127, byte(20+rand.IntN(200)), byte(1+rand.IntN(250)), byte(1+rand.IntN(250))).String()
	c := config.Default()
	c.Instance = config.Instance{Deployment: "backend-test", Name: "etcd", Address: addr, IP: addr, Bootstrap: true}
	c.Etcd.ClientIP, c.Etcd.PeerIP = addr, addr
	c.Etcd.Machines = []string{addr}
	c.Etcd.RequireSSL, c.Etcd.PeerRequireSSL = false, false
	c.Paths = config.Paths{DataDir: dataDir, RunDir: t.TempDir(), LogDir: t.TempDir()}
	ecfg, err := etcdserver.BuildConfig(&c, etcdserver.Plan{State: etcdserver.StateNew, InitialCluster: []config.Member{c.Self()}, Token: TokenWithNonce(c.ClusterToken(), NewNonce())})
	require.NoError(t, err)
	srv, err := etcdserver.Start(context.Background(), ecfg, time.Minute, zap.NewNop())
	require.NoError(t, err)
	return srv, &c
}

func TestClientWritesAndLocalViewAgainstRealEtcd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	srv, c := startEtcd(t, dir)
	cli, err := etcdclient.New(c, []string{c.Self().ClientURL}, 5*time.Second)
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	writes := func() bool {
		resp, err := cli.Get(ctx, ClusterKey)
		require.NoError(t, err)
		w, err := ClientWrites(ctx, cli, resp.Header.Revision)
		require.NoError(t, err)
		return w
	}
	require.False(t, writes(), "a fresh cluster holds no client writes")
	for i := 0; i < 5; i++ {
		_, err := cli.Put(ctx, fmt.Sprintf("%slock/%d", OwnPrefix, i), "x")
		require.NoError(t, err)
	}
	_, err = cli.Delete(ctx, OwnPrefix+"lock/", clientv3.WithPrefix())
	require.NoError(t, err)
	require.False(t, writes(), "etcd_ctl's own keys are not client writes")
	_, err = cli.Put(ctx, "/app/k", "v")
	require.NoError(t, err)
	_, err = cli.Delete(ctx, "/app/k")
	require.NoError(t, err)
	_, err = cli.Put(ctx, OwnPrefix+"after", "x")
	require.NoError(t, err)
	require.True(t, writes(), "a client key that was written and deleted is a client write")
	resp, err := cli.Get(ctx, ClusterKey)
	require.NoError(t, err)
	rev := resp.Header.Revision

	srv.Stop(context.Background())
	v, err := ReadLocalView(dir)
	require.NoError(t, err)
	require.True(t, v.HasData)
	require.Equal(t, rev, v.Revision)
	require.True(t, v.ClientWrites, "the stored backend holds the deleted client key's tombstone")
	require.NotZero(t, v.RaftIndex)
	require.NotZero(t, v.RaftTerm)
}

func TestLocalViewOfAFreshClusterHasNoClientWrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	srv, c := startEtcd(t, dir)
	cli, err := etcdclient.New(c, []string{c.Self().ClientURL}, 5*time.Second)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cli.Put(ctx, ClusterKey, `{"creation_nonce":"n"}`)
	require.NoError(t, err)
	cli.Close()
	srv.Stop(context.Background())
	v, err := ReadLocalView(dir)
	require.NoError(t, err)
	require.True(t, v.HasData)
	require.Equal(t, int64(2), v.Revision)
	require.False(t, v.ClientWrites)

	none, err := ReadLocalView(t.TempDir())
	require.NoError(t, err)
	require.False(t, none.HasData)
}
