package metrics

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
	"github.com/etcd-release/etcd-release/src/testkit/freeport"
)

func TestListenAddressAndTLSConfig(t *testing.T) {
	c, _ := tlsCfg(t, "http")
	require.Equal(t, "10.0.0.1:2381", ListenAddress(c))
	tc, err := TLSConfig(c)
	require.NoError(t, err)
	require.Nil(t, tc, "http has no TLS")

	c, _ = tlsCfg(t, "https")
	tc, err = TLSConfig(c)
	require.NoError(t, err)
	require.Equal(t, tls.RequireAndVerifyClientCert, tc.ClientAuth)
	require.Len(t, tc.Certificates, 1)

	c.Etcd.MetricsServerKey = "garbage"
	_, err = TLSConfig(c)
	require.ErrorContains(t, err, "etcd.metrics_server_key")
	c, _ = tlsCfg(t, "https")
	c.Etcd.MetricsCACert = "garbage"
	_, err = TLSConfig(c)
	require.ErrorContains(t, err, "etcd.metrics_ca_cert")
}

func get(cl *http.Client, u string) (int, string, error) {
	resp, err := cl.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// startEtcd runs a real one-member embedded etcd on loopback.
func startEtcd(t *testing.T) *embed.Etcd {
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Logger, cfg.LogLevel = "zap", "error"
	u := func(p int) []url.URL { return []url.URL{{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(p)}} }
	cfg.ListenClientUrls = u(freeport.For(t))
	cfg.AdvertiseClientUrls = cfg.ListenClientUrls
	cfg.ListenPeerUrls = u(freeport.For(t))
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	cfg.InitialCluster = cfg.Name + "=" + cfg.ListenPeerUrls[0].String()
	e, err := embed.StartEtcd(cfg)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("embedded etcd did not become ready")
	}
	return e
}

// TestHTTPSListenerServesOnlyMetricsScrapers runs the real listener with etcd.metrics_scheme https in front of a
// real embedded etcd: without a client certificate, or with the etcd client certificate (data access), the
// handshake fails; the scraper certificate of the metrics CA gets etcd's and etcd_ctl's metrics. /health is 503
// until etcd runs, then etcd's own check, and a NOSPACE alarm shows in etcd_ctl_alarm_active and /health.
func TestHTTPSListenerServesOnlyMetricsScrapers(t *testing.T) {
	c, ms := loopbackHTTPS(t)
	svc, err := Start(c, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	require.NoError(t, err)
	t.Cleanup(svc.Close)

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ms.CACert))
	client := func(certPEM, keyPEM []byte) *http.Client {
		tc := &tls.Config{RootCAs: pool}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			require.NoError(t, err)
			tc.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	base := "https://" + ListenAddress(c)

	_, _, err = get(client(nil, nil), base+"/metrics")
	require.Error(t, err, "a scraper without a client certificate is refused")
	_, _, err = get(client([]byte(c.Etcd.ClientCert), []byte(c.Etcd.ClientKey.Value())), base+"/metrics")
	require.Error(t, err, "the etcd client certificate (etcd.ca_cert) is not a metrics certificate")
	plain := &http.Client{Timeout: 10 * time.Second}
	code, _, err := get(plain, "http://"+ListenAddress(c)+"/metrics")
	if err == nil {
		require.NotEqual(t, http.StatusOK, code, "no plaintext metrics with https")
	}

	scraper := client(ms.ScraperCert, ms.ScraperKey)
	code, body, err := get(scraper, base+"/health")
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "etcd is not running yet")

	svc.Deciding()
	e := startEtcd(t)
	svc.Decided("bootstrap")
	svc.EtcdRunning(e.Server, "bootstrap")
	code, body, err = get(scraper, base+"/metrics")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{"\netcd_server_has_leader 1\n", "\netcd_ctl_start_decision{kind=\"bootstrap\"} 1\n",
		"etcd_ctl_certificate_expires_in_seconds{index=\"0\",property=\"etcd.metrics_server_cert\"", "\netcd_ctl_moved_aside_copies 0\n"} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, "etcd_ctl_alarm_active{")
	code, body, err = get(scraper, base+"/health")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)

	// A real NOSPACE alarm, raised through etcd's maintenance API as the quota check does.
	raiseNoSpace(t, e)
	code, body, err = get(scraper, base+"/metrics")
	require.NoError(t, err)
	require.Contains(t, body, "etcd_ctl_alarm_active{alarm=\"NOSPACE\",member_id=\""+e.Server.MemberID().String()+"\"} 1")
	code, body, err = get(scraper, base+"/health")
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, code)
	var h struct{ Health, Reason string }
	require.NoError(t, json.Unmarshal([]byte(body), &h))
	require.True(t, strings.Contains(h.Reason, "NOSPACE"), h.Reason)

	svc.EtcdStopping("etcd is stopping")
	code, body, err = get(scraper, base+"/health")
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "etcd is stopping")
}

// loopbackHTTPS is a config whose metrics listener is https on 127.0.0.1 and a free port.
func loopbackHTTPS(t *testing.T) (*config.Config, *pki.MetricsSet) {
	set, err := pki.GenerateClusterSet(pki.SetOptions{IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	require.NoError(t, err)
	m, err := pki.GenerateMetricsSet([]net.IP{net.ParseIP("127.0.0.1")}, nil)
	require.NoError(t, err)
	c := config.Default()
	c.Instance = config.Instance{Name: "etcd", IP: "127.0.0.1", Address: "127.0.0.1"}
	e := &c.Etcd
	e.CACert, e.ServerCert, e.ClientCert, e.ClientKey = string(set.CACert), string(set.ServerCert), string(set.ClientCert), config.Secret(set.ClientKey)
	e.MetricsScheme, e.MetricsPort = "https", freeport.For(t)
	e.MetricsCACert, e.MetricsServerCert, e.MetricsServerKey = string(m.CACert), string(m.ServerCert), config.Secret(m.ServerKey)
	return &c, m
}

// raiseNoSpace activates a NOSPACE alarm for e's member through etcd's maintenance API, the request etcd's quota
// check itself proposes when the database reaches its quota.
func raiseNoSpace(t *testing.T, e *embed.Etcd) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Config().ListenClientUrls[0].String()}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pb.NewMaintenanceClient(cli.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: uint64(e.Server.MemberID()), Alarm: pb.AlarmType_NOSPACE})
	require.NoError(t, err)
}
