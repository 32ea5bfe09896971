package metrics

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

// Cert is one configured certificate whose expiry is exported.
type Cert struct {
	// Property is the BOSH property that holds it (etcd.server_cert, etcd.ca_cert, …).
	Property string
	// Index is its position in the property's PEM bundle (CA bundles hold several during rotation).
	Index    int
	Subject  string
	NotAfter time.Time
}

// Certificates lists every certificate etcd_ctl uses with c: the client and peer CA bundles and certificates
// when their TLS is on, and the metrics listener's with https. Properties that do not parse are skipped
// (validation refuses them before anything starts).
func Certificates(c *config.Config) []Cert {
	e := c.Etcd
	var props []struct{ name, pem string }
	add := func(name, pem string) { props = append(props, struct{ name, pem string }{name, pem}) }
	if e.RequireSSL {
		add("etcd.ca_cert", e.CACert)
		add("etcd.server_cert", e.ServerCert)
		add("etcd.client_cert", e.ClientCert)
	}
	if e.PeerRequireSSL {
		add("etcd.peer_ca_cert", e.PeerCACert)
		add("etcd.peer_cert", e.PeerCert)
	}
	if e.MetricsScheme == "https" {
		add("etcd.metrics_ca_cert", e.MetricsCACert)
		add("etcd.metrics_server_cert", e.MetricsServerCert)
	}
	var out []Cert
	for _, p := range props {
		certs, err := pki.ParseCertificates([]byte(p.pem))
		if err != nil {
			continue
		}
		for i, x := range certs {
			out = append(out, Cert{Property: p.name, Index: i, Subject: subject(x), NotAfter: x.NotAfter})
		}
	}
	return out
}

func subject(x *x509.Certificate) string {
	if x.Subject.CommonName != "" {
		return x.Subject.CommonName
	}
	return x.Subject.String()
}

var certDesc = prometheus.NewDesc("etcd_ctl_certificate_expires_in_seconds",
	"Seconds until the certificate expires (negative once expired), per BOSH property and position in its PEM bundle.",
	[]string{"property", "index", "subject"}, nil)

// certCollector computes the time left at every scrape; the certificates are fixed for the process's life (a new
// certificate is a new deploy, which restarts etcd_ctl).
type certCollector struct {
	certs []Cert
	now   func() time.Time
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- certDesc }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, x := range c.certs {
		ch <- prometheus.MustNewConstMetric(certDesc, prometheus.GaugeValue, x.NotAfter.Sub(now).Seconds(), x.Property, strconv.Itoa(x.Index), x.Subject)
	}
}

var movedAsideDesc = prometheus.NewDesc("etcd_ctl_moved_aside_copies",
	"Data dirs etcd_ctl moved aside (<data dir>.moved-aside.<time>.<reason>) that are still on the disk; they are never deleted automatically.",
	nil, nil)

// movedAsideCollector counts the copies at every scrape, so that an operator who removed one sees the count drop.
type movedAsideCollector struct{ dataDir string }

func (c *movedAsideCollector) Describe(ch chan<- *prometheus.Desc) { ch <- movedAsideDesc }

func (c *movedAsideCollector) Collect(ch chan<- prometheus.Metric) {
	dir := filepath.Dir(filepath.Clean(c.dataDir))
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		// An invalid metric would fail the whole scrape (promhttp answers 500), etcd's metrics included; a
		// missing count is the lesser harm, and an absent series is what an operator's alert can catch.
		return
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	ch <- prometheus.MustNewConstMetric(movedAsideDesc, prometheus.GaugeValue, float64(countMovedAside(c.dataDir, names)))
}

// countMovedAside counts the names (siblings of dataDir) that membership.MoveAside's naming produces:
// "<base>.moved-aside.<time>.<reason>".
func countMovedAside(dataDir string, names []string) int {
	prefix := filepath.Base(filepath.Clean(dataDir)) + ".moved-aside."
	n := 0
	for _, name := range names {
		if rest, ok := strings.CutPrefix(name, prefix); ok && strings.Contains(rest, ".") {
			n++
		}
	}
	return n
}

// AlarmSource is the running etcd server's alarm list (etcdserver.EtcdServer.Alarms): alarms raised by any member
// of the cluster, as the alarm store replicates them.
type AlarmSource interface {
	Alarms() []*pb.AlarmMember
}

var alarmDesc = prometheus.NewDesc("etcd_ctl_alarm_active",
	"1 for every alarm active in the cluster (NOSPACE: a member's database reached its quota and the cluster only serves reads and deletes; CORRUPT), by the member that raised it.",
	[]string{"alarm", "member_id"}, nil)

type alarmCollector struct {
	mu  sync.Mutex
	src AlarmSource
}

func (c *alarmCollector) set(a AlarmSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.src = a
}

func (c *alarmCollector) Describe(ch chan<- *prometheus.Desc) { ch <- alarmDesc }

func (c *alarmCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	if src == nil {
		return
	}
	for _, a := range src.Alarms() {
		ch <- prometheus.MustNewConstMetric(alarmDesc, prometheus.GaugeValue, 1, a.Alarm.String(), strconv.FormatUint(a.MemberID, 16))
	}
}
