package pki

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Sentinel errors; the functions wrap them with detail, callers match them with errors.Is and prefix the BOSH
// property name. Their texts are phrased to follow a property name ("etcd.ca_cert: is not PEM-encoded: …").
var (
	ErrEmpty             = errors.New("is empty")
	ErrNotPEM            = errors.New("is not PEM-encoded")
	ErrWrongBlockType    = errors.New("has the wrong PEM block type")
	ErrBadDER            = errors.New("holds a PEM block that cannot be parsed")
	ErrEncryptedKey      = errors.New("holds an encrypted private key")
	ErrMultipleKeys      = errors.New("holds more than one private key")
	ErrKeyMismatch       = errors.New("private key does not match the certificate")
	ErrNotSignedByBundle = errors.New("certificate is not signed by any CA in the bundle")
	ErrNotCA             = errors.New("is not a CA certificate")
	ErrExpired           = errors.New("certificate has expired")
	ErrNotYetValid       = errors.New("certificate is not valid yet")
	ErrMissingSAN        = errors.New("certificate does not cover the host")
	ErrMissingUsage      = errors.New("certificate lacks a required extended key usage")
)

// ExpiryWarning is how close to expiry a certificate may get before CheckValidity warns.
const ExpiryWarning = 30 * 24 * time.Hour

// CheckKeyMatchesCert reports whether key is the private key of cert (ErrKeyMismatch).
func CheckKeyMatchesCert(cert *x509.Certificate, key crypto.Signer) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok {
		return fmt.Errorf("unsupported key type %T", key.Public())
	}
	if !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("%w (certificate %s); use the key that was generated together with the certificate", ErrKeyMismatch, cn(cert))
	}
	return nil
}

// NotSignedError says that no CA of a bundle signed a certificate. It matches ErrNotSignedByBundle.
type NotSignedError struct {
	Subject, Issuer string   // of the certificate
	Bundle          []string // subjects of the bundle's CA certificates
	SelfSigned      bool     // the certificate signed itself
	SameNameCA      bool     // the bundle holds a CA named like the issuer, but with another key
}

func (e *NotSignedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrNotSignedByBundle.Error())
	if len(e.Bundle) == 0 {
		b.WriteString(": the bundle holds no CA certificate")
	} else {
		fmt.Fprintf(&b, ": none of the %d CA certificate(s) in the bundle (%s) signed it", len(e.Bundle), strings.Join(e.Bundle, ", "))
	}
	fmt.Fprintf(&b, " (subject %s, issuer %s)", e.Subject, e.Issuer)
	switch {
	case e.SelfSigned:
		b.WriteString("; it is self-signed: issue it from the CA instead, or add the CA that issued it to the bundle")
	case e.SameNameCA:
		fmt.Fprintf(&b, "; the bundle's CA %s has the issuer's name but another key (was the CA regenerated?): "+
			"re-issue the certificate from the current CA, or add the CA that issued it to the bundle", e.Issuer)
	default:
		b.WriteString("; sign it with one of them or add its CA to the bundle")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotSignedByBundle) true.
func (e *NotSignedError) Is(target error) bool { return target == ErrNotSignedByBundle }

// VerifySignedBy checks that a CA in bundle signed cert directly and that cert, and that CA, allow usage
// (ErrNotSignedByBundle, ErrNotCA, ErrMissingUsage). Validity dates are deliberately not part of this check
// (CheckValidity reports them), so an expired certificate is not also reported as "not signed".
func VerifySignedBy(cert *x509.Certificate, bundle []*x509.Certificate, usage x509.ExtKeyUsage) error {
	return VerifyChain([]*x509.Certificate{cert}, bundle, usage)
}

// VerifyChain is VerifySignedBy for a certificate property that holds the certificate followed by intermediate
// CAs (chain[0] is the certificate): a chain through those intermediates to a CA in bundle is accepted, as etcd's
// peers accept it.
//
// Every certificate after chain[0] must be on that chain (or be one of the bundle's CAs): a stray certificate
// means the property is not the chain it claims to be (wrong file appended, intermediate of another CA), and
// TLS peers that do not build paths themselves would be handed it (ErrNotInChain).
func VerifyChain(chain []*x509.Certificate, bundle []*x509.Certificate, usage x509.ExtKeyUsage) error {
	path, err := issuerPath(chain, bundle)
	if err != nil {
		return err
	}
	if err := strayInChain(chain, path, bundle); err != nil {
		return err
	}
	if err := CheckUsage(chain[0], usage); err != nil {
		return err
	}
	return checkCAUsage(path, usage)
}

