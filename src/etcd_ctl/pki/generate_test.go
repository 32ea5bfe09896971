package pki

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestGenerateCA(t *testing.T) {
	for name, tc := range map[string]struct {
		opts    []CAOption
		wantRSA bool
	}{
		"ecdsa by default": {},
		"rsa on request":   {opts: []CAOption{WithRSA()}, wantRSA: true},
	} {
		t.Run(name, func(t *testing.T) {
			ca, err := GenerateCA("etcd-ca", 48*time.Hour, tc.opts...)
			require.NoError(t, err)
			c := parseOne(t, ca.CertPEM())
			require.True(t, c.IsCA)
			require.True(t, c.BasicConstraintsValid)
			require.NotZero(t, c.KeyUsage&x509.KeyUsageCertSign)
			require.NotEmpty(t, c.SubjectKeyId)
			require.NoError(t, c.CheckSignatureFrom(c), "self-signed")
			require.Equal(t, "etcd-ca", c.Subject.CommonName)
			require.WithinDuration(t, time.Now().Add(48*time.Hour), c.NotAfter, time.Minute)

			block, _ := pem.Decode(ca.KeyPEM())
			require.Equal(t, "PRIVATE KEY", block.Type, "PKCS#8")
			key, err := ParsePrivateKey(ca.KeyPEM())
			require.NoError(t, err)
			_, isRSA := key.(*rsa.PrivateKey)
			require.Equal(t, tc.wantRSA, isRSA)

			loaded, err := LoadCA(ca.CertPEM(), ca.KeyPEM())
			require.NoError(t, err)
			p := issue(t, loaded, Request{Usage: UsageServer})
			require.NoError(t, VerifySignedBy(parseOne(t, p.CertPEM), []*x509.Certificate{ca.Cert}, x509.ExtKeyUsageServerAuth))
		})
	}
}

