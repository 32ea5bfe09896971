package integration

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

// intermediateCA issues a CA under parent, as an operator's PKI hands out issuing CAs under an offline root.
func intermediateCA(t *testing.T, parent *pki.CA, name string) *pki.CA {
	t.Helper()
	ca, err := parent.IssueIntermediate(name, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	require.NoError(t, err)
	return ca
}

// TestCertificatePropertiesWithIntermediates runs a TLS cluster whose server, client and peer certificate
// properties carry the certificate followed by its issuing intermediate, with only the roots in etcd.ca_cert and
// etcd.peer_ca_cert: validation accepts the chains and real etcd serves and peers with them.
func TestCertificatePropertiesWithIntermediates(t *testing.T) {
	c := newCluster(t, 3, withTLS(true, true), func(l *localcluster.Layout) {
		clientRoot, err := pki.GenerateCA("client-root", 24*time.Hour)
		require.NoError(t, err)
		peerRoot, err := pki.GenerateCA("peer-root", 24*time.Hour)
		require.NoError(t, err)
		clientInter, peerInter := intermediateCA(t, clientRoot, "client-issuing"), intermediateCA(t, peerRoot, "peer-issuing")
		ips := []net.IP{net.IPv4(127, 0, 0, 1)}
		for i := 0; i < 5; i++ {
			ips = append(ips, net.ParseIP(l.Address(i)))
		}
		issue := func(ca *pki.CA, cn string, usage pki.Usage) (cert, key []byte) {
			p, err := ca.Issue(pki.Request{CommonName: cn, IPs: ips, Usage: usage})
			require.NoError(t, err)
			return append(append([]byte{}, p.CertPEM...), ca.CertPEM()...), p.KeyPEM
		}
		s := &pki.Set{CACert: clientRoot.CertPEM(), PeerCACert: peerRoot.CertPEM()}
		s.ServerCert, s.ServerKey = issue(clientInter, "etcd-server", pki.UsageServer|pki.UsageClient)
		s.ClientCert, s.ClientKey = issue(clientInter, "etcd-client", pki.UsageClient)
		s.PeerCert, s.PeerKey = issue(peerInter, "etcd-peer", pki.UsageServer|pki.UsageClient)
		l.Certs = s
	})
	out, err := c.ctl(0, "validate")
	require.NoError(t, err, out)
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	c.requireHealthy(3)
	c.put(2, "/chained", "yes")
	require.Equal(t, "yes", c.get(0, "/chained"))
}
