package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

// authProps declares a role limited to /app/, a read-only role, a password user with the first and a
// certificate user (no password) with the second.
func authProps(appPassword string) config.AuthProperties {
	return config.AuthProperties{Enabled: true, RootPassword: "root-secret",
		Roles: []config.AuthRole{
			{Name: "app", Permissions: []config.AuthPermission{{Prefix: "/app/", Access: config.AccessReadWrite}}},
			{Name: "reader", Permissions: []config.AuthPermission{{Prefix: "/", Access: config.AccessRead}}},
		},
		Users: []config.AuthUser{
			{Name: "app", Password: config.Secret(appPassword), Roles: []string{"app"}},
			{Name: "ro-client", Roles: []string{"reader"}},
		}}
}

func withAuth(appPassword string) option {
	return func(l *localcluster.Layout) {
		l.Tweak = func(_ int, p *config.Properties) { p.Auth = authProps(appPassword) }
	}
}

// userClient is a client of member i's client port with the given TLS certificate and, if user is set, a
// password login.
func (c *cluster) userClient(i int, certPEM, keyPEM []byte, user, password string) *clientv3.Client {
	cfg := c.config(i)
	tc := tlsOf(c.t, cfg)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(c.t, err)
	tc.Certificates = []tls.Certificate{pair}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cfg.Self().ClientURL}, DialTimeout: 5 * time.Second,
		TLS: tc, Username: user, Password: password})
	require.NoError(c.t, err)
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

func put(cli *clientv3.Client, k string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := cli.Put(ctx, k, "v")
	return err
}

func get(cli *clientv3.Client, k string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := cli.Get(ctx, k)
	return err
}

// TestAuthFromProperties: etcd.auth.* turns authentication on with the declared users and roles; a password user
// limited to /app/ is denied elsewhere, a certificate user with a read-only role cannot write; etcd_ctl's status,
// a wiped member's join and a drain keep working; a password changed by a rolling restart with a writer running
// takes effect with no acknowledged write lost.
func TestAuthFromProperties(t *testing.T) {
	c := newCluster(t, 3, withTLS(true, true), withAuth("app-secret-1"))
	c.startAll(3)
	admin := c.client(0)
	require.Eventually(t, func() bool {
		st, err := admin.AuthStatus(context.Background())
		return err == nil && st.Enabled
	}, time.Minute, time.Second, "authentication is on")
	c.requireHealthy(3)

	certs := c.layout.Certs
	app := c.userClient(0, certs.ClientCert, []byte(certs.ClientKey), "app", "app-secret-1")
	require.NoError(t, put(app, "/app/x"))
	for _, err := range []error{put(app, "/other"), get(app, "/other")} {
		require.True(t, errors.Is(err, rpctypes.ErrPermissionDenied), "app outside /app/: %v", err)
	}
	ca, err := pki.LoadCA(certs.CACert, certs.CAKey)
	require.NoError(t, err)
	roPair, err := ca.Issue(pki.Request{CommonName: "ro-client", Usage: pki.UsageClient})
	require.NoError(t, err)
	ro := c.userClient(1, roPair.CertPEM, roPair.KeyPEM, "", "")
	require.NoError(t, get(ro, "/app/x"))
	require.True(t, errors.Is(put(ro, "/app/y"), rpctypes.ErrPermissionDenied), "the read-only certificate user cannot write")

	// etcd_ctl's own work with authentication on: a wiped member rejoins, a drain moves leadership.
	c.stop(2)
	c.wipe(2)
	c.start(2)
	c.waitReady(2, 2*time.Minute)
	c.requireHealthy(3)
	out, err := c.drain(c.leader(), "job_changed", 1024)
	require.NoError(t, err, out)

	// A new password, rolled out one member at a time under a writer.
	w := c.writer("/auth-roll")
	for i := 0; i < 3; i++ {
		c.layout.Tweak = func(_ int, p *config.Properties) { p.Auth = authProps("app-secret-2") }
		require.NoError(t, c.layout.WriteConfig(i, 3))
		c.stop(i)
		c.start(i)
		c.waitReady(i, 2*time.Minute)
	}
	require.Eventually(t, func() bool {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.config(0).Self().ClientURL}, DialTimeout: 5 * time.Second,
			TLS: tlsOf(t, c.config(0)), Username: "app", Password: "app-secret-2"})
		if err != nil {
			return false
		}
		defer cli.Close()
		return put(cli, "/app/after") == nil
	}, time.Minute, time.Second, "the new password works")
	_, err = clientv3.New(clientv3.Config{Endpoints: []string{c.config(0).Self().ClientURL}, DialTimeout: 5 * time.Second,
		TLS: tlsOf(t, c.config(0)), Username: "app", Password: "app-secret-1"})
	require.Error(t, err, "the old password no longer works")
	c.requireNoLoss("/auth-roll", w.Stop())
	logs := strings.Join(c.logLinesAll(3, "changed etcd's access control"), "\n")
	require.Contains(t, logs, "set-password app")
	for _, secret := range []string{"app-secret-1", "app-secret-2", "root-secret"} {
		require.Empty(t, c.logLinesAll(3, secret), "a password was logged")
	}
}

// tlsOf is the client TLS configuration of member cfg: its CA and etcd.client_cert.
func tlsOf(t testing.TB, cfg *config.Config) *tls.Config {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(cfg.Etcd.CACert)))
	pair, err := tls.X509KeyPair([]byte(cfg.Etcd.ClientCert), []byte(cfg.Etcd.ClientKey.Value()))
	require.NoError(t, err)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}
}
