package config

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

func tlsConfig(t *testing.T) (*Config, *pki.Set) {
	set, err := pki.GenerateClusterSet(pki.SetOptions{IPs: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.2")}, DNSNames: []string{"*.etcd.service.cf.internal"}})
	require.NoError(t, err)
	c, err := Parse([]byte(minimal))
	require.NoError(t, err)
	e := &c.Etcd
	e.RequireSSL, e.PeerRequireSSL = true, true
	e.CACert, e.ServerCert, e.ServerKey = string(set.CACert), string(set.ServerCert), Secret(set.ServerKey)
	e.ClientCert, e.ClientKey = string(set.ClientCert), Secret(set.ClientKey)
	e.PeerCACert, e.PeerCert, e.PeerKey = string(set.PeerCACert), string(set.PeerCert), Secret(set.PeerKey)
	return c, set
}

func TestValidTLSConfig(t *testing.T) {
	c, _ := tlsConfig(t)
	w, err := c.Validate(time.Now())
	require.NoError(t, err)
	require.Empty(t, w)
}

func TestTLSProblemsNameTheProperty(t *testing.T) {
	other, err := pki.GenerateClusterSet(pki.SetOptions{IPs: []net.IP{net.ParseIP("10.0.0.1")}})
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		edit func(*Config, *pki.Set)
		want []string
	}{
		"ca not pem":       {func(c *Config, _ *pki.Set) { c.Etcd.CACert = "not a certificate" }, []string{"etcd.ca_cert: is not PEM-encoded"}},
		"missing ca":       {func(c *Config, _ *pki.Set) { c.Etcd.CACert = "" }, []string{"etcd.ca_cert: is empty but etcd.require_ssl is true"}},
		"missing peer key": {func(c *Config, _ *pki.Set) { c.Etcd.PeerKey = "" }, []string{"etcd.peer_key: is empty but etcd.peer_require_ssl is true"}},
		"key in cert":      {func(c *Config, s *pki.Set) { c.Etcd.ServerCert = string(s.ServerKey) }, []string{`etcd.server_cert: has the wrong PEM block type: found a "PRIVATE KEY" block`}},
		"cert in key":      {func(c *Config, s *pki.Set) { c.Etcd.ClientKey = Secret(s.ClientCert) }, []string{`etcd.client_key: has the wrong PEM block type: found a "CERTIFICATE" block`}},
		"key mismatch":     {func(c *Config, s *pki.Set) { c.Etcd.ServerKey = Secret(s.ClientKey) }, []string{"etcd.server_key: does not belong to the certificate in etcd.server_cert"}},
		"other ca": {func(c *Config, _ *pki.Set) {
			c.Etcd.ServerCert, c.Etcd.ServerKey = string(other.ServerCert), Secret(other.ServerKey)
		}, []string{"etcd.server_cert: is not signed by etcd.ca_cert: certificate is not signed by any CA in the bundle"}},
		"peer other ca": {func(c *Config, _ *pki.Set) { c.Etcd.PeerCACert = string(other.PeerCACert) }, []string{"etcd.peer_cert: is not signed by etcd.peer_ca_cert"}},
		"client as server": {func(c *Config, s *pki.Set) {
			c.Etcd.ServerCert, c.Etcd.ServerKey = string(s.ClientCert), Secret(s.ClientKey)
		}, []string{"etcd.server_cert", "serverAuth"}},
		"missing san": {func(c *Config, _ *pki.Set) {
			c.Instance.Address, c.Instance.IP = "10.0.0.3", "10.0.0.3"
			c.Etcd.Machines = []string{"10.0.0.3"}
		}, []string{"etcd.server_cert: certificate does not cover the host 10.0.0.3", "etcd.peer_cert: certificate does not cover the host 10.0.0.3"}},
		"dns name covered":  {func(c *Config, _ *pki.Set) { c.Etcd.AdvertiseURLsDNSSuffix = "elsewhere.internal" }, []string{"etcd.server_cert: certificate does not cover the host etcd-0.elsewhere.internal"}},
		"every problem too": {func(c *Config, _ *pki.Set) { c.Etcd.CACert = "x"; c.Etcd.PeerCert = "y" }, []string{"etcd.ca_cert:", "etcd.peer_cert:"}},
	} {
		t.Run(name, func(t *testing.T) {
			c, set := tlsConfig(t)
			tc.edit(c, set)
			_, err := c.Validate(time.Now())
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestTLSExpiryAndWarnings(t *testing.T) {
	ca, err := pki.GenerateCA("ca", 0)
	require.NoError(t, err)
	c, _ := tlsConfig(t)
	c.Etcd.CACert = string(ca.CertPEM())
	now := time.Now()
	issue := func(nb time.Time, v time.Duration) *pki.Pair {
		p, err := ca.Issue(pki.Request{CommonName: "s", IPs: []net.IP{net.ParseIP("10.0.0.1")}, Usage: pki.UsagePeer, NotBefore: nb, Validity: v})
		require.NoError(t, err)
		return p
	}
	client := issue(time.Time{}, 0)
	c.Etcd.ClientCert, c.Etcd.ClientKey = string(client.CertPEM), Secret(client.KeyPEM)

	expired := issue(now.Add(-72*time.Hour), 24*time.Hour)
	c.Etcd.ServerCert, c.Etcd.ServerKey = string(expired.CertPEM), Secret(expired.KeyPEM)
	_, err = c.Validate(now)
	require.ErrorContains(t, err, "etcd.server_cert: certificate has expired")
	require.False(t, strings.Contains(err.Error(), "not signed"), "an expired certificate is not also reported as unsigned: %v", err)

	future := issue(now.Add(48*time.Hour), 0)
	c.Etcd.ServerCert, c.Etcd.ServerKey = string(future.CertPEM), Secret(future.KeyPEM)
	_, err = c.Validate(now)
	require.ErrorContains(t, err, "etcd.server_cert: certificate is not valid yet")

	soon := issue(now.Add(-time.Hour), 20*24*time.Hour)
	c.Etcd.ServerCert, c.Etcd.ServerKey = string(soon.CertPEM), Secret(soon.KeyPEM)
	w, err := c.Validate(now)
	require.NoError(t, err)
	require.Len(t, w, 1)
	require.Contains(t, w[0], "etcd.server_cert: certificate CN=\"s\" expires in 19 days")
}

func TestTLSOffIgnoresCertificates(t *testing.T) {
	c, _ := tlsConfig(t)
	c.Etcd.RequireSSL, c.Etcd.PeerRequireSSL = false, false
	c.Etcd.ServerCert = "garbage"
	_, err := c.Validate(time.Now())
	require.NoError(t, err)
}
