package pki

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckKeyMatchesCert(t *testing.T) {
	ca := mustCA(t, "ca")
	a, b := issue(t, ca, Request{Usage: UsageClient}), issue(t, ca, Request{CommonName: "b", Usage: UsageClient})
	for name, tc := range map[string]struct {
		key  []byte
		want error
	}{
		"own key":     {key: a.KeyPEM},
		"another key": {key: b.KeyPEM, want: ErrKeyMismatch},
		"rsa key":     {key: mustCA(t, "rsa", WithRSA()).KeyPEM(), want: ErrKeyMismatch},
	} {
		t.Run(name, func(t *testing.T) {
			key, err := ParsePrivateKey(tc.key)
			require.NoError(t, err)
			err = CheckKeyMatchesCert(parseOne(t, a.CertPEM), key)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), `certificate CN="etcd-test"`)
		})
	}
}

func TestVerifySignedBy(t *testing.T) {
	oldCA, newCA, other := mustCA(t, "old-ca"), mustCA(t, "new-ca"), mustCA(t, "other-ca")
	regenerated := mustCA(t, "old-ca") // same name, new key: the classic "CA was regenerated" mistake
	server := func(ca *CA) *x509.Certificate {
		return parseOne(t, issue(t, ca, Request{CommonName: "etcd-server", Usage: UsageServer}).CertPEM)
	}
	client := parseOne(t, issue(t, oldCA, Request{Usage: UsageClient}).CertPEM)
	selfSigned, _, _ := raw(t, leafTemplate("etcd-server", x509.ExtKeyUsageServerAuth), nil, nil)

	// A leaf (CA:FALSE) that nevertheless signed another certificate.
	notCA, notCAKey, _ := raw(t, leafTemplate("leaf-as-ca"), nil, nil)
	signedByNotCA, _, _ := raw(t, leafTemplate("victim", x509.ExtKeyUsageServerAuth), notCA, notCAKey)

	// A CA restricted to serverAuth signing a client certificate: Go's verifier refuses the client.
	serverOnlyTmpl := caTemplate("server-only-ca")
	serverOnlyTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	serverOnly, serverOnlyKey, _ := raw(t, serverOnlyTmpl, nil, nil)
	clientOfServerOnly, _, _ := raw(t, leafTemplate("c", x509.ExtKeyUsageClientAuth), serverOnly, serverOnlyKey)
	serverOfServerOnly, _, _ := raw(t, leafTemplate("s", x509.ExtKeyUsageServerAuth), serverOnly, serverOnlyKey)

	both := []*x509.Certificate{oldCA.Cert, newCA.Cert}
	for name, tc := range map[string]struct {
		cert   *x509.Certificate
		bundle []*x509.Certificate
		usage  x509.ExtKeyUsage
		want   error
		msg    []string
	}{
		"signed by the only CA":      {cert: server(oldCA), bundle: []*x509.Certificate{oldCA.Cert}, usage: x509.ExtKeyUsageServerAuth},
		"rotation bundle, old cert":  {cert: server(oldCA), bundle: both, usage: x509.ExtKeyUsageServerAuth},
		"rotation bundle, new cert":  {cert: server(newCA), bundle: both, usage: x509.ExtKeyUsageServerAuth},
		"CA restricted to the usage": {cert: serverOfServerOnly, bundle: []*x509.Certificate{serverOnly}, usage: x509.ExtKeyUsageServerAuth},
		"client cert, client usage":  {cert: client, bundle: both, usage: x509.ExtKeyUsageClientAuth},
		"signed by another CA": {cert: server(other), bundle: both, usage: x509.ExtKeyUsageServerAuth, want: ErrNotSignedByBundle, msg: []string{
			`certificate is not signed by any CA in the bundle: none of the 2 CA certificate(s) in the bundle (CN="old-ca", CN="new-ca") signed it`,
			`(subject CN="etcd-server", issuer CN="other-ca"); sign it with one of them or add its CA to the bundle`}},
		"CA regenerated with the same name": {cert: server(regenerated), bundle: []*x509.Certificate{oldCA.Cert}, usage: x509.ExtKeyUsageServerAuth,
			want: ErrNotSignedByBundle, msg: []string{"has the issuer's name but another key (was the CA regenerated?)"}},
		"self-signed":  {cert: selfSigned, bundle: both, usage: x509.ExtKeyUsageServerAuth, want: ErrNotSignedByBundle, msg: []string{"it is self-signed"}},
		"empty bundle": {cert: server(oldCA), usage: x509.ExtKeyUsageServerAuth, want: ErrNotSignedByBundle, msg: []string{"the bundle holds no CA certificate"}},
		"signer is not a CA": {cert: signedByNotCA, bundle: []*x509.Certificate{notCA}, usage: x509.ExtKeyUsageServerAuth, want: ErrNotCA,
			msg: []string{`the bundle's certificate CN="leaf-as-ca" signed CN="victim" but may not sign certificates`}},
		"client cert used as server": {cert: client, bundle: both, usage: x509.ExtKeyUsageServerAuth, want: ErrMissingUsage, msg: []string{"serverAuth"}},
		"CA forbids the usage": {cert: clientOfServerOnly, bundle: []*x509.Certificate{serverOnly}, usage: x509.ExtKeyUsageClientAuth, want: ErrMissingUsage,
			msg: []string{`its CA CN="server-only-ca" restricts its extended key usages and does not allow TLS client authentication (clientAuth)`}},
	} {
		t.Run(name, func(t *testing.T) {
			err := VerifySignedBy(tc.cert, tc.bundle, tc.usage)

			// Whatever we decide, Go's own verifier (which etcd's TLS uses) decides the same.
			roots := x509.NewCertPool()
			for _, c := range tc.bundle {
				roots.AddCert(c)
			}
			_, goErr := tc.cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tc.usage}})
			require.Equal(t, goErr == nil, err == nil, "ours: %v, Go's: %v", err, goErr)

			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			for _, m := range tc.msg {
				require.Contains(t, err.Error(), m)
			}
		})
	}

	t.Run("typed", func(t *testing.T) {
		var notSigned *NotSignedError
		require.ErrorAs(t, VerifySignedBy(server(other), both, x509.ExtKeyUsageServerAuth), &notSigned)
		require.Equal(t, []string{`CN="old-ca"`, `CN="new-ca"`}, notSigned.Bundle)
		require.Equal(t, `CN="other-ca"`, notSigned.Issuer)
		var usage *UsageError
		require.ErrorAs(t, VerifySignedBy(client, both, x509.ExtKeyUsageServerAuth), &usage)
		require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, usage.Missing)
	})

	t.Run("dates are not part of the signature check", func(t *testing.T) {
		expired := issue(t, oldCA, Request{Usage: UsageServer, NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour})
		require.NoError(t, VerifySignedBy(parseOne(t, expired.CertPEM), both, x509.ExtKeyUsageServerAuth))
	})
}

