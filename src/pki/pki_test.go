package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func mustCA(t *testing.T, cn string) *CA {
	ca, err := GenerateCA(cn, 0)
	require.NoError(t, err)
	return ca
}

func leaf(t *testing.T, p *Pair) *x509.Certificate {
	certs, err := ParseCertificates(p.CertPEM)
	require.NoError(t, err)
	return certs[0]
}

func TestGeneratedSetValidatesCleanly(t *testing.T) {
	set, err := GenerateClusterSet(SetOptions{DNSNames: []string{"*.etcd.service.cf.internal", "etcd.service.cf.internal"}, IPs: []net.IP{net.ParseIP("10.244.0.2")}})
	require.NoError(t, err)
	for _, c := range []struct {
		name          string
		cert, key, ca []byte
		usages        []x509.ExtKeyUsage
		hosts         []string
	}{
		{"server", set.ServerCert, set.ServerKey, set.CACert, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []string{"etcd-z1-0.etcd.service.cf.internal", "10.244.0.2", "127.0.0.1"}},
		{"client", set.ClientCert, set.ClientKey, set.CACert, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil},
		{"peer", set.PeerCert, set.PeerKey, set.PeerCACert, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, []string{"etcd-z1-0.etcd.service.cf.internal", "10.244.0.2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			certs, err := ParseCertificates(c.cert)
			require.NoError(t, err)
			key, err := ParsePrivateKey(c.key)
			require.NoError(t, err)
			require.NoError(t, CheckKeyMatchesCert(certs[0], key))
			bundle, err := ParseCertificates(c.ca)
			require.NoError(t, err)
			require.NoError(t, VerifySignedBy(certs[0], bundle, c.usages[0]))
			require.NoError(t, CheckUsage(certs[0], c.usages...))
			require.NoError(t, CheckHosts(certs[0], c.hosts))
			w, err := CheckValidity(certs[0], time.Now())
			require.NoError(t, err)
			require.Empty(t, w)
			_, err = tls.X509KeyPair(c.cert, c.key)
			require.NoError(t, err)
		})
	}
	require.NotEqual(t, set.CACert, set.PeerCACert, "a separate peer CA by default")
}

func TestVarsYAMLRoundTrips(t *testing.T) {
	set, err := GenerateClusterSet(SetOptions{IPs: []net.IP{net.ParseIP("10.0.0.1")}})
	require.NoError(t, err)
	var vars map[string]string
	require.NoError(t, yaml.Unmarshal(set.VarsYAML(), &vars))
	require.Equal(t, string(set.CACert), vars["etcd_ca_cert"])
	require.Equal(t, string(set.ServerKey), vars["etcd_server_key"])
	require.Equal(t, string(set.PeerCert), vars["etcd_peer_cert"])
	require.Len(t, vars, 8)
}

