package integration

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

// withPeerIntruder gives member `intruder` a peer certificate from the right peer CA but with the common name
// "intruder", and every other member an etcd.peer_allowed_cn of the usual "etcd-peer" only. The intruder lists
// its own name too (so that its own config passes validation, as a misissued certificate's would). Every
// member gets etcd.tls_min_version "1.3".
func withPeerIntruder(t *testing.T, intruder int) option {
	return func(l *localcluster.Layout) {
		l.Tweak = func(i int, p *config.Properties) {
			p.TLSMinVersion = config.TLSVersion13
			p.PeerAllowedCN = config.StringList{"etcd-peer"}
			if i != intruder {
				return
			}
			ca, err := pki.LoadCA(l.Certs.PeerCACert, l.Certs.PeerCAKey)
			require.NoError(t, err)
			ips := []net.IP{net.IPv4(127, 0, 0, 1)}
			for j := 0; j < 5; j++ {
				ips = append(ips, net.ParseIP(l.Address(j)))
			}
			pair, err := ca.Issue(pki.Request{CommonName: "intruder", IPs: ips, Usage: pki.UsagePeer})
			require.NoError(t, err)
			p.PeerCert, p.PeerKey = string(pair.CertPEM), config.Secret(pair.KeyPEM)
			p.PeerAllowedCN = config.StringList{"etcd-peer", "intruder"}
			p.StartTimeoutInSeconds, p.JoinStallTimeoutInSeconds = 20, 10
		}
	}
}

// TestPeerOutsideTheAllowListIsRefused: with etcd.peer_allowed_cn, a member whose peer certificate is signed by
// the peer CA but carries another common name cannot take part: the others reject its peer connections, its
// learner never catches up, its start rolls the join back and exits non-zero, and the cluster keeps its two
// members. The client listener refuses TLS 1.2 (etcd.tls_min_version "1.3").
func TestPeerOutsideTheAllowListIsRefused(t *testing.T) {
	c := newCluster(t, 3, withTLS(true, true), withPeerIntruder(t, 2))
	c.start(0)
	c.waitReady(0, time.Minute)
	c.start(1)
	c.waitReady(1, 2*time.Minute)
	c.put(0, "/k", "v")

	c.start(2)
	select {
	case <-c.procs[2].Done():
	case <-time.After(3 * time.Minute):
		t.Fatal("the member with a peer certificate outside the allow-list did not give up")
	}
	require.Error(t, c.procs[2].ExitErr(), "its start fails")
	delete(c.procs, 2)
	require.True(t, c.logContains(2, "rolling back the join"), "the join is rolled back")
	require.True(t, c.logContains(0, "rejected connection on peer endpoint") || c.logContains(1, "rejected connection on peer endpoint"),
		"etcd logs the refused peer connections")
	c.requireHealthy(2)
	for name := range c.memberIDs(0) {
		require.NotEqual(t, config.MemberName("etcd", 2), name)
	}
	require.Equal(t, "v", c.get(1, "/k"))

	// TLS 1.2 is refused on the client port, TLS 1.3 accepted.
	cfg := c.config(0)
	addr := strings.TrimPrefix(cfg.Self().ClientURL, "https://")
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		tc := tlsOf(t, cfg)
		tc.MinVersion, tc.MaxVersion = v, v
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc)
		if v == tls.VersionTLS12 {
			require.Error(t, err, "a TLS 1.2 handshake must fail")
			continue
		}
		require.NoError(t, err, "TLS 1.3")
		conn.Close()
	}
}
