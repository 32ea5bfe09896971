package config

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

// intermediate makes a CA signed by parent, valid from notBefore to notAfter.
func intermediate(t *testing.T, parent *pki.CA, name string, notBefore, notAfter time.Time) *pki.CA {
	t.Helper()
	ca, err := parent.IssueIntermediate(name, notBefore, notAfter)
	require.NoError(t, err)
	return ca
}

// A certificate property that carries the certificate followed by its intermediates verifies as a chain up
// to the CA bundle; a stray or expired certificate in it is an error naming the property.
func TestCertificateChainsVerifyUpToTheBundle(t *testing.T) {
	now := time.Now()
	root, err := pki.GenerateCA("root", 24*time.Hour)
	require.NoError(t, err)
	inter := intermediate(t, root, "intermediate", now.Add(-time.Hour), now.Add(24*time.Hour))
	expiredInter := intermediate(t, root, "old-intermediate", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	other, err := pki.GenerateCA("other", 24*time.Hour)
	require.NoError(t, err)
	strayInter := intermediate(t, other, "stray", now.Add(-time.Hour), now.Add(24*time.Hour))

	server := func(ca *pki.CA) *pki.Pair {
		p, err := ca.Issue(pki.Request{CommonName: "etcd-server", IPs: []net.IP{net.ParseIP("10.0.0.1")}, Usage: pki.UsageServer | pki.UsageClient})
		require.NoError(t, err)
		return p
	}
	viaInter, viaExpired := server(inter), server(expiredInter)
	cat := func(parts ...[]byte) string {
		var s string
		for _, p := range parts {
			s += string(p)
		}
		return s
	}
	for name, tc := range map[string]struct {
		cert string
		key  []byte
		want string // "" = valid
	}{
		"leaf and intermediate":        {cert: cat(viaInter.CertPEM, inter.CertPEM()), key: viaInter.KeyPEM},
		"intermediate missing":         {cert: string(viaInter.CertPEM), key: viaInter.KeyPEM, want: "etcd.server_cert: is not signed by etcd.ca_cert: certificate is not signed by any CA in the bundle"},
		"a stray certificate appended": {cert: cat(viaInter.CertPEM, inter.CertPEM(), strayInter.CertPEM()), key: viaInter.KeyPEM, want: `etcd.server_cert: is not signed by etcd.ca_cert: certificate is not part of the chain: certificate 3 of 3 (CN="stray"`},
		"expired intermediate":         {cert: cat(viaExpired.CertPEM, expiredInter.CertPEM()), key: viaExpired.KeyPEM, want: `etcd.server_cert: intermediate CA 1 ("old-intermediate"): certificate has expired`},
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := tlsConfig(t)
			c.Etcd.CACert = string(root.CertPEM())
			c.Etcd.ServerCert, c.Etcd.ServerKey = tc.cert, Secret(tc.key)
			// The client certificate must come from the same bundle.
			client, err := root.Issue(pki.Request{CommonName: "client", Usage: pki.UsageClient})
			require.NoError(t, err)
			c.Etcd.ClientCert, c.Etcd.ClientKey = string(client.CertPEM), Secret(client.KeyPEM)
			_, err = c.Validate(now)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}
