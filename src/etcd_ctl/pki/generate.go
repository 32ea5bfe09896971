package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Usage says what a certificate is for.
type Usage int

const (
	// UsageServer is a TLS server certificate.
	UsageServer Usage = 1 << iota
	// UsageClient is a TLS client certificate.
	UsageClient
	// UsagePeer is an etcd peer certificate: server and client at once.
	UsagePeer = UsageServer | UsageClient
)

// DefaultValidity of generated CAs and certificates. Long enough that a dev or test deployment never sees an
// expiry; production operators rotate with their own validity.
const DefaultValidity = 2 * 365 * 24 * time.Hour

// CA is a certificate authority able to issue certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	pem  []byte
}

// Pair is a PEM certificate and its PEM private key.
type Pair struct {
	CertPEM, KeyPEM []byte
}

// Request describes a certificate to issue.
type Request struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	Usage      Usage
	Validity   time.Duration // zero: DefaultValidity
	NotBefore  time.Time     // zero: one hour ago (tolerates clock skew)
	// RSA issues an RSA 2048 key instead of ECDSA P-256, for clients that cannot do ECDSA.
	RSA bool
}

// CAOption changes how GenerateCA creates a CA.
type CAOption func(*caOptions)

type caOptions struct{ rsa bool }

// WithRSA gives the CA an RSA 2048 key instead of ECDSA P-256.
func WithRSA() CAOption { return func(o *caOptions) { o.rsa = true } }

// GenerateCA creates a self-signed CA, by default with an ECDSA P-256 key. A zero validity means
// DefaultValidity.
func GenerateCA(commonName string, validity time.Duration, opts ...CAOption) (*CA, error) {
	var o caOptions
	for _, opt := range opts {
		opt(&o)
	}
	key, err := newKey(o.rsa)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	if validity <= 0 {
		validity = DefaultValidity
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-signing CA %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// IssueIntermediate creates a CA signed by ca, valid from notBefore to notAfter, as an operator's PKI hands out
// issuing CAs under an offline root: certificates it issues verify up to ca only through it, so a certificate
// property must carry it after the leaf.
func (ca *CA) IssueIntermediate(commonName string, notBefore, notAfter time.Time) (*CA, error) {
	key, err := newKey(false)
	if err != nil {
		return nil, fmt.Errorf("generating intermediate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing intermediate CA %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// LoadCA reads a CA from one PEM certificate and its PEM private key (PKCS#8, PKCS#1 or SEC1), e.g. the CAKey
// of a Set, to issue more certificates from it.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("CA certificate: holds %d certificates; load the one CA that is to issue certificates", len(certs))
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if err := CheckKeyMatchesCert(certs[0], key); err != nil {
		return nil, err
	}
	if !certs[0].IsCA {
		return nil, fmt.Errorf("%w: CN=%q has basic constraints CA:FALSE; load the CA certificate, not one it issued", ErrNotCA, certs[0].Subject.CommonName)
	}
	return &CA{Cert: certs[0], Key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw})}, nil
}

// CertPEM is the CA certificate.
func (ca *CA) CertPEM() []byte { return ca.pem }

// KeyPEM is the CA's private key (PKCS#8).
func (ca *CA) KeyPEM() []byte { return keyPEM(ca.Key) }

// Issue signs a new certificate for req with a fresh key (ECDSA P-256, or RSA 2048 when req.RSA).
func (ca *CA) Issue(req Request) (*Pair, error) {
	key, err := newKey(req.RSA)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	validity := req.Validity
	if validity <= 0 {
		validity = DefaultValidity
	}
	notBefore := req.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	var ext []x509.ExtKeyUsage
	if req.Usage&UsageServer != 0 {
		ext = append(ext, x509.ExtKeyUsageServerAuth)
	}
	if req.Usage&UsageClient != 0 {
		ext = append(ext, x509.ExtKeyUsageClientAuth)
	}
	if len(ext) == 0 {
		return nil, errors.New("certificate request has no usage (server, client or peer)")
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial(),
		Subject:        pkix.Name{CommonName: req.CommonName},
		DNSNames:       req.DNSNames,
		IPAddresses:    req.IPs,
		NotBefore:      notBefore,
		NotAfter:       notBefore.Add(validity),
		KeyUsage:       leafKeyUsage(key),
		ExtKeyUsage:    ext,
		SubjectKeyId:   keyID(key.Public()),
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate %q: %w", req.CommonName, err)
	}
	return &Pair{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: keyPEM(key)}, nil
}

func newKey(useRSA bool) (crypto.Signer, error) {
	if useRSA {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// leafKeyUsage is DigitalSignature for every key, plus KeyEncipherment for RSA keys (RSA key exchange in TLS 1.2
// encrypts the premaster secret with the certificate's key; ECDSA keys never encipher).
func leafKeyUsage(key crypto.Signer) x509.KeyUsage {
	if _, ok := key.(*rsa.PrivateKey); ok {
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	return x509.KeyUsageDigitalSignature
}

func keyPEM(key crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(fmt.Sprintf("pki: marshalling a key we generated: %v", err)) // cannot happen for ECDSA/RSA keys
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("pki: reading randomness: %v", err))
	}
	return n
}

func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha1.Sum(der)
	return sum[:]
}
