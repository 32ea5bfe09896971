package integration

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/testkit/toolcache"
)

// TestRealEtcdctlAgainstTLSCluster talks to a 3-member TLS cluster with etcd's own etcdctl, as an operator
// would on a VM, using the client certificate files etcd_ctl materialised.
func TestRealEtcdctlAgainstTLSCluster(t *testing.T) {
	root, err := toolcache.RepoRoot()
	require.NoError(t, err)
	etcdctl, err := toolcache.Etcdctl.Path(root)
	require.NoError(t, err)

	c := newCluster(t, 3, withTLS(true, true))
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	tlsDir := c.config(0).Paths.TLSDir()
	var eps []string
	for i := 0; i < 3; i++ {
		eps = append(eps, c.config(i).Self().ClientURL)
	}
	run := func(withCert bool, args ...string) (string, error) {
		base := []string{"--endpoints", strings.Join(eps, ","), "--cacert", tlsDir + "/ca.crt", "--dial-timeout", "3s", "--command-timeout", "5s"}
		if withCert {
			base = append(base, "--cert", tlsDir+"/client.crt", "--key", tlsDir+"/client.key")
		}
		out, err := exec.Command(etcdctl, append(base, args...)...).CombinedOutput()
		return string(out), err
	}

	out, err := run(true, "put", "/from-etcdctl", "hello")
	require.NoError(t, err, out)
	require.Equal(t, "hello", c.get(2, "/from-etcdctl"))

	out, err = run(true, "member", "list", "-w", "json")
	require.NoError(t, err, out)
	var list struct {
		Members []struct {
			Name      string `json:"name"`
			IsLearner bool   `json:"isLearner"`
		} `json:"members"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Members, 3)
	for _, m := range list.Members {
		require.False(t, m.IsLearner)
		require.Contains(t, []string{"etcd-0", "etcd-1", "etcd-2"}, m.Name)
	}

	out, err = run(true, "endpoint", "health", "--cluster")
	require.NoError(t, err, out)
	require.Equal(t, 3, strings.Count(out, "is healthy"), out)

	out, err = run(false, "get", "/from-etcdctl")
	require.Error(t, err, "a client without a certificate must be refused: %s", out)
}
