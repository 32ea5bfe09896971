package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Sentinel errors; wrap them to add detail, match them with errors.Is.
var (
	ErrEmpty             = errors.New("is empty")
	ErrNotPEM            = errors.New("is not PEM-encoded")
	ErrWrongBlockType    = errors.New("has the wrong PEM block type")
	ErrKeyMismatch       = errors.New("private key does not match the certificate")
	ErrNotSignedByBundle = errors.New("certificate is not signed by any CA in the bundle")
	ErrExpired           = errors.New("certificate has expired")
	ErrNotYetValid       = errors.New("certificate is not valid yet")
	ErrMissingSAN        = errors.New("certificate does not cover the host")
	ErrMissingUsage      = errors.New("certificate lacks a required extended key usage")
)

// ExpiryWarning is how close to expiry a certificate may get before CheckValidity warns.
const ExpiryWarning = 30 * 24 * time.Hour

// ParseCertificates parses every CERTIFICATE block of a PEM bundle. Anything else in the input is an error.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrEmpty
	}
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: found a %q block where a CERTIFICATE was expected (is a key in a certificate property?)", ErrWrongBlockType, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the bundle cannot be parsed: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no -----BEGIN CERTIFICATE----- block found; paste the PEM text, not a file name or base64 DER", ErrNotPEM)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%w: unexpected text after the last certificate", ErrNotPEM)
	}
	return certs, nil
}

// ParsePrivateKey parses a PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY") key.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrEmpty
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no -----BEGIN PRIVATE KEY----- block found", ErrNotPEM)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%w: unexpected text after the key", ErrNotPEM)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: found a %q block where a private key was expected (is a certificate in a key property?)", ErrWrongBlockType, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s block cannot be parsed: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	return signer, nil
}

// CheckKeyMatchesCert reports whether key is the private key of cert.
func CheckKeyMatchesCert(cert *x509.Certificate, key crypto.Signer) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok {
		return fmt.Errorf("unsupported key type %T", key.Public())
	}
	if !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("%w (certificate CN=%q)", ErrKeyMismatch, cert.Subject.CommonName)
	}
	return nil
}

// VerifySignedBy checks that a CA in bundle signed cert directly and that cert allows usage. Validity dates are
// deliberately not part of this check (CheckValidity reports them), so an expired certificate is not also
// reported as "not signed".
func VerifySignedBy(cert *x509.Certificate, bundle []*x509.Certificate, usage x509.ExtKeyUsage) error {
	for _, ca := range bundle {
		if err := cert.CheckSignatureFrom(ca); err == nil {
			return CheckUsage(cert, usage)
		}
	}
	return fmt.Errorf("%w: none of the %d CA certificate(s) in the bundle signed it (subject CN=%q, issuer CN=%q); sign it with one of them or add its CA to the bundle",
		ErrNotSignedByBundle, len(bundle), cert.Subject.CommonName, cert.Issuer.CommonName)
}

// CheckValidity returns an error for an expired or not-yet-valid certificate and a warning when it expires in
// less than ExpiryWarning.
func CheckValidity(cert *x509.Certificate, now time.Time) (warning string, err error) {
	if now.Before(cert.NotBefore) {
		return "", fmt.Errorf("%w: valid from %s (now %s); check the VM clock or issue a certificate valid now", ErrNotYetValid, cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(cert.NotAfter) {
		return "", fmt.Errorf("%w on %s; issue a new certificate and rotate it in", ErrExpired, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if left := cert.NotAfter.Sub(now); left < ExpiryWarning {
		return fmt.Sprintf("certificate CN=%q expires in %d days (%s); rotate it soon", cert.Subject.CommonName, int(left.Hours()/24), cert.NotAfter.UTC().Format(time.RFC3339)), nil
	}
	return "", nil
}

// CheckHosts checks that every host (IP or DNS name) is covered by cert's SANs. Empty and unspecified hosts are
// skipped.
func CheckHosts(cert *x509.Certificate, hosts []string) error {
	var missing []string
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			continue
		}
		if err := cert.VerifyHostname(h); err != nil {
			missing = append(missing, h)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var sans []string
	sans = append(sans, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		sans = append(sans, ip.String())
	}
	if len(sans) == 0 {
		sans = []string{"none"}
	}
	return fmt.Errorf("%w %s: its SANs are %s; issue it with this member's advertised host in its subject alternative names",
		ErrMissingSAN, strings.Join(missing, ", "), strings.Join(sans, ", "))
}

// CheckUsage checks that cert allows every usage. A certificate without extended key usages allows any, as
// Go's verifier treats it.
func CheckUsage(cert *x509.Certificate, usages ...x509.ExtKeyUsage) error {
	if len(cert.ExtKeyUsage) == 0 {
		return nil
	}
	has := map[x509.ExtKeyUsage]bool{}
	for _, u := range cert.ExtKeyUsage {
		has[u] = true
	}
	if has[x509.ExtKeyUsageAny] {
		return nil
	}
	var missing []string
	for _, u := range usages {
		if !has[u] {
			missing = append(missing, usageName(u))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: it needs %s; reissue it with that extended key usage", ErrMissingUsage, strings.Join(missing, " and "))
	}
	return nil
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "TLS server authentication (serverAuth)"
	case x509.ExtKeyUsageClientAuth:
		return "TLS client authentication (clientAuth)"
	}
	return fmt.Sprintf("usage %d", u)
}
