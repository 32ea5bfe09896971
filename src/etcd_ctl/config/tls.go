package config

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

// tlsPair names the properties of one certificate/key pair and what it is used for.
type tlsPair struct {
	certProp, keyProp, caProp string
	cert                      string
	key                       Secret
	ca                        []*x509.Certificate
	usages                    []x509.ExtKeyUsage
	hosts                     []string
	role                      string
}

// chainValidity checks the dates of a certificate property's certificate and of the intermediates after it.
func chainValidity(prop string, certs []*x509.Certificate, now time.Time) (warnings []string, errs []error) {
	for i, cert := range certs {
		what := ""
		if i > 0 {
			what = fmt.Sprintf("intermediate CA %d (%q): ", i, cert.Subject.CommonName)
		}
		if w, err := pki.CheckValidity(cert, now); err != nil {
			errs = append(errs, &PropertyError{Property: prop, Problem: what + err.Error()})
		} else if w != "" {
			warnings = append(warnings, fmt.Sprintf("%s: %s%s", prop, what, w))
		}
	}
	return warnings, errs
}

// validateTLS checks all TLS material required by etcd.require_ssl and etcd.peer_require_ssl: PEM encoding,
// key/cert match, signature by the configured CA bundle, key usages, SANs against the advertised host, and
// validity dates. Every problem is returned, each naming its property.
func (c *Config) validateTLS(now time.Time) (warnings []string, errs []error) {
	e := c.Etcd
	self := c.Self()
	fail := func(prop, format string, a ...any) {
		errs = append(errs, &PropertyError{Property: prop, Problem: fmt.Sprintf(format, a...)})
	}
	bundle := func(prop, value, because string) []*x509.Certificate {
		if value == "" {
			fail(prop, "is empty but %s; set it to the PEM CA certificate(s) (`etcd_ctl certs` generates them)", because)
			return nil
		}
		certs, err := pki.ParseCertificates([]byte(value))
		if err != nil {
			fail(prop, "%v", err)
			return nil
		}
		for _, ca := range certs {
			if w, err := pki.CheckValidity(ca, now); err != nil {
				fail(prop, "CA certificate %q: %v", ca.Subject.CommonName, err)
			} else if w != "" {
				warnings = append(warnings, fmt.Sprintf("%s: CA certificate %q: %s", prop, ca.Subject.CommonName, w))
			}
		}
		return certs
	}
	checkPair := func(p tlsPair, because string) {
		if p.cert == "" {
			fail(p.certProp, "is empty but %s; set it to the PEM %s certificate", because, p.role)
		}
		if p.key == "" {
			fail(p.keyProp, "is empty but %s; set it to the PEM private key of %s", because, p.certProp)
		}
		if p.cert == "" || p.key == "" {
			return
		}
		certs, err := pki.ParseCertificates([]byte(p.cert))
		if err != nil {
			fail(p.certProp, "%v", err)
			return
		}
		leaf := certs[0]
		var key crypto.Signer
		if key, err = pki.ParsePrivateKey([]byte(p.key.Value())); err != nil {
			fail(p.keyProp, "%v", err)
		} else if err := pki.CheckKeyMatchesCert(leaf, key); err != nil {
			fail(p.keyProp, "does not belong to the certificate in %s: %v; deploy the key that was generated with that certificate", p.certProp, err)
		}
		w, verrs := chainValidity(p.certProp, certs, now)
		warnings, errs = append(warnings, w...), append(errs, verrs...)
		if p.ca != nil {
			// The property may carry intermediates after the certificate: it must verify as a chain to the bundle.
			if err := pki.VerifyChain(certs, p.ca, p.usages[0]); err != nil {
				fail(p.certProp, "is not signed by %s: %v", p.caProp, err)
			}
		}
		if err := pki.CheckUsage(leaf, p.usages...); err != nil {
			fail(p.certProp, "%v", err)
		}
		if len(p.hosts) > 0 {
			if err := pki.CheckHosts(leaf, p.hosts); err != nil {
				fail(p.certProp, "%v", err)
			}
		}
	}

	if e.RequireSSL {
		because := "etcd.require_ssl is true"
		ca := bundle("etcd.ca_cert", e.CACert, because)
		checkPair(tlsPair{certProp: "etcd.server_cert", keyProp: "etcd.server_key", caProp: "etcd.ca_cert", cert: e.ServerCert, key: e.ServerKey,
			ca: ca, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, hosts: []string{self.Host}, role: "server"}, because)
		checkPair(tlsPair{certProp: "etcd.client_cert", keyProp: "etcd.client_key", caProp: "etcd.ca_cert", cert: e.ClientCert, key: e.ClientKey,
			ca: ca, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, role: "client"}, because)
	}
	if e.PeerRequireSSL {
		because := "etcd.peer_require_ssl is true"
		ca := bundle("etcd.peer_ca_cert", e.PeerCACert, because)
		checkPair(tlsPair{certProp: "etcd.peer_cert", keyProp: "etcd.peer_key", caProp: "etcd.peer_ca_cert", cert: e.PeerCert, key: e.PeerKey,
			ca: ca, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, hosts: []string{self.Host}, role: "peer"}, because)
	}
	return warnings, errs
}