// ErrNotInChain: a certificate property holds a certificate that is not on the chain to the CA bundle.
var ErrNotInChain = errors.New("certificate is not part of the chain")

// strayInChain reports the first certificate after chain[0] that is neither on path nor one of bundle's CAs.
func strayInChain(chain, path, bundle []*x509.Certificate) error {
	for i, c := range chain[1:] {
		if !slices.ContainsFunc(path, c.Equal) && !slices.ContainsFunc(bundle, c.Equal) {
			return fmt.Errorf("%w: certificate %d of %d (%s, issuer %s) does not sign %s nor any intermediate on its way to the CA bundle; "+
				"the property must hold the certificate first, then the intermediate CAs that lead to the bundle; remove it",
				ErrNotInChain, i+2, len(chain), cn(c), dn(c.Issuer.CommonName), cn(chain[0]))
		}
	}
	return nil
}

// issuerPath returns the CAs from chain[0]'s issuer up to the CA of bundle that anchors it.
func issuerPath(chain []*x509.Certificate, bundle []*x509.Certificate) ([]*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, errors.New("no certificate to verify")
	}
	var path []*x509.Certificate
	used := make([]bool, len(chain))
	cur := chain[0]
	for {
		ca, err := signerIn(cur, bundle)
		if err != nil {
			return nil, err
		}
		if ca != nil {
			return append(path, ca), nil
		}
		next := -1
		for i := 1; i < len(chain); i++ {
			if !used[i] && cur.CheckSignatureFrom(chain[i]) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			return nil, notSigned(chain[0], bundle)
		}
		used[next] = true
		cur = chain[next]
		path = append(path, cur)
	}
}

// signerIn returns the CA of bundle that signed cert, nil if none did, or ErrNotCA when a certificate of the
// bundle did sign it but may not sign certificates.
func signerIn(cert *x509.Certificate, bundle []*x509.Certificate) (*x509.Certificate, error) {
	for _, ca := range bundle {
		if cert.CheckSignatureFrom(ca) == nil {
			return ca, nil
		}
	}
	for _, ca := range bundle {
		if ca.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil {
			return nil, fmt.Errorf("%w: the bundle's certificate %s signed %s but may not sign certificates "+
				"(it needs basic constraints CA:TRUE and, if it has key usages, keyCertSign); re-issue the CA with them",
				ErrNotCA, cn(ca), cn(cert))
		}
	}
	return nil, nil
}

func notSigned(cert *x509.Certificate, bundle []*x509.Certificate) *NotSignedError {
	e := &NotSignedError{Subject: cn(cert), Issuer: dn(cert.Issuer.CommonName)}
	for _, ca := range bundle {
		e.Bundle = append(e.Bundle, cn(ca))
		if ca.Subject.String() == cert.Issuer.String() {
			e.SameNameCA = true
		}
	}
	e.SelfSigned = cert.Subject.String() == cert.Issuer.String() && cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
	return e
}

