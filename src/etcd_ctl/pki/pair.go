package pki

import (
	"crypto/x509"
	"fmt"
	"time"
)

// Part names which of ValidatePair's inputs a problem is about, so that a caller can name the right property.
type Part int

// The inputs of ValidatePair.
const (
	PartCert Part = iota + 1 // certPEM
	PartKey                  // keyPEM
	PartCA                   // caBundlePEM
)

func (p Part) String() string {
	switch p {
	case PartCert:
		return "certificate"
	case PartKey:
		return "private key"
	case PartCA:
		return "CA bundle"
	}
	return fmt.Sprintf("Part(%d)", int(p))
}

// PairError is one problem ValidatePair found, with the input it is about. Its message is the underlying
// error's; errors.Is/As see through it.
type PairError struct {
	Part Part
	Err  error
}

func (e *PairError) Error() string { return e.Err.Error() }
func (e *PairError) Unwrap() error { return e.Err }

// ValidatePair runs every check on a certificate/key pair and the CA bundle that must have signed it, and returns
// every problem rather than the first: PEM and DER parsing of all three inputs, CA certificates that may not sign,
// key/certificate match, signature by the bundle (through intermediates that follow the certificate in certPEM),
// validity dates of the certificate, its intermediates and its CA, the extended key usages (of the certificate
// and of its CAs), and the hosts the certificate must cover. Each error is a *PairError; warnings cover
// certificates close to expiry and expired CAs in the bundle that nothing here depends on. An empty
// caBundlePEM is reported as ErrEmpty; call ValidatePair only when the bundle is required.
func ValidatePair(certPEM, keyPEM, caBundlePEM []byte, hosts []string, usages []x509.ExtKeyUsage, now time.Time) (warnings []string, errs []error) {
	fail := func(part Part, err error) { errs = append(errs, &PairError{Part: part, Err: err}) }

	chain, certErr := ParseCertificates(certPEM)
	if certErr != nil {
		fail(PartCert, certErr)
	}
	key, keyErr := ParsePrivateKey(keyPEM)
	if keyErr != nil {
		fail(PartKey, keyErr)
	}
	bundle, caErr := ParseCertificates(caBundlePEM)
	if caErr != nil {
		fail(PartCA, caErr)
	}
	for i, ca := range bundle {
		if !mayIssue(ca) {
			fail(PartCA, fmt.Errorf("%w: certificate %d of %d in the bundle (%s) has basic constraints CA:FALSE; "+
				"put the CA certificate here, not a server, client or peer certificate", ErrNotCA, i+1, len(bundle), cn(ca)))
		}
	}

	var anchor *x509.Certificate
	if certErr == nil {
		leaf := chain[0]
		if keyErr == nil {
			if err := CheckKeyMatchesCert(leaf, key); err != nil {
				fail(PartKey, err)
			}
		}
		for i, c := range chain {
			w, err := CheckValidity(c, now)
			if i > 0 && (w != "" || err != nil) {
				w, err = prefixed(fmt.Sprintf("intermediate CA %d", i), w, err)
			}
			if err != nil {
				fail(PartCert, err)
			}
			if w != "" {
				warnings = append(warnings, w)
			}
		}
		if err := CheckUsage(leaf, usages...); err != nil {
			fail(PartCert, err)
		}
		if err := CheckHosts(leaf, hosts); err != nil {
			fail(PartCert, err)
		}
		if caErr == nil {
			path, err := issuerPath(chain, bundle)
			if err != nil {
				fail(PartCert, err)
			} else {
				anchor = path[len(path)-1]
				if err := checkCAUsage(path, usages...); err != nil {
					fail(PartCA, err)
				}
			}
		}
	}

	for _, ca := range bundle {
		w, err := CheckValidity(ca, now)
		switch {
		case err != nil && ca == anchor:
			_, err = prefixed("the CA that signed the certificate", "", err)
			fail(PartCA, err)
		case err != nil:
			warnings = append(warnings, fmt.Sprintf("CA certificate %s in the bundle: %v; remove it once no certificate depends on it", cn(ca), err))
		case w != "":
			warnings = append(warnings, "CA "+w)
		}
	}
	return warnings, errs
}

// mayIssue mirrors crypto/x509's parent check: a v3 certificate must say CA:TRUE; v1 certificates predate the
// extension and are accepted.
func mayIssue(c *x509.Certificate) bool {
	if c.BasicConstraintsValid {
		return c.IsCA
	}
	return c.Version < 3
}

func prefixed(what, warning string, err error) (string, error) {
	if warning != "" {
		warning = what + ": " + warning
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", what, err)
	}
	return warning, err
}
