// Package metrics is etcd_ctl's metrics listener and its own Prometheus metrics.
//
// The listener (etcd.metrics_port on the VM's IP) serves /metrics and /health. It is etcd_ctl's, not embed's
// --listen-metrics-urls: with https, embed serves metrics with the client port's TLS settings (embed/etcd.go,
// createMetricsListener), so a scraper would need a certificate of etcd.ca_cert, which also grants full access
// to the data; here it trusts etcd.metrics_ca_cert only. It also starts before the start decision, so an
// operator sees a member that is waiting to bootstrap or join, and /health answers 503 until etcd runs.
//
// /metrics is promhttp's handler for the Prometheus default registry, the registry etcd v3.6 registers its
// own metrics on (etcdserver/api/etcdhttp/metrics.go); etcd_ctl's metrics (all named etcd_ctl_*) are
// registered there too, so one scrape returns both: the start decision, catch-up, certificate expiry, moved-aside
// copies and alarms (metrics.go, collectors.go), and the maintenance counters and newest snapshot (upkeep.go).
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are etcd_ctl's own metrics. The zero value is not usable; use New.
type Metrics struct {
	now func() time.Time

	mu       sync.Mutex
	deciding stopwatch
	catchUp  stopwatch

	decision *prometheus.GaugeVec
	alarms   *alarmCollector
	upkeep   *upkeep // nil until RegisterUpkeep
}

// stopwatch times one phase of a start: zero before it begins, the time so far while it runs, the time it took
// once it ended.
type stopwatch struct {
	since time.Time
	took  time.Duration
	done  bool
}

func (s stopwatch) elapsed(now time.Time) time.Duration {
	switch {
	case s.done:
		return s.took
	case s.since.IsZero():
		return 0
	}
	return now.Sub(s.since)
}

// New creates etcd_ctl's metrics and registers them on reg: the start decision and how long it waited, the
// learner's catch-up time, the seconds until each configured certificate expires (certs), the moved-aside
// copies next to dataDir, and the cluster's active alarms once SetEtcd is called.
func New(reg prometheus.Registerer, certs []Cert, dataDir string, now func() time.Time) (*Metrics, error) {
	m := &Metrics{now: now}
	m.decision = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "etcd_ctl_start_decision",
		Help: "1 for how etcd_ctl started this member: bootstrap (created the cluster), join (added as a learner) or restart (kept its data); absent while it is still deciding.",
	}, []string{"kind"})
	wait := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "etcd_ctl_start_decision_wait_seconds",
		Help: "Seconds etcd_ctl spent deciding how to start (probing peers, waiting for a cluster to create or join, adding the learner); it grows while the decision is pending.",
	}, m.seconds(&m.deciding))
	catchUp := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "etcd_ctl_learner_catch_up_seconds",
		Help: "Seconds from the joining learner's etcd being ready until its promotion to a voting member; it grows while the learner catches up, and is 0 unless this start was a join.",
	}, m.seconds(&m.catchUp))
	m.alarms = &alarmCollector{}
	for _, c := range []prometheus.Collector{m.decision, wait, catchUp, m.alarms, &certCollector{certs: certs, now: now}, &movedAsideCollector{dataDir: dataDir}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) seconds(s *stopwatch) func() float64 {
	return func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return s.elapsed(m.now()).Seconds()
	}
}

func (m *Metrics) begin(s *stopwatch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	*s = stopwatch{since: m.now()}
}

// Deciding records that the start decision began.
func (m *Metrics) Deciding() { m.begin(&m.deciding) }

// Decided records the decision taken, and freezes the wait at the time it took.
func (m *Metrics) Decided(kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deciding.took, m.deciding.done = m.now().Sub(m.deciding.since), true
	m.decision.WithLabelValues(kind).Set(1)
}

// CatchingUp records that a joining learner's etcd is ready and catching up with the leader.
func (m *Metrics) CatchingUp() { m.begin(&m.catchUp) }

// Running records that the start is complete: a learner that was catching up is a voting member now.
func (m *Metrics) Running() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := &m.catchUp; !c.since.IsZero() && !c.done {
		c.took, c.done = m.now().Sub(c.since), true
	}
}

// SetEtcd makes the alarm metric read the running etcd's alarms (nil: etcd is not running).
func (m *Metrics) SetEtcd(a AlarmSource) { m.alarms.set(a) }