func TestParseErrors(t *testing.T) {
	ca := mustCA(t, "ca")
	for name, tc := range map[string]struct {
		in   []byte
		key  bool
		want error
		msg  string
	}{
		"empty cert":          {in: []byte("  \n"), want: ErrEmpty},
		"not pem":             {in: []byte("MIIBhello"), want: ErrNotPEM, msg: "no -----BEGIN CERTIFICATE----- block"},
		"key in cert field":   {in: ca.KeyPEM(), want: ErrWrongBlockType, msg: `found a "PRIVATE KEY" block where a CERTIFICATE was expected`},
		"cert in key field":   {in: ca.CertPEM(), key: true, want: ErrWrongBlockType, msg: `found a "CERTIFICATE" block where a private key was expected`},
		"trailing garbage":    {in: append(append([]byte{}, ca.CertPEM()...), []byte("garbage")...), want: ErrNotPEM, msg: "after PEM block 1"},
		"not pem key":         {in: []byte("secret"), key: true, want: ErrNotPEM},
		"corrupt certificate": {in: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), msg: "cannot be parsed"},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			if tc.key {
				_, err = ParsePrivateKey(tc.in)
			} else {
				_, err = ParseCertificates(tc.in)
			}
			require.Error(t, err)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestBundleWithTwoCAs(t *testing.T) {
	oldCA, newCA, other := mustCA(t, "old"), mustCA(t, "new"), mustCA(t, "other")
	bundle, err := ParseCertificates(append(oldCA.CertPEM(), newCA.CertPEM()...))
	require.NoError(t, err)
	require.Len(t, bundle, 2)
	for _, ca := range []*CA{oldCA, newCA} {
		p, err := ca.Issue(Request{CommonName: "s", IPs: []net.IP{net.ParseIP("10.0.0.1")}, Usage: UsageServer})
		require.NoError(t, err)
		require.NoError(t, VerifySignedBy(leaf(t, p), bundle, x509.ExtKeyUsageServerAuth))
	}
	p, err := other.Issue(Request{CommonName: "s", Usage: UsageServer})
	require.NoError(t, err)
	err = VerifySignedBy(leaf(t, p), bundle, x509.ExtKeyUsageServerAuth)
	require.ErrorIs(t, err, ErrNotSignedByBundle)
	require.Contains(t, err.Error(), "none of the 2 CA certificate(s) in the bundle (CN=\"old\", CN=\"new\")")
	require.Contains(t, err.Error(), `issuer CN="other"`)
}

func TestKeyMismatch(t *testing.T) {
	ca := mustCA(t, "ca")
	a, err := ca.Issue(Request{CommonName: "a", Usage: UsageClient})
	require.NoError(t, err)
	b, err := ca.Issue(Request{CommonName: "b", Usage: UsageClient})
	require.NoError(t, err)
	key, err := ParsePrivateKey(b.KeyPEM)
	require.NoError(t, err)
	require.ErrorIs(t, CheckKeyMatchesCert(leaf(t, a), key), ErrKeyMismatch)
}

func TestValidityWindow(t *testing.T) {
	ca := mustCA(t, "ca")
	now := time.Now()
	expired, err := ca.Issue(Request{CommonName: "old", Usage: UsageServer, NotBefore: now.Add(-48 * time.Hour), Validity: 24 * time.Hour})
	require.NoError(t, err)
	future, err := ca.Issue(Request{CommonName: "future", Usage: UsageServer, NotBefore: now.Add(24 * time.Hour)})
	require.NoError(t, err)
	soon, err := ca.Issue(Request{CommonName: "soon", Usage: UsageServer, NotBefore: now.Add(-time.Hour), Validity: 10 * 24 * time.Hour})
	require.NoError(t, err)

	_, err = CheckValidity(leaf(t, expired), now)
	require.ErrorIs(t, err, ErrExpired)
	_, err = CheckValidity(leaf(t, future), now)
	require.ErrorIs(t, err, ErrNotYetValid)
	w, err := CheckValidity(leaf(t, soon), now)
	require.NoError(t, err)
	require.Contains(t, w, "expires in 9 days")
	// An expired certificate is still recognised as signed by its CA: the two problems are reported apart.
	require.NoError(t, VerifySignedBy(leaf(t, expired), []*x509.Certificate{ca.Cert}, x509.ExtKeyUsageServerAuth))
}

func TestHostsAndWildcards(t *testing.T) {
	ca := mustCA(t, "ca")
	p, err := ca.Issue(Request{CommonName: "etcd", DNSNames: []string{"*.etcd.service.consul", "etcd.service.consul"}, IPs: []net.IP{net.ParseIP("10.244.0.2")}, Usage: UsagePeer})
	require.NoError(t, err)
	c := leaf(t, p)
	require.NoError(t, CheckHosts(c, []string{"etcd-0.etcd.service.consul", "etcd.service.consul", "10.244.0.2", "0.0.0.0", ""}))
	err = CheckHosts(c, []string{"a.b.etcd.service.consul", "10.244.0.3"})
	require.ErrorIs(t, err, ErrMissingSAN)
	require.Contains(t, err.Error(), "a.b.etcd.service.consul, 10.244.0.3")
	require.Contains(t, err.Error(), "its SANs are *.etcd.service.consul, etcd.service.consul, 10.244.0.2")
}

func TestUsage(t *testing.T) {
	ca := mustCA(t, "ca")
	client, err := ca.Issue(Request{CommonName: "c", Usage: UsageClient})
	require.NoError(t, err)
	err = CheckUsage(leaf(t, client), x509.ExtKeyUsageServerAuth)
	require.ErrorIs(t, err, ErrMissingUsage)
	require.Contains(t, err.Error(), "serverAuth")
	err = VerifySignedBy(leaf(t, client), []*x509.Certificate{ca.Cert}, x509.ExtKeyUsageServerAuth)
	require.ErrorIs(t, err, ErrMissingUsage)
	require.NoError(t, CheckUsage(leaf(t, client), x509.ExtKeyUsageClientAuth))
}

func TestLoadCAReissues(t *testing.T) {
	ca := mustCA(t, "ca")
	loaded, err := LoadCA(ca.CertPEM(), ca.KeyPEM())
	require.NoError(t, err)
	p, err := loaded.Issue(Request{CommonName: "x", Usage: UsageServer})
	require.NoError(t, err)
	require.NoError(t, VerifySignedBy(leaf(t, p), []*x509.Certificate{ca.Cert}, x509.ExtKeyUsageServerAuth))
	other := mustCA(t, "other")
	_, err = LoadCA(ca.CertPEM(), other.KeyPEM())
	require.ErrorIs(t, err, ErrKeyMismatch)
}

// TestTLSHandshake proves generated material works with crypto/tls: a server requiring client certificates
// accepts the generated client and refuses a client without a certificate.
func TestTLSHandshake(t *testing.T) {
	set, err := GenerateClusterSet(SetOptions{IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	require.NoError(t, err)
	serverPair, err := tls.X509KeyPair(set.ServerCert, set.ServerKey)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(set.CACert))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if err := conn.(*tls.Conn).Handshake(); err == nil {
					_, _ = conn.Write([]byte("ok"))
				}
			}()
		}
	}()
	clientPair, err := tls.X509KeyPair(set.ClientCert, set.ClientKey)
	require.NoError(t, err)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientPair}})
	require.NoError(t, err)
	b, err := io.ReadAll(conn)
	require.NoError(t, err)
	require.Equal(t, "ok", string(b))
	conn.Close()

	conn, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool})
	if err == nil {
		_, err = io.ReadAll(conn) // TLS 1.3 reports the rejected client certificate on first read
		conn.Close()
	}
	require.Error(t, err)
	require.False(t, errors.Is(err, io.EOF) && err == nil)
}
