package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
	"github.com/etcd-release/etcd-release/src/testkit/promtest"
)

// shippedRulesWithShortFor copies the shipped alert rules into dir with every `for:` shortened, so that an alert
// fires within seconds; the expressions are exactly the shipped ones.
func shippedRulesWithShortFor(t *testing.T, dir, forDuration string) string {
	root, err := promtest.RepoRoot()
	require.NoError(t, err)
	rules, err := os.ReadFile(filepath.Join(root, promtest.RulesFile))
	require.NoError(t, err)
	p := filepath.Join(dir, "etcd-alerts.yml")
	require.NoError(t, os.WriteFile(p, promtest.ShortenFor(rules, forDuration), 0o644))
	return p
}

func startPrometheus(t *testing.T, configYAML string) *promtest.Server {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := promtest.Start(ctx, t.TempDir(), configYAML)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- prometheus log ----\n%s", srv.Log())
		}
		srv.Stop()
	})
	return srv
}

func firing(t *testing.T, srv *promtest.Server, name string) []promtest.Alert {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alerts, err := srv.ActiveAlerts(ctx)
	require.NoError(t, err)
	var out []promtest.Alert
	for _, a := range alerts {
		if a.Labels["alertname"] == name && a.State == "firing" {
			out = append(out, a)
		}
	}
	return out
}

func query(t *testing.T, srv *promtest.Server, q string) []promtest.Sample {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := srv.Query(ctx, q)
	require.NoError(t, err)
	return s
}

