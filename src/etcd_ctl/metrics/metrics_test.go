package metrics

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

func TestStopwatch(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		s    stopwatch
		now  time.Time
		want time.Duration
	}{
		"not begun":    {stopwatch{}, t0, 0},
		"running":      {stopwatch{since: t0}, t0.Add(90 * time.Second), 90 * time.Second},
		"ended":        {stopwatch{since: t0, took: 5 * time.Second, done: true}, t0.Add(time.Hour), 5 * time.Second},
		"ended at one": {stopwatch{since: t0, done: true}, t0.Add(time.Hour), 0},
	} {
		t.Run(name, func(t *testing.T) { require.Equal(t, tc.want, tc.s.elapsed(tc.now)) })
	}
}

func TestCountMovedAside(t *testing.T) {
	for name, tc := range map[string]struct {
		dataDir string
		names   []string
		want    int
	}{
		"none":       {"/var/vcap/store/etcd", []string{"etcd", "lost+found"}, 0},
		"two":        {"/var/vcap/store/etcd", []string{"etcd", "etcd.moved-aside.20260101T000000Z.removed-member", "etcd.moved-aside.20260102T000000Z.other-cluster"}, 2},
		"trailing /": {"/var/vcap/store/etcd/", []string{"etcd.moved-aside.20260101T000000Z.rolled-back-learner"}, 1},
		"other base": {"/var/vcap/store/etcd", []string{"etcd2.moved-aside.20260101T000000Z.x"}, 0},
		"no reason":  {"/var/vcap/store/etcd", []string{"etcd.moved-aside.20260101T000000Z"}, 0},
	} {
		t.Run(name, func(t *testing.T) { require.Equal(t, tc.want, countMovedAside(tc.dataDir, tc.names)) })
	}
}

func tlsCfg(t *testing.T, metricsScheme string) (*config.Config, *pki.MetricsSet) {
	set, err := pki.GenerateClusterSet(pki.SetOptions{IPs: []net.IP{net.ParseIP("10.0.0.1")}})
	require.NoError(t, err)
	m, err := pki.GenerateMetricsSet([]net.IP{net.ParseIP("10.0.0.1")}, nil)
	require.NoError(t, err)
	c := config.Default()
	c.Instance = config.Instance{Name: "etcd", IP: "10.0.0.1", Address: "10.0.0.1"}
	e := &c.Etcd
	e.CACert, e.ServerCert, e.ClientCert = string(set.CACert), string(set.ServerCert), string(set.ClientCert)
	e.PeerCACert, e.PeerCert = string(set.PeerCACert), string(set.PeerCert)
	e.MetricsScheme = metricsScheme
	e.MetricsCACert, e.MetricsServerCert, e.MetricsServerKey = string(m.CACert), string(m.ServerCert), config.Secret(m.ServerKey)
	return &c, m
}

func TestCertificates(t *testing.T) {
	props := func(cs []Cert) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Property+"/"+c.Subject)
		}
		return out
	}
	c, _ := tlsCfg(t, "https")
	require.Equal(t, []string{"etcd.ca_cert/etcd-ca", "etcd.server_cert/etcd-server", "etcd.client_cert/etcd-client",
		"etcd.peer_ca_cert/etcd-peer-ca", "etcd.peer_cert/etcd-peer", "etcd.metrics_ca_cert/etcd-metrics-ca", "etcd.metrics_server_cert/etcd-metrics"}, props(Certificates(c)))

	c, _ = tlsCfg(t, "http")
	c.Etcd.RequireSSL = false
	require.Equal(t, []string{"etcd.peer_ca_cert/etcd-peer-ca", "etcd.peer_cert/etcd-peer"}, props(Certificates(c)), "only the TLS in use")

	// A CA bundle during rotation: every certificate, by position.
	other, err := pki.GenerateCA("new-ca", 0)
	require.NoError(t, err)
	c.Etcd.PeerCACert += string(other.CertPEM())
	c.Etcd.PeerCert = "not pem"
	got := Certificates(c)
	require.Equal(t, []string{"etcd.peer_ca_cert/etcd-peer-ca", "etcd.peer_ca_cert/new-ca"}, props(got), "unparsable properties are skipped")
	require.Equal(t, 1, got[1].Index)
}

