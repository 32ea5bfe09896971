// Package pki is the TLS material of an etcd deployment: it creates it and it checks it.
//
// Generation (GenerateCA, CA.Issue, GenerateClusterSet, Set.VarsYAML) produces the client CA, the peer CA and the
// server, client and peer certificates the etcd job's properties take, with the standard library only, so that
// operators (`etcd_ctl certs`), the local director and tests never need certstrap or openssl.
//
// Validation (ParseCertificates, ParsePrivateKey, CheckKeyMatchesCert, VerifySignedBy, VerifyChain,
// CheckValidity, CheckHosts, CheckUsage, and ValidatePair, which runs them all) exists because etcd reports a bad
// certificate late and obscurely: as a failed handshake between members, after the process has started, often
// only on the peer's side. etcd_ctl runs these checks before etcd starts, so that every TLS mistake an operator
// can make (text that is not PEM or lost its line breaks, a key where a certificate belongs, a key of another
// certificate, a certificate from another or a regenerated CA, an expired or not yet valid certificate, a member
// address missing from the SANs, a client certificate used as a server certificate) is reported by name, and
// nothing is touched.
//
// The checks decide as Go's crypto/tls and crypto/x509 (which etcd uses) decide; the tests cross-check them
// against x509.Certificate.Verify and real handshakes. They are pure functions that return typed errors: sentinel
// errors (ErrNotPEM, ErrKeyMismatch, ErrNotSignedByBundle, ...) matched with errors.Is, and structured errors
// (*NotSignedError, *MissingSANError, *UsageError, *PairError) read with errors.As. Messages say what is wrong
// and how to fix it in operator terms, never quote key material, and are phrased to follow a property name:
// this package knows nothing about BOSH properties, callers prefix them ("etcd.server_cert: " + err).
package pki
