package testhelper

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

// serverCert is etcd_test_helper.tls.cert, or a self-signed certificate for this host's addresses with its
// SHA-256 fingerprint (hex) when none is configured.
func serverCert(cfg Config) (tls.Certificate, string, error) {
	if cfg.TLSCert != "" {
		cert, err := tls.X509KeyPair([]byte(cfg.TLSCert), []byte(cfg.TLSKey))
		return cert, "", err
	}
	ca, err := pki.GenerateCA("etcd-test-helper self-signed", 0)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	var ips []net.IP
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	}
	pair, err := ca.Issue(pki.Request{CommonName: "etcd-test-helper", DNSNames: []string{"localhost"}, IPs: ips, Usage: pki.UsageServer})
	if err != nil {
		return tls.Certificate{}, "", err
	}
	cert, err := tls.X509KeyPair(append(pair.CertPEM, ca.CertPEM()...), pair.KeyPEM)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return cert, hex.EncodeToString(sum[:]), nil
}

// Serve listens on the configured address and serves the API until ctx ends, then shuts down gracefully.
func Serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	srv := &http.Server{
		Addr:              net.JoinHostPort(cfg.ListenAddress, strconv.Itoa(cfg.Port)),
		Handler:           NewServer(cfg, log).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	mode := "off (etcd_test_helper.plaintext)"
	if !cfg.Plaintext {
		cert, fingerprint, err := serverCert(cfg)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		mode = "etcd_test_helper.tls.cert"
		if fingerprint != "" {
			mode = "self-signed, sha256 " + fingerprint
		}
	}
	log.Info("listening", "address", srv.Addr, "tls", mode)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