// CheckValidity returns ErrExpired or ErrNotYetValid (with the dates) for a certificate outside its validity
// window at now, and a warning when it expires in less than ExpiryWarning.
func CheckValidity(cert *x509.Certificate, now time.Time) (warning string, err error) {
	if now.Before(cert.NotBefore) {
		return "", fmt.Errorf("%w: %s is valid from %s (now %s); check the VM clock or issue a certificate valid now",
			ErrNotYetValid, cn(cert), stamp(cert.NotBefore), stamp(now))
	}
	if now.After(cert.NotAfter) {
		return "", fmt.Errorf("%w on %s (%s ago, now %s): %s; issue a new certificate and rotate it in",
			ErrExpired, stamp(cert.NotAfter), days(now.Sub(cert.NotAfter)), stamp(now), cn(cert))
	}
	if left := cert.NotAfter.Sub(now); left < ExpiryWarning {
		return fmt.Sprintf("certificate %s expires in %s (%s); rotate it soon", cn(cert), days(left), stamp(cert.NotAfter)), nil
	}
	return "", nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func days(d time.Duration) string {
	switch n := int(d.Hours() / 24); n {
	case 0:
		return "less than a day"
	case 1:
		return "1 day"
	default:
		return fmt.Sprintf("%d days", n)
	}
}

// MissingSANError lists the hosts a certificate does not cover and the SANs it has. It matches ErrMissingSAN.
type MissingSANError struct {
	Missing []string
	SANs    []string
}

func (e *MissingSANError) Error() string {
	noun := "host"
	if len(e.Missing) > 1 {
		noun = "hosts"
	}
	sans := "none"
	if len(e.SANs) > 0 {
		sans = strings.Join(e.SANs, ", ")
	}
	return fmt.Sprintf("certificate does not cover the %s %s: its SANs are %s; issue it with this member's advertised "+
		"host names and IPs (or a covering wildcard such as *.<domain>) in its subject alternative names",
		noun, strings.Join(e.Missing, ", "), sans)
}

// Is makes errors.Is(err, ErrMissingSAN) true.
func (e *MissingSANError) Is(target error) bool { return target == ErrMissingSAN }

// CheckHosts checks that every host (an IP or a DNS name) is covered by cert's subject alternative names, with
// wildcards matching exactly one left-most label (RFC 6125), as Go's TLS clients check them. Empty and
// unspecified ("0.0.0.0", "::") hosts are skipped. The common name is not consulted (Go ignores it too).
func CheckHosts(cert *x509.Certificate, hosts []string) error {
	var missing []string
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil && ip.IsUnspecified() {
			continue
		}
		if err := cert.VerifyHostname(h); err != nil {
			missing = append(missing, h)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	e := &MissingSANError{Missing: missing, SANs: append([]string{}, cert.DNSNames...)}
	for _, ip := range cert.IPAddresses {
		e.SANs = append(e.SANs, ip.String())
	}
	return e
}

// UsageError says which extended key usages a certificate, or the CA that signed it, does not allow. It matches
// ErrMissingUsage.
type UsageError struct {
	Missing []x509.ExtKeyUsage
	// CA is set when the certificate itself is fine but a CA on its chain restricts the usages it may sign for.
	CA string
}

func (e *UsageError) Error() string {
	names := make([]string, len(e.Missing))
	for i, u := range e.Missing {
		names[i] = usageName(u)
	}
	if e.CA != "" {
		return fmt.Sprintf("%s: its CA %s restricts its extended key usages and does not allow %s, so TLS peers will refuse it; "+
			"re-issue the CA without extended key usages or with that one", ErrMissingUsage, e.CA, strings.Join(names, " and "))
	}
	return fmt.Sprintf("%s: it needs %s; reissue it with that extended key usage", ErrMissingUsage, strings.Join(names, " and "))
}

// Is makes errors.Is(err, ErrMissingUsage) true.
func (e *UsageError) Is(target error) bool { return target == ErrMissingUsage }

// CheckUsage checks that cert allows every usage (ErrMissingUsage): ServerAuth for a server certificate,
// ClientAuth for client certificates, both for peer certificates. A certificate without extended key usages, or
// with "any", allows every usage, as Go's verifier treats it.
func CheckUsage(cert *x509.Certificate, usages ...x509.ExtKeyUsage) error {
	if missing := missingUsages(cert, usages); len(missing) > 0 {
		return &UsageError{Missing: missing}
	}
	return nil
}

// checkCAUsage applies Go's rule that every CA on a chain that lists extended key usages must list the usage too.
func checkCAUsage(path []*x509.Certificate, usages ...x509.ExtKeyUsage) error {
	for _, ca := range path {
		if missing := missingUsages(ca, usages); len(missing) > 0 {
			return &UsageError{Missing: missing, CA: cn(ca)}
		}
	}
	return nil
}

func missingUsages(cert *x509.Certificate, usages []x509.ExtKeyUsage) []x509.ExtKeyUsage {
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
	var missing []x509.ExtKeyUsage
	for _, u := range usages {
		if !has[u] && u != x509.ExtKeyUsageAny {
			missing = append(missing, u)
		}
	}
	return missing
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "TLS server authentication (serverAuth)"
	case x509.ExtKeyUsageClientAuth:
		return "TLS client authentication (clientAuth)"
	}
	return fmt.Sprintf("extended key usage %d", u)
}

func cn(c *x509.Certificate) string { return dn(c.Subject.CommonName) }

func dn(commonName string) string { return fmt.Sprintf("CN=%q", commonName) }