func TestLoadCAErrors(t *testing.T) {
	ca, other := mustCA(t, "ca"), mustCA(t, "other")
	server := issue(t, ca, Request{Usage: UsageServer})
	for name, tc := range map[string]struct {
		cert, key []byte
		want      error
		msg       string
	}{
		"a bundle":          {cert: concat(ca.CertPEM(), other.CertPEM()), key: ca.KeyPEM(), msg: "holds 2 certificates"},
		"key of another CA": {cert: ca.CertPEM(), key: other.KeyPEM(), want: ErrKeyMismatch},
		"not a CA":          {cert: server.CertPEM, key: server.KeyPEM, want: ErrNotCA},
		"cert not PEM":      {cert: []byte("ca.pem"), key: ca.KeyPEM(), want: ErrNotPEM},
		"key empty":         {cert: ca.CertPEM(), want: ErrEmpty},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadCA(tc.cert, tc.key)
			require.Error(t, err)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func TestIssue(t *testing.T) {
	ca, rsaCA := mustCA(t, "ca"), mustCA(t, "rsa-ca", WithRSA())
	for name, tc := range map[string]struct {
		ca      *CA
		req     Request
		ext     []x509.ExtKeyUsage
		keyUse  x509.KeyUsage
		wantRSA bool
	}{
		"server": {ca: ca, req: Request{Usage: UsageServer, DNSNames: []string{"etcd.local"}, IPs: ips("10.0.0.1")},
			ext: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, keyUse: x509.KeyUsageDigitalSignature},
		"client": {ca: ca, req: Request{Usage: UsageClient},
			ext: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, keyUse: x509.KeyUsageDigitalSignature},
		"peer": {ca: ca, req: Request{Usage: UsagePeer, IPs: ips("10.0.0.1")},
			ext: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, keyUse: x509.KeyUsageDigitalSignature},
		"rsa peer from an ecdsa CA": {ca: ca, req: Request{Usage: UsagePeer, RSA: true},
			ext: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, keyUse: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, wantRSA: true},
		"ecdsa server from an rsa CA": {ca: rsaCA, req: Request{Usage: UsageServer},
			ext: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, keyUse: x509.KeyUsageDigitalSignature},
	} {
		t.Run(name, func(t *testing.T) {
			p := issue(t, tc.ca, tc.req)
			c := parseOne(t, p.CertPEM)
			require.Equal(t, tc.ext, c.ExtKeyUsage)
			require.Equal(t, tc.keyUse, c.KeyUsage)
			require.False(t, c.IsCA)
			require.NotEmpty(t, c.SubjectKeyId)
			require.Equal(t, tc.ca.Cert.SubjectKeyId, c.AuthorityKeyId)
			require.Equal(t, tc.req.DNSNames, c.DNSNames)
			require.Len(t, c.IPAddresses, len(tc.req.IPs))
			require.WithinDuration(t, time.Now().Add(-time.Hour), c.NotBefore, time.Minute, "default NotBefore tolerates clock skew")
			require.WithinDuration(t, c.NotBefore.Add(DefaultValidity), c.NotAfter, time.Second)
			_, isRSA := c.PublicKey.(*rsa.PublicKey)
			require.Equal(t, tc.wantRSA, isRSA)
			if !tc.wantRSA {
				require.IsType(t, &ecdsa.PublicKey{}, c.PublicKey)
			}
			_, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
			require.NoError(t, err)
			require.NoError(t, VerifySignedBy(c, []*x509.Certificate{tc.ca.Cert}, tc.ext[0]))
		})
	}

	t.Run("random serials", func(t *testing.T) {
		a := parseOne(t, issue(t, ca, Request{Usage: UsageClient}).CertPEM)
		b := parseOne(t, issue(t, ca, Request{Usage: UsageClient}).CertPEM)
		require.NotEqual(t, a.SerialNumber, b.SerialNumber)
		require.Positive(t, a.SerialNumber.Sign())
	})
	t.Run("explicit window", func(t *testing.T) {
		nb := time.Now().Add(24 * time.Hour).Truncate(time.Second)
		c := parseOne(t, issue(t, ca, Request{Usage: UsageClient, NotBefore: nb, Validity: time.Hour}).CertPEM)
		require.True(t, nb.Equal(c.NotBefore))
		require.True(t, nb.Add(time.Hour).Equal(c.NotAfter))
	})
	t.Run("no usage", func(t *testing.T) {
		_, err := ca.Issue(Request{CommonName: "x"})
		require.ErrorContains(t, err, "no usage")
	})
}

func TestGenerateClusterSet(t *testing.T) {
	for name, tc := range map[string]struct {
		opts SetOptions
	}{
		"separate peer CA": {opts: SetOptions{DNSNames: []string{"*.etcd.service.cf.internal"}, IPs: ips("10.244.0.2", "127.0.0.1")}},
		"shared peer CA":   {opts: SetOptions{IPs: ips("10.244.0.2"), SharedPeerCA: true, ClientCommonName: "app"}},
		"rsa":              {opts: SetOptions{IPs: ips("10.244.0.2"), RSA: true}},
	} {
		t.Run(name, func(t *testing.T) {
			set, err := GenerateClusterSet(tc.opts)
			require.NoError(t, err)
			if tc.opts.SharedPeerCA {
				require.Equal(t, set.CACert, set.PeerCACert)
			} else {
				require.NotEqual(t, set.CACert, set.PeerCACert)
				_, errs := ValidatePair(set.PeerCert, set.PeerKey, set.CACert, nil, nil, time.Now())
				require.NotEmpty(t, errs, "the peer certificate is not signed by the client CA")
			}

			server := parseOne(t, set.ServerCert)
			require.Contains(t, server.DNSNames, "localhost")
			require.Equal(t, uniqueIPs(server.IPAddresses), server.IPAddresses, "no duplicate SANs")
			require.NoError(t, CheckHosts(server, []string{"127.0.0.1", "localhost", "10.244.0.2"}))
			require.NoError(t, CheckUsage(server, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth),
				"etcd's gateway dials its own client port with the server certificate")

			client := parseOne(t, set.ClientCert)
			require.Equal(t, firstNonEmpty(tc.opts.ClientCommonName, "etcd-client"), client.Subject.CommonName)

			_, isRSA := client.PublicKey.(*rsa.PublicKey)
			require.Equal(t, tc.opts.RSA, isRSA)

			_, err = LoadCA(set.CACert, set.CAKey)
			require.NoError(t, err)
			_, err = LoadCA(set.PeerCACert, set.PeerCAKey)
			require.NoError(t, err)
		})
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// TestGeneratedSetValidatesCleanly: what GenerateClusterSet produces passes every check etcd_ctl runs.
func TestGeneratedSetValidatesCleanly(t *testing.T) {
	set, err := GenerateClusterSet(SetOptions{DNSNames: []string{"*.etcd.service.cf.internal", "etcd.service.cf.internal"}, IPs: ips("10.244.0.2")})
	require.NoError(t, err)
	server, client, peer := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for name, tc := range map[string]struct {
		cert, key, ca []byte
		usages        []x509.ExtKeyUsage
		hosts         []string
	}{
		"server": {set.ServerCert, set.ServerKey, set.CACert, server, []string{"etcd-z1-0.etcd.service.cf.internal", "10.244.0.2", "127.0.0.1", "localhost", "0.0.0.0"}},
		"client": {set.ClientCert, set.ClientKey, set.CACert, client, nil},
		"peer":   {set.PeerCert, set.PeerKey, set.PeerCACert, peer, []string{"etcd-z1-0.etcd.service.cf.internal", "etcd.service.cf.internal", "10.244.0.2"}},
	} {
		t.Run(name, func(t *testing.T) {
			warnings, errs := ValidatePair(tc.cert, tc.key, tc.ca, tc.hosts, tc.usages, time.Now())
			require.Empty(t, errs)
			require.Empty(t, warnings)
			_, err := tls.X509KeyPair(tc.cert, tc.key)
			require.NoError(t, err)
		})
	}
}

func TestVarsYAMLRoundTrips(t *testing.T) {
	set, err := GenerateClusterSet(SetOptions{IPs: ips("10.0.0.1")})
	require.NoError(t, err)
	out := set.VarsYAML()
	var vars map[string]string
	require.NoError(t, yaml.Unmarshal(out, &vars))
	require.Equal(t, map[string]string{
		"etcd_ca_cert":      string(set.CACert),
		"etcd_server_cert":  string(set.ServerCert),
		"etcd_server_key":   string(set.ServerKey),
		"etcd_client_cert":  string(set.ClientCert),
		"etcd_client_key":   string(set.ClientKey),
		"etcd_peer_ca_cert": string(set.PeerCACert),
		"etcd_peer_cert":    string(set.PeerCert),
		"etcd_peer_key":     string(set.PeerKey),
	}, vars)
	require.NotContains(t, string(out), string(set.CAKey), "CA keys are not job properties")
}
