// Package pki generates the CAs and certificates an etcd deployment needs (so operators and tests never need an
// external tool such as certstrap) and checks operator-supplied TLS material before etcd starts: PEM encoding,
// key/certificate match, signature by a CA bundle, SANs, key usages and validity dates.
//
// Errors are typed (errors.Is / errors.As) and speak in operator terms; callers prefix the BOSH property name.
package pki