// TestPrometheusFiresMembersDownWhenAMemberStops: a real Prometheus scrapes the metrics listeners of a 3-member
// cluster of real etcd_ctl processes with the shipped rules (only `for:` shortened); after one member is
// stopped, EtcdMembersDown fires for the deployment and EtcdInsufficientMembers does not.
func TestPrometheusFiresMembersDownWhenAMemberStops(t *testing.T) {
	c := newCluster(t, 3, withTLS(false, false))
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	var targets []string
	for i := 0; i < 3; i++ {
		targets = append(targets, fmt.Sprintf("%q", localcluster.HostPort(c.config(i).MetricsURL())))
	}
	rules := shippedRulesWithShortFor(t, t.TempDir(), "5s")
	srv := startPrometheus(t, fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: etcd
    static_configs:
      - targets: [%s]
        labels: {bosh_deployment: %s}
`, rules, strings.Join(targets, ", "), c.layout.Deployment))

	// Every member is scraped, with etcd's and etcd_ctl's metrics: one bootstrap, two joins that caught up.
	require.Eventually(t, func() bool { return len(query(t, srv, `up{job="etcd"} == 1`)) == 3 }, time.Minute, time.Second)
	require.Eventually(t, func() bool { return len(query(t, srv, `etcd_server_has_leader == 1`)) == 3 }, time.Minute, time.Second)
	kinds := map[string]int{}
	for _, s := range query(t, srv, `etcd_ctl_start_decision == 1`) {
		kinds[s.Labels["kind"]]++
	}
	require.Equal(t, map[string]int{"bootstrap": 1, "join": 2}, kinds)
	require.Len(t, query(t, srv, `etcd_ctl_learner_catch_up_seconds > 0`), 2, "both joiners report their catch-up time")

	// Healthy: the alert stays silent for longer than its (shortened) for.
	time.Sleep(10 * time.Second)
	require.Empty(t, firing(t, srv, "EtcdMembersDown"), "no member is down yet")

	c.stop(2)
	var alerts []promtest.Alert
	require.Eventually(t, func() bool {
		alerts = firing(t, srv, "EtcdMembersDown")
		return len(alerts) == 1
	}, 90*time.Second, time.Second, "EtcdMembersDown never fired")
	require.Equal(t, c.layout.Deployment, alerts[0].Labels["bosh_deployment"])
	require.Equal(t, "1e+00", alerts[0].Value, "one member down")
	require.Empty(t, firing(t, srv, "EtcdInsufficientMembers"), "two of three members keep the quorum")
}

// withMetricsHTTPS turns on etcd.metrics_scheme https with a metrics CA of its own; the server certificate covers
// every member address.
func withMetricsHTTPS(m **pki.MetricsSet) option {
	return func(l *localcluster.Layout) {
		var ips []net.IP
		for i := 0; i < 5; i++ {
			ips = append(ips, net.ParseIP(l.Address(i)))
		}
		set, err := pki.GenerateMetricsSet(ips, nil)
		if err != nil {
			panic(err)
		}
		*m = set
		l.Tweak = func(_ int, p *config.Properties) {
			p.MetricsScheme = "https"
			p.MetricsCACert, p.MetricsServerCert, p.MetricsServerKey = string(set.CACert), string(set.ServerCert), config.Secret(set.ServerKey)
		}
	}
}

// TestMetricsHTTPSServesOnlyTheMetricsCA: with etcd.metrics_scheme https, the listener of a real etcd_ctl refuses
// a scraper without a certificate and one with the etcd client certificate, serves one with the metrics CA's
// scraper certificate (a real Prometheus scrapes it; another without the certificate gets no data), and that
// scraper certificate opens no connection to the client port.
func TestMetricsHTTPSServesOnlyTheMetricsCA(t *testing.T) {
	var ms *pki.MetricsSet
	c := newCluster(t, 1, withTLS(true, true), withMetricsHTTPS(&ms))
	c.start(0)
	c.waitReady(0, time.Minute)
	cfg := c.config(0)
	metricsURL := cfg.MetricsURL()
	require.True(t, strings.HasPrefix(metricsURL, "https://"), metricsURL)

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ms.CACert))
	clientPool := x509.NewCertPool()
	require.True(t, clientPool.AppendCertsFromPEM([]byte(cfg.Etcd.CACert)))
	httpsClient := func(roots *x509.CertPool, certPEM, keyPEM []byte) *http.Client {
		tc := &tls.Config{RootCAs: roots}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			require.NoError(t, err)
			tc.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}

	_, err := httpsClient(pool, nil, nil).Get(metricsURL)
	require.Error(t, err, "no client certificate: refused")
	_, err = httpsClient(pool, []byte(cfg.Etcd.ClientCert), []byte(cfg.Etcd.ClientKey.Value())).Get(metricsURL)
	require.Error(t, err, "the etcd client certificate is not signed by the metrics CA: refused")

	resp, err := httpsClient(pool, ms.ScraperCert, ms.ScraperKey).Get(metricsURL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "\netcd_server_has_leader 1\n")
	require.Contains(t, string(body), `etcd_ctl_certificate_expires_in_seconds{index="0",property="etcd.metrics_server_cert",subject="etcd-metrics"}`)
	require.Contains(t, string(body), `etcd_ctl_start_decision{kind="bootstrap"} 1`)

	// The scraper's certificate grants no data access: the client port refuses it.
	_, err = httpsClient(clientPool, ms.ScraperCert, ms.ScraperKey).Get(cfg.Self().ClientURL + "/version")
	require.Error(t, err, "the scraper certificate must not open the client port")

	// A real Prometheus with the scraper certificate scrapes the member; one without it does not.
	dir := t.TempDir()
	for name, content := range map[string][]byte{"ca.crt": ms.CACert, "scraper.crt": ms.ScraperCert, "scraper.key": ms.ScraperKey} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), content, 0o600))
	}
	target := localcluster.HostPort(metricsURL)
	scrapeConfig := func(withCert bool) string {
		tlsCfg := fmt.Sprintf("{ca_file: %q}", filepath.Join(dir, "ca.crt"))
		if withCert {
			tlsCfg = fmt.Sprintf("{ca_file: %q, cert_file: %q, key_file: %q}", filepath.Join(dir, "ca.crt"), filepath.Join(dir, "scraper.crt"), filepath.Join(dir, "scraper.key"))
		}
		return fmt.Sprintf("global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: etcd\n    scheme: https\n    tls_config: %s\n    static_configs:\n      - targets: [%q]\n", tlsCfg, target)
	}
	with, without := startPrometheus(t, scrapeConfig(true)), startPrometheus(t, scrapeConfig(false))
	require.Eventually(t, func() bool { return len(query(t, with, `etcd_server_has_leader{job="etcd"} == 1`)) == 1 }, time.Minute, time.Second)
	require.Eventually(t, func() bool { return len(query(t, without, `up{job="etcd"} == 0`)) == 1 }, time.Minute, time.Second)
	require.Empty(t, query(t, without, `etcd_server_has_leader`), "a scraper without the metrics certificate gets no metrics")
}

// TestMetricsPortInUseStartsNothing: when another process holds etcd.metrics_port on the VM's address, start
// fails naming the property, before it writes a pidfile or creates the data dir.
func TestMetricsPortInUseStartsNothing(t *testing.T) {
	c := newCluster(t, 1, withTLS(false, false))
	cfg := c.config(0)
	l, err := net.Listen("tcp", net.JoinHostPort(cfg.MetricsHost(), fmt.Sprint(cfg.Etcd.MetricsPort)))
	require.NoError(t, err)
	defer l.Close()
	out, err := exec.Command(c.bin, "start", "--config", c.layout.ConfigPath(0)).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "nothing was started: etcd.metrics_port: listening on "+l.Addr().String())
	require.Contains(t, string(out), "address already in use")
	_, statErr := os.Stat(cfg.Paths.DataDir)
	require.True(t, os.IsNotExist(statErr), "no data dir was created")
	_, statErr = os.Stat(cfg.Paths.PidFile())
	require.True(t, os.IsNotExist(statErr), "no pidfile was written")
}
