package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/maintenance"
)

// upkeep counts what the maintenance loop and the operator commands did on this member's etcd_ctl.
type upkeep struct {
	compactions *prometheus.CounterVec
	defrags     *prometheus.CounterVec
	reclaimed   prometheus.Counter
	disarms     prometheus.Counter
}

// RegisterUpkeep adds the maintenance counters and this member's newest snapshot to reg: backupDir is where its
// snapshots are (config.BackupDir) and interval etcd.backup.interval_in_minutes (0: scheduled snapshots off).
func (m *Metrics) RegisterUpkeep(reg prometheus.Registerer, backupDir string, interval time.Duration) error {
	u := &upkeep{
		compactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcd_ctl_compactions_total",
			Help: "Compactions etcd_ctl made in its maintenance loop (early compaction near the quota, NOSPACE recovery), by result; etcd's automatic compactions and the etcd_ctl compact command are not counted.",
		}, []string{"result"}),
		defrags: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcd_ctl_defragmentations_total",
			Help: "Defragmentations the maintenance loop of this member's etcd_ctl ran (on any member of the cluster), by result.",
		}, []string{"result"}),
		reclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "etcd_ctl_defragmentation_reclaimed_bytes_total",
			Help: "Bytes of db file given back by the defragmentations this member's etcd_ctl ran.",
		}),
		disarms: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "etcd_ctl_nospace_disarms_total",
			Help: "NOSPACE alarms this member's etcd_ctl disarmed after its recovery brought every member below the limit.",
		}),
	}
	for _, r := range []string{"ok", "error"} {
		u.compactions.WithLabelValues(r)
		u.defrags.WithLabelValues(r)
	}
	intervalGauge := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "etcd_ctl_backup_interval_seconds",
		Help: "etcd.backup.interval_in_minutes in seconds: how often the cluster takes a scheduled snapshot (0: off).",
	})
	intervalGauge.Set(interval.Seconds())
	for _, c := range []prometheus.Collector{u.compactions, u.defrags, u.reclaimed, u.disarms, intervalGauge, &snapshotCollector{dir: backupDir}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.upkeep = u
	m.mu.Unlock()
	return nil
}

// MaintenanceHooks feed the maintenance counters (no-ops before RegisterUpkeep).
func (m *Metrics) MaintenanceHooks() maintenance.Hooks {
	m.mu.Lock()
	u := m.upkeep
	m.mu.Unlock()
	if u == nil {
		return maintenance.Hooks{}
	}
	return maintenance.Hooks{
		OnCompact: func(_ int64, err error) { u.compactions.WithLabelValues(result(err)).Inc() },
		OnDefrag: func(r maintenance.DefragResult, err error) {
			u.defrags.WithLabelValues(result(err)).Inc()
			if err == nil && r.Reclaimed() > 0 {
				u.reclaimed.Add(float64(r.Reclaimed()))
			}
		},
		OnDisarm: func() { u.disarms.Inc() },
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

var snapshotDesc = prometheus.NewDesc("etcd_ctl_last_snapshot_timestamp_seconds",
	"Unix time of the newest verified snapshot in this member's backup dir; absent when it holds none. Only one member takes each scheduled snapshot, so the cluster's newest is the max over its members.",
	nil, nil)

// snapshotCollector reads the backup dir at every scrape, so a snapshot taken by `etcd_ctl snapshot` (another
// process) or pruned by hand shows at once.
type snapshotCollector struct{ dir string }

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) { ch <- snapshotDesc }

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	m, err := backup.Latest(c.dir)
	if err != nil || m == nil {
		return // an unreadable dir must not fail the whole scrape; the absent series is what an alert sees
	}
	ch <- prometheus.MustNewConstMetric(snapshotDesc, prometheus.GaugeValue, float64(m.Time.UnixNano())/1e9)
}