// gather returns name{labels} → value of every metric in reg.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

func TestMetricsValues(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	c, _ := tlsCfg(t, "http")
	certs := Certificates(c)
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	m, err := New(reg, certs, dir+"/etcd", clock)
	require.NoError(t, err)

	got := gather(t, reg)
	require.Equal(t, 0.0, got["etcd_ctl_start_decision_wait_seconds{}"])
	require.NotContains(t, got, "etcd_ctl_start_decision{kind=join}", "no decision before deciding")
	require.Equal(t, 0.0, got["etcd_ctl_moved_aside_copies{}"])
	require.InDelta(t, certs[1].NotAfter.Sub(now).Seconds(), got["etcd_ctl_certificate_expires_in_seconds{index=0,property=etcd.server_cert,subject=etcd-server}"], 0.001)

	m.Deciding()
	now = now.Add(42 * time.Second)
	require.Equal(t, 42.0, gather(t, reg)["etcd_ctl_start_decision_wait_seconds{}"], "grows while deciding")
	m.Decided("join")
	m.CatchingUp()
	now = now.Add(time.Hour)
	got = gather(t, reg)
	require.Equal(t, 42.0, got["etcd_ctl_start_decision_wait_seconds{}"], "frozen at the decision")
	require.Equal(t, 1.0, got["etcd_ctl_start_decision{kind=join}"])
	require.Equal(t, 3600.0, got["etcd_ctl_learner_catch_up_seconds{}"])
	m.Running()
	now = now.Add(time.Hour)
	got = gather(t, reg)
	require.Equal(t, 3600.0, got["etcd_ctl_learner_catch_up_seconds{}"])
	require.InDelta(t, certs[1].NotAfter.Sub(now).Seconds(), got["etcd_ctl_certificate_expires_in_seconds{index=0,property=etcd.server_cert,subject=etcd-server}"], 0.001, "computed at scrape time")

	require.NoError(t, mkdirs(dir, "etcd", "etcd.moved-aside.20260101T000000Z.removed-member", "etcd.moved-aside.20260102T000000Z.other-cluster"))
	require.Equal(t, 2.0, gather(t, reg)["etcd_ctl_moved_aside_copies{}"])
}

func TestRunningWithoutCatchUp(t *testing.T) {
	require.Equal(t, membership.KindJoin, KindJoin)
	reg := prometheus.NewRegistry()
	m, err := New(reg, nil, t.TempDir()+"/etcd", time.Now)
	require.NoError(t, err)
	m.Deciding()
	m.Decided(membership.KindRestart)
	m.Running()
	got := gather(t, reg)
	require.Equal(t, 0.0, got["etcd_ctl_learner_catch_up_seconds{}"], "a restart has no catch-up")
	require.Equal(t, 1.0, got["etcd_ctl_start_decision{kind=restart}"])
}

func TestMovedAsideWithoutDisk(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := New(reg, nil, t.TempDir()+"/no-disk/etcd", time.Now)
	require.NoError(t, err)
	require.Equal(t, 0.0, gather(t, reg)["etcd_ctl_moved_aside_copies{}"], "no persistent disk yet: no copies, and the scrape still succeeds")
}

// TestMovedAsideCountsMembershipsCopies moves real data dirs aside with membership.MoveAside, so that the count
// follows its naming.
func TestMovedAsideCountsMembershipsCopies(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "etcd")
	require.NoError(t, os.MkdirAll(dataDir, 0o700))
	reg := prometheus.NewRegistry()
	_, err := New(reg, nil, dataDir, time.Now)
	require.NoError(t, err)
	require.Equal(t, 0.0, gather(t, reg)["etcd_ctl_moved_aside_copies{}"])
	_, err = membership.MoveAside(dataDir, "removed-member", time.Now())
	require.NoError(t, err)
	_, err = membership.MoveAside(dataDir, "other cluster", time.Now().Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, 2.0, gather(t, reg)["etcd_ctl_moved_aside_copies{}"])
}
