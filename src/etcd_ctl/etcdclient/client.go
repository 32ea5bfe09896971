// Package etcdclient builds etcd clients from an etcd_ctl configuration: the endpoints and TLS settings every
// lifecycle command (join, drain, wait-ready, status) uses to talk to the cluster.
package etcdclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// TLSConfig returns the client TLS configuration from etcd.ca_cert, etcd.client_cert and etcd.client_key, or
// nil when etcd.require_ssl is off.
func TLSConfig(c *config.Config) (*tls.Config, error) {
	e := c.Etcd
	if !e.RequireSSL {
		return nil, nil
	}
	return mutualTLS("etcd.client_cert/etcd.client_key", e.ClientCert, e.ClientKey.Value(), "etcd.ca_cert", e.CACert)
}

// mutualTLS is a client TLS configuration presenting cert/key and trusting the CAs in caPEM; errors name the
// properties they came from.
func mutualTLS(pairProps, cert, key, caProp, caPEM string) (*tls.Config, error) {
	pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pairProps, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New(caProp + ": no PEM certificate found")
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// New returns a client for endpoints (client URLs). It never syncs endpoints from the cluster, so it talks only
// to the members it was given.
func New(c *config.Config, endpoints []string, dialTimeout time.Duration) (*clientv3.Client, error) {
	tc, err := TLSConfig(c)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          dialTimeout,
		TLS:                  tc,
		Logger:               zap.NewNop(),
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("creating etcd client for %v: %w", endpoints, err)
	}
	return cli, nil
}
