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
	pair, err := tls.X509KeyPair([]byte(e.ClientCert), []byte(e.ClientKey.Value()))
	if err != nil {
		return nil, fmt.Errorf("etcd.client_cert/etcd.client_key: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(e.CACert)) {
		return nil, errors.New("etcd.ca_cert: no PEM certificate found")
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
