package integration

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

func TestSingleMemberTLSStartsServesAndStopsGracefully(t *testing.T) {
	c := newCluster(t, 1, withTLS(true, true))
	c.start(0)
	c.waitReady(0, time.Minute)
	c.requireHealthy(1)
	for i := 0; i < 20; i++ {
		c.put(0, "/k", "v")
	}
	require.Equal(t, "v", c.get(0, "/k"))
	logs, err := os.ReadFile(c.layout.LogPath(0))
	require.NoError(t, err)
	require.False(t, strings.Contains(string(logs), `"request stats"`), "fast requests are not logged as slow (etcd's 300ms default applies)")

	pid, err := os.ReadFile(c.config(0).Paths.PidFile())
	require.NoError(t, err, "start writes a pidfile for monit")
	require.Equal(t, c.procs[0].Pid(), atoi(t, strings.TrimSpace(string(pid))))

	start := time.Now()
	c.stop(0)
	require.Less(t, time.Since(start), 30*time.Second)
	_, err = os.Stat(c.config(0).Paths.PidFile())
	require.True(t, os.IsNotExist(err), "pidfile removed on exit")
}

func TestClientTLSRefusesClientsWithoutCertificate(t *testing.T) {
	c := newCluster(t, 1, withTLS(true, false))
	c.start(0)
	c.waitReady(0, time.Minute)
	cfg := c.config(0)
	self := cfg.Self()

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(cfg.Etcd.CACert)))
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	_, err := noCert.Get(self.ClientURL + "/version")
	require.Error(t, err, "a client without a certificate must be refused")

	plain := &http.Client{Timeout: 5 * time.Second}
	resp, err := plain.Get(strings.Replace(self.ClientURL, "https://", "http://", 1) + "/version")
	if err == nil {
		resp.Body.Close()
		require.NotEqual(t, http.StatusOK, resp.StatusCode, "no plaintext client listener may exist")
	}

	pair, err := tls.X509KeyPair([]byte(cfg.Etcd.ClientCert), []byte(cfg.Etcd.ClientKey.Value()))
	require.NoError(t, err)
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	resp, err = withCert.Get(self.ClientURL + "/version")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestThreeMembersWriteReadFailoverAndRestartWithData(t *testing.T) {
	c := newCluster(t, 3, withTLS(false, false))
	for i := 0; i < 3; i++ {
		c.start(i) // all at once: only the bootstrap instance may create the cluster
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	clusterID := c.requireHealthy(3)
	c.put(0, "/written-through-0", "hello")
	require.Equal(t, "hello", c.get(2, "/written-through-0"))
	ids := c.memberIDs(0)

	// SIGTERM the leader: the rest keep serving.
	leader := c.leader()
	c.stop(leader)
	other := (leader + 1) % 3
	c.put(other, "/after-leader-stop", "still-serving")
	require.Equal(t, "still-serving", c.get((leader+2)%3, "/after-leader-stop"))
	c.start(leader)
	c.waitReady(leader, time.Minute)

	// kill -9 one member and restart it with its data: same member ID, same cluster, data intact.
	victim := (leader + 1) % 3
	c.kill(victim) // it may be the leader: a write may time out during the election, so retry it
	require.Eventually(t, func() bool { return c.tryPut((victim+1)%3, "/while-down", "x") == nil }, 20*time.Second, 200*time.Millisecond)
	c.start(victim)
	c.waitReady(victim, time.Minute)
	require.Equal(t, clusterID, c.requireHealthy(3))
	require.Equal(t, ids, c.memberIDs(victim), "restarts keep member identity")
	require.Equal(t, "x", c.get(victim, "/while-down"))
	require.Equal(t, "hello", c.get(victim, "/written-through-0"))
}

func TestThreeMembersTLSWithTwoCABundle(t *testing.T) {
	c := newCluster(t, 3, withTLS(true, true), func(l *localcluster.Layout) {
		oldSet, newSetB := setFor(t, l), setFor(t, l)
		l.Certs = oldSet
		l.Tweak = func(i int, p *config.Properties) {
			// Rotation step 1: every member trusts both CAs; member 2 already presents certs of the new CAs.
			p.CACert = string(oldSet.CACert) + string(newSetB.CACert)
			p.PeerCACert = string(oldSet.PeerCACert) + string(newSetB.PeerCACert)
			if i == 2 {
				p.ServerCert, p.ServerKey = string(newSetB.ServerCert), config.Secret(newSetB.ServerKey)
				p.PeerCert, p.PeerKey = string(newSetB.PeerCert), config.Secret(newSetB.PeerKey)
				p.ClientCert, p.ClientKey = string(newSetB.ClientCert), config.Secret(newSetB.ClientKey)
			}
		}
	})
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	c.requireHealthy(3)
	c.put(2, "/rotated", "yes")
	require.Equal(t, "yes", c.get(0, "/rotated"))
}

func TestBadTLSStartsNothingAndNamesTheProperty(t *testing.T) {
	c := newCluster(t, 1, withTLS(true, true), func(l *localcluster.Layout) {
		other := setFor(t, l)
		l.Tweak = func(_ int, p *config.Properties) { p.ServerCert = string(other.ServerCert) } // key no longer matches, other CA
	})
	cfg := c.config(0)
	out, err := exec.Command(c.bin, "start", "--config", c.layout.ConfigPath(0)).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "etcd.server_key: does not belong to the certificate in etcd.server_cert")
	require.Contains(t, string(out), "etcd.server_cert: is not signed by etcd.ca_cert")
	_, statErr := os.Stat(cfg.Paths.DataDir)
	require.True(t, os.IsNotExist(statErr), "no data dir was created")
	_, statErr = os.Stat(filepath.Join(cfg.Paths.RunDir, "etcd.pid"))
	require.True(t, os.IsNotExist(statErr), "no pidfile was written")

	out, err = exec.Command(c.bin, "validate", "--config", c.layout.ConfigPath(0)).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "etcd.server_cert")
}

func TestNeverReadyExitsNonZeroWithReason(t *testing.T) {
	// A restart with data whose peers are all gone can never reach quorum: start must give up with a reason.
	c := newCluster(t, 3, withTLS(false, false), func(l *localcluster.Layout) {
		l.Tweak = func(_ int, p *config.Properties) { p.StartTimeoutInSeconds = 5 }
	})
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	for i := 0; i < 3; i++ {
		c.stop(i)
	}
	start := time.Now()
	out, err := exec.Command(c.bin, "start", "--config", c.layout.ConfigPath(1)).CombinedOutput()
	require.Error(t, err)
	require.Less(t, time.Since(start), 60*time.Second)
	require.Contains(t, string(out), "etcd did not become ready within 5s")
}

// setFor generates a complete, independent set of CAs and certificates covering l's member addresses.
func setFor(t *testing.T, l *localcluster.Layout) *pki.Set {
	ips := []net.IP{net.IPv4(127, 0, 0, 1)} // see localcluster.EnsureCerts
	for i := 0; i < 5; i++ {
		ips = append(ips, net.ParseIP(l.Address(i)))
	}
	set, err := pki.GenerateClusterSet(pki.SetOptions{IPs: ips})
	require.NoError(t, err)
	return set
}

func atoi(t *testing.T, s string) int {
	var n int
	for _, r := range s {
		require.True(t, r >= '0' && r <= '9', "not a number: %q", s)
		n = n*10 + int(r-'0')
	}
	return n
}
