package config

import (
	"fmt"
	"strconv"
	"time"
)

// Auto compaction modes, as etcd's --auto-compaction-mode names them.
const (
	CompactionPeriodic = "periodic"
	CompactionRevision = "revision"
)

// SuggestedMaxQuotaBytes is the largest backend quota etcd suggests (8 GiB); etcd logs a warning above it
// (server/storage/quota.go, MaxQuotaBytes).
const SuggestedMaxQuotaBytes int64 = 8 << 30

// DefaultQuotaBytes is etcd's backend quota when etcd.quota_backend_bytes is 0 (server/storage/quota.go,
// DefaultQuotaBytes).
const DefaultQuotaBytes int64 = 2 << 30

// MaintenanceProperties are the `etcd.maintenance.*` job properties: when etcd_ctl defragments members and
// recovers from the NOSPACE alarm (see the maintenance package).
type MaintenanceProperties struct {
	// Enabled runs etcd_ctl's maintenance loop (defragmentation, NOSPACE recovery, quota warnings).
	Enabled bool `json:"enabled"`
	// CheckIntervalInSeconds is how often the loop looks at every member's db size and the alarms.
	CheckIntervalInSeconds int `json:"check_interval_in_seconds"`
	// DefragMinDBSizeBytes: a member whose db file is smaller is not defragmented for fragmentation alone.
	DefragMinDBSizeBytes int64 `json:"defrag_min_db_size_bytes"`
	// DefragMaxInUseRatio: a member is defragmented when in-use/db size is at or below this ratio.
	DefragMaxInUseRatio float64 `json:"defrag_max_in_use_ratio"`
	// QuotaWarningRatio: above this share of the quota etcd_ctl warns, and defragments regardless of the
	// minimum size when at least half the file is free.
	QuotaWarningRatio float64 `json:"quota_warning_ratio"`
	// CompactNearQuota: compact to the current revision when a db file is above QuotaWarningRatio and mostly in use
	// (see maintenance.EarlyCompaction), rather than keep the retention's history until NOSPACE.
	CompactNearQuota bool `json:"compact_near_quota"`
	// NospaceDisarmRatio: the NOSPACE alarm is disarmed once every member's db file is below this share of the
	// quota (after compaction and defragmentation); above it the alarm would be raised again at once.
	NospaceDisarmRatio float64 `json:"nospace_disarm_ratio"`
}

// CheckInterval is etcd.maintenance.check_interval_in_seconds as a duration.
func (m MaintenanceProperties) CheckInterval() time.Duration {
	return time.Duration(m.CheckIntervalInSeconds) * time.Second
}

// Quota is the effective backend quota in bytes (etcd's default when etcd.quota_backend_bytes is 0).
func (p Properties) Quota() int64 {
	if p.QuotaBackendBytes > 0 {
		return p.QuotaBackendBytes
	}
	return DefaultQuotaBytes
}

// DefaultMaintenance are the job spec defaults of etcd.maintenance.*.
func DefaultMaintenance() MaintenanceProperties {
	return MaintenanceProperties{
		Enabled:                true,
		CheckIntervalInSeconds: 60,
		DefragMinDBSizeBytes:   100 << 20,
		DefragMaxInUseRatio:    0.5,
		QuotaWarningRatio:      0.8,
		CompactNearQuota:       true,
		NospaceDisarmRatio:     0.8,
	}
}

// validateMaintenance checks etcd.auto_compaction_*, etcd.maintenance.* and returns the quota warnings.
func (c *Config) validateMaintenance(add func(prop, format string, a ...any)) (warnings []string) {
	e := c.Etcd
	switch e.AutoCompactionMode {
	case CompactionPeriodic:
		if d, err := ParsePeriodicRetention(e.AutoCompactionRetention); err != nil || d < 0 {
			add("etcd.auto_compaction_retention", "got %q, with etcd.auto_compaction_mode periodic it must be a duration such as 5m or 1h "+
				"(a bare number means hours; \"0\" switches automatic compaction off)", e.AutoCompactionRetention)
		}
	case CompactionRevision:
		if n, err := strconv.ParseInt(e.AutoCompactionRetention, 10, 64); err != nil || n < 0 {
			add("etcd.auto_compaction_retention", "got %q, with etcd.auto_compaction_mode revision it must be a number of revisions to keep "+
				"(e.g. 10000; \"0\" switches automatic compaction off)", e.AutoCompactionRetention)
		}
	default:
		add("etcd.auto_compaction_mode", "got %q, must be periodic (keep a time window of history) or revision (keep a number of revisions)", e.AutoCompactionMode)
	}
	m := e.Maintenance
	if m.CheckIntervalInSeconds <= 0 {
		add("etcd.maintenance.check_interval_in_seconds", "got %d, must be positive (default 60)", m.CheckIntervalInSeconds)
	}
	if m.DefragMinDBSizeBytes < 0 {
		add("etcd.maintenance.defrag_min_db_size_bytes", "got %d, must be 0 or more", m.DefragMinDBSizeBytes)
	}
	ratio := func(prop string, v float64, def float64) {
		if v <= 0 || v > 1 {
			add(prop, "got %g, must be a ratio above 0 and at most 1 (default %g)", v, def)
		}
	}
	d := DefaultMaintenance()
	ratio("etcd.maintenance.defrag_max_in_use_ratio", m.DefragMaxInUseRatio, d.DefragMaxInUseRatio)
	ratio("etcd.maintenance.quota_warning_ratio", m.QuotaWarningRatio, d.QuotaWarningRatio)
	ratio("etcd.maintenance.nospace_disarm_ratio", m.NospaceDisarmRatio, d.NospaceDisarmRatio)
	if e.QuotaBackendBytes > SuggestedMaxQuotaBytes {
		warnings = append(warnings, fmt.Sprintf("etcd.quota_backend_bytes: %d is above %d (8 GiB), the largest quota etcd suggests; "+
			"a larger db makes snapshots, defragmentation and resyncing a member slow", e.QuotaBackendBytes, SuggestedMaxQuotaBytes))
	}
	return warnings
}

// ParsePeriodicRetention reads a periodic retention as etcd does: a Go duration, or a bare integer meaning hours.
func ParsePeriodicRetention(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Hour, nil
	}
	return time.ParseDuration(s)
}
