package metrics

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver/api/etcdhttp"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// ListenAddress is host:port of the metrics listener for c.
func ListenAddress(c *config.Config) string {
	return net.JoinHostPort(c.MetricsHost(), strconv.Itoa(c.Etcd.MetricsPort))
}

// TLSConfig is the listener's TLS configuration: nil for http; for https, etcd.metrics_server_cert and a required
// client certificate signed by etcd.metrics_ca_cert. It does no I/O.
func TLSConfig(c *config.Config) (*tls.Config, error) {
	e := c.Etcd
	if e.MetricsScheme != "https" {
		return nil, nil
	}
	pair, err := tls.X509KeyPair([]byte(e.MetricsServerCert), []byte(e.MetricsServerKey.Value()))
	if err != nil {
		return nil, fmt.Errorf("etcd.metrics_server_cert/etcd.metrics_server_key: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(e.MetricsCACert)) {
		return nil, errors.New("etcd.metrics_ca_cert: holds no PEM certificate")
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}, nil
}

// Listener serves /metrics and /health on the metrics port.
type Listener struct {
	srv *http.Server
	lg  *zap.Logger

	mu     sync.Mutex
	health http.Handler
	reason string
}

// Listen binds the metrics port (so that a port conflict fails `start` before anything else happens) and serves
// in the background until Close.
func Listen(c *config.Config, lg *zap.Logger) (*Listener, error) {
	tc, err := TLSConfig(c)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", ListenAddress(c))
	if err != nil {
		return nil, fmt.Errorf("etcd.metrics_port: listening on %s: %w; free the port or choose another etcd.metrics_port", ListenAddress(c), err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	l := &Listener{lg: lg, reason: "etcd_ctl is deciding how to start this member; etcd is not running yet"}
	mux := http.NewServeMux()
	etcdhttp.HandleMetrics(mux)
	mux.HandleFunc(etcdhttp.PathHealth, l.serveHealth)
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(lg.Named("metrics-http"))}
	go func() {
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			lg.Warn("metrics listener stopped", zap.Error(err))
		}
	}()
	lg.Info("serving metrics", zap.String("url", c.MetricsURL()), zap.String("reason", "etcd.metrics_port"))
	return l, nil
}

// SetEtcd hands /health to etcd's own health check of the running server (nil: etcd is not running, and /health
// answers 503 with reason).
func (l *Listener) SetEtcd(srv etcdhttp.ServerHealth, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.health, l.reason = nil, reason
	if srv != nil {
		mux := http.NewServeMux()
		etcdhttp.HandleHealth(l.lg.Named("health"), mux, srv)
		l.health = mux
	}
}

func (l *Listener) serveHealth(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	h, reason := l.health, l.reason
	l.mu.Unlock()
	if h != nil {
		h.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(etcdhttp.Health{Health: "false", Reason: reason})
}

// Close stops serving within a few seconds.
func (l *Listener) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
}