func TestVerifyChainThroughIntermediates(t *testing.T) {
	root := mustCA(t, "root")
	inter, interKey, interPEM := raw(t, caTemplate("intermediate"), root.Cert, root.Key)
	leafCert, _, leafPEM := raw(t, leafTemplate("etcd", x509.ExtKeyUsageServerAuth), inter, interKey)
	bundle := []*x509.Certificate{root.Cert}

	chain, err := ParseCertificates(concat(leafPEM, interPEM))
	require.NoError(t, err)
	require.NoError(t, VerifyChain(chain, bundle, x509.ExtKeyUsageServerAuth))
	require.NoError(t, VerifySignedBy(leafCert, []*x509.Certificate{inter}, x509.ExtKeyUsageServerAuth), "intermediate in the bundle")
	require.ErrorIs(t, VerifySignedBy(leafCert, bundle, x509.ExtKeyUsageServerAuth), ErrNotSignedByBundle, "intermediate missing")
	require.ErrorIs(t, VerifyChain(chain, []*x509.Certificate{mustCA(t, "other").Cert}, x509.ExtKeyUsageServerAuth), ErrNotSignedByBundle)
}

func TestCheckValidity(t *testing.T) {
	ca := mustCA(t, "ca")
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	window := func(nb time.Time, v time.Duration) *x509.Certificate {
		return parseOne(t, issue(t, ca, Request{CommonName: "etcd-server", Usage: UsageServer, NotBefore: nb, Validity: v}).CertPEM)
	}
	for name, tc := range map[string]struct {
		cert    *x509.Certificate
		want    error
		msg     string
		warning string
	}{
		"valid":                {cert: window(now.Add(-time.Hour), 365*24*time.Hour)},
		"exactly 30 days":      {cert: window(now.Add(-time.Hour), 30*24*time.Hour+time.Hour)},
		"29 days left":         {cert: window(now.Add(-time.Hour), 29*24*time.Hour+2*time.Hour), warning: `certificate CN="etcd-server" expires in 29 days (2030-06-30T13:00:00Z); rotate it soon`},
		"hours left":           {cert: window(now.Add(-time.Hour), 3*time.Hour), warning: "expires in less than a day"},
		"expired":              {cert: window(now.Add(-72*time.Hour), 24*time.Hour), want: ErrExpired, msg: "certificate has expired on 2030-05-30T12:00:00Z (2 days ago, now 2030-06-01T12:00:00Z)"},
		"not yet valid":        {cert: window(now.Add(48*time.Hour), 0), want: ErrNotYetValid, msg: `CN="etcd-server" is valid from 2030-06-03T12:00:00Z (now 2030-06-01T12:00:00Z); check the VM clock`},
		"expired 1 day":        {cert: window(now.Add(-50*time.Hour), 24*time.Hour), want: ErrExpired, msg: "(1 day ago"},
		"not yet, by a second": {cert: window(now.Add(time.Second), time.Hour), want: ErrNotYetValid},
	} {
		t.Run(name, func(t *testing.T) {
			w, err := CheckValidity(tc.cert, now)
			require.Equal(t, tc.warning == "", w == "", "warning %q", w)
			require.Contains(t, w, tc.warning)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestCheckHosts(t *testing.T) {
	ca := mustCA(t, "ca")
	c := parseOne(t, issue(t, ca, Request{
		DNSNames: []string{"*.etcd.service.consul", "etcd.service.consul", "Mixed.Case.Example"},
		IPs:      ips("10.244.0.2", "fd00::2"), Usage: UsagePeer,
	}).CertPEM)
	noSANs := parseOne(t, issue(t, ca, Request{CommonName: "10.0.0.1", Usage: UsageServer}).CertPEM)
	for name, tc := range map[string]struct {
		cert    *x509.Certificate
		hosts   []string
		missing []string
	}{
		"IP":                                 {cert: c, hosts: []string{"10.244.0.2"}},
		"IPv6, with and without brackets":    {cert: c, hosts: []string{"fd00::2", "[fd00::2]"}},
		"DNS name":                           {cert: c, hosts: []string{"etcd.service.consul"}},
		"wildcard covers one label":          {cert: c, hosts: []string{"etcd-0.etcd.service.consul", "etcd-z1-2.etcd.service.consul"}},
		"case-insensitive, trailing dot":     {cert: c, hosts: []string{"mixed.case.example", "ETCD-0.ETCD.SERVICE.CONSUL."}},
		"unspecified and empty are skipped":  {cert: c, hosts: []string{"0.0.0.0", "", "::", " "}},
		"no hosts":                           {cert: noSANs},
		"missing IP":                         {cert: c, hosts: []string{"10.244.0.2", "10.244.0.3"}, missing: []string{"10.244.0.3"}},
		"missing DNS name":                   {cert: c, hosts: []string{"etcd.other.consul"}, missing: []string{"etcd.other.consul"}},
		"wildcard does not cover two labels": {cert: c, hosts: []string{"a.b.etcd.service.consul"}, missing: []string{"a.b.etcd.service.consul"}},
		"wildcard does not cover the base":   {cert: parseOne(t, issue(t, ca, Request{DNSNames: []string{"*.etcd.service.consul"}, Usage: UsageServer}).CertPEM), hosts: []string{"etcd.service.consul"}, missing: []string{"etcd.service.consul"}},
		"common name is not a SAN":           {cert: noSANs, hosts: []string{"10.0.0.1"}, missing: []string{"10.0.0.1"}},
		"several missing":                    {cert: c, hosts: []string{"10.0.0.9", "etcd-0.other", "etcd.service.consul"}, missing: []string{"10.0.0.9", "etcd-0.other"}},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckHosts(tc.cert, tc.hosts)
			if tc.missing == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrMissingSAN)
			var san *MissingSANError
			require.ErrorAs(t, err, &san)
			require.Equal(t, tc.missing, san.Missing)
			for _, h := range tc.missing {
				require.Contains(t, err.Error(), h)
			}
		})
	}

	t.Run("message lists the SANs", func(t *testing.T) {
		err := CheckHosts(c, []string{"a.b.etcd.service.consul", "10.244.0.3"})
		require.EqualError(t, err, "certificate does not cover the hosts a.b.etcd.service.consul, 10.244.0.3: its SANs are "+
			"*.etcd.service.consul, etcd.service.consul, Mixed.Case.Example, 10.244.0.2, fd00::2; issue it with this member's "+
			"advertised host names and IPs (or a covering wildcard such as *.<domain>) in its subject alternative names")
		require.ErrorContains(t, CheckHosts(noSANs, []string{"10.0.0.1"}), "certificate does not cover the host 10.0.0.1: its SANs are none")
	})
}

func TestCheckUsage(t *testing.T) {
	ca := mustCA(t, "ca")
	server := parseOne(t, issue(t, ca, Request{Usage: UsageServer}).CertPEM)
	client := parseOne(t, issue(t, ca, Request{Usage: UsageClient}).CertPEM)
	peer := parseOne(t, issue(t, ca, Request{Usage: UsagePeer}).CertPEM)
	noEKU, _, _ := raw(t, leafTemplate("no-eku"), ca.Cert, ca.Key)
	anyTmpl := leafTemplate("any", x509.ExtKeyUsageAny)
	anyEKU, _, _ := raw(t, anyTmpl, ca.Cert, ca.Key)
	serverAuth, clientAuth := x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth
	for name, tc := range map[string]struct {
		cert    *x509.Certificate
		usages  []x509.ExtKeyUsage
		missing []x509.ExtKeyUsage
	}{
		"server as server":         {cert: server, usages: []x509.ExtKeyUsage{serverAuth}},
		"client as client":         {cert: client, usages: []x509.ExtKeyUsage{clientAuth}},
		"peer as peer":             {cert: peer, usages: []x509.ExtKeyUsage{serverAuth, clientAuth}},
		"no extended usage is any": {cert: noEKU, usages: []x509.ExtKeyUsage{serverAuth, clientAuth}},
		"the any usage":            {cert: anyEKU, usages: []x509.ExtKeyUsage{serverAuth, clientAuth}},
		"nothing required":         {cert: client},
		"client as server":         {cert: client, usages: []x509.ExtKeyUsage{serverAuth}, missing: []x509.ExtKeyUsage{serverAuth}},
		"server as peer":           {cert: server, usages: []x509.ExtKeyUsage{serverAuth, clientAuth}, missing: []x509.ExtKeyUsage{clientAuth}},
		"client as peer":           {cert: client, usages: []x509.ExtKeyUsage{serverAuth, clientAuth}, missing: []x509.ExtKeyUsage{serverAuth}},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckUsage(tc.cert, tc.usages...)
			if tc.missing == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrMissingUsage)
			var ue *UsageError
			require.ErrorAs(t, err, &ue)
			require.Equal(t, tc.missing, ue.Missing)
			require.Contains(t, err.Error(), "reissue it with that extended key usage")
		})
	}
}

