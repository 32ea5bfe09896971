package etcdclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// PeerTLSConfig returns the TLS configuration for talking to members' peer URLs as a member does (etcd.peer_cert
// as the client certificate, etcd.peer_ca_cert as the trusted CAs), or nil when etcd.peer_require_ssl is off.
func PeerTLSConfig(c *config.Config) (*tls.Config, error) {
	e := c.Etcd
	if !e.PeerRequireSSL {
		return nil, nil
	}
	pair, err := tls.X509KeyPair([]byte(e.PeerCert), []byte(e.PeerKey.Value()))
	if err != nil {
		return nil, fmt.Errorf("etcd.peer_cert/etcd.peer_key: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(e.PeerCACert)) {
		return nil, errors.New("etcd.peer_ca_cert: no PEM certificate found")
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
