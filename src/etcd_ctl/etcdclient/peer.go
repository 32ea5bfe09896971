package etcdclient

import (
	"crypto/tls"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// PeerTLSConfig returns the TLS configuration for talking to members' peer URLs as a member does (etcd.peer_cert
// as the client certificate, etcd.peer_ca_cert as the trusted CAs), or nil when etcd.peer_require_ssl is off.
func PeerTLSConfig(c *config.Config) (*tls.Config, error) {
	e := c.Etcd
	if !e.PeerRequireSSL {
		return nil, nil
	}
	return mutualTLS("etcd.peer_cert/etcd.peer_key", e.PeerCert, e.PeerKey.Value(), "etcd.peer_ca_cert", e.PeerCACert)
}