// errorsOf groups ValidatePair's errors by part.
func errorsOf(t *testing.T, errs []error) map[Part][]error {
	t.Helper()
	out := map[Part][]error{}
	for _, err := range errs {
		var pe *PairError
		require.True(t, errors.As(err, &pe), "%T is a *PairError", err)
		out[pe.Part] = append(out[pe.Part], err)
	}
	return out
}

func TestValidatePair(t *testing.T) {
	now := time.Now()
	ca, other := mustCA(t, "etcd-ca"), mustCA(t, "other-ca")
	serverUse := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	good := issue(t, ca, Request{CommonName: "etcd-server", IPs: ips("10.0.0.1"), Usage: UsageServer})
	mismatchedKey := issue(t, ca, Request{Usage: UsageServer}).KeyPEM

	expiredCA, err := GenerateCA("old-ca", 0)
	require.NoError(t, err)
	expiredTmpl := caTemplate("expired-ca")
	expiredTmpl.NotBefore, expiredTmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	expired, expiredKey, expiredPEM := raw(t, expiredTmpl, nil, nil)
	_, fromExpiredKey, fromExpiredPEM := raw(t, leafTemplate("etcd-server", x509.ExtKeyUsageServerAuth), expired, expiredKey)
	fromExpiredKeyPEM := (&CA{Key: fromExpiredKey}).KeyPEM()

	root := mustCA(t, "root")
	interTmpl := caTemplate("intermediate")
	interTmpl.NotBefore, interTmpl.NotAfter = now.Add(-time.Hour), now.Add(10*24*time.Hour)
	inter, interKey, interPEM := raw(t, interTmpl, root.Cert, root.Key)
	_, viaInterKey, viaInterPEM := raw(t, leafTemplate("etcd-server", x509.ExtKeyUsageServerAuth), inter, interKey)
	viaInterKeyPEM := (&CA{Key: viaInterKey}).KeyPEM()

	for name, tc := range map[string]struct {
		cert, key, bundle []byte
		hosts             []string
		want              map[Part][]error // errors.Is targets per part, in order
		warnings          []string         // substrings
	}{
		"clean": {cert: good.CertPEM, key: good.KeyPEM, bundle: ca.CertPEM(), hosts: []string{"10.0.0.1"}},
		"rotation bundle with an expired, unrelated CA": {cert: good.CertPEM, key: good.KeyPEM, bundle: concat(expiredPEM, ca.CertPEM(), expiredCA.CertPEM()),
			warnings: []string{`CA certificate CN="expired-ca" in the bundle: certificate has expired`}},
		"signed by an expired CA": {cert: fromExpiredPEM, key: fromExpiredKeyPEM, bundle: expiredPEM,
			want: map[Part][]error{PartCA: {ErrExpired}}},
		"chain through an intermediate expiring soon": {cert: concat(viaInterPEM, interPEM), key: viaInterKeyPEM, bundle: root.CertPEM(), hosts: []string{"127.0.0.1"},
			warnings: []string{`intermediate CA 1: certificate CN="intermediate" expires in 9 days`}},
		"every input unparsable": {cert: []byte("x"), key: nil, bundle: good.KeyPEM,
			want: map[Part][]error{PartCert: {ErrNotPEM}, PartKey: {ErrEmpty}, PartCA: {ErrWrongBlockType}}},
		"a server certificate as the CA": {cert: good.CertPEM, key: good.KeyPEM, bundle: good.CertPEM,
			want: map[Part][]error{PartCert: {ErrNotSignedByBundle}, PartCA: {ErrNotCA}}},
		"many problems at once": {cert: issue(t, other, Request{CommonName: "etcd-server", Usage: UsageClient, NotBefore: now.Add(-72 * time.Hour), Validity: 24 * time.Hour}).CertPEM,
			key: mismatchedKey, bundle: ca.CertPEM(), hosts: []string{"10.0.0.1"},
			want: map[Part][]error{PartKey: {ErrKeyMismatch}, PartCert: {ErrExpired, ErrMissingUsage, ErrMissingSAN, ErrNotSignedByBundle}}},
	} {
		t.Run(name, func(t *testing.T) {
			warnings, errs := ValidatePair(tc.cert, tc.key, tc.bundle, tc.hosts, serverUse, now)
			got := errorsOf(t, errs)
			require.Len(t, got, len(tc.want), "parts with errors: %v", errs)
			for part, targets := range tc.want {
				require.Len(t, got[part], len(targets), "%s: %v", part, got[part])
				for i, target := range targets {
					require.ErrorIs(t, got[part][i], target, "%s error %d", part, i)
				}
			}
			require.Len(t, warnings, len(tc.warnings), "%q", warnings)
			for i, w := range tc.warnings {
				require.Contains(t, warnings[i], w)
			}
		})
	}
}
