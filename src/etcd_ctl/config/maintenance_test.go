package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateMaintenance(t *testing.T) {
	cases := []struct {
		name     string
		mod      func(p *Properties)
		wantErr  string // substring of the joined problems; "" = none
		wantWarn string
	}{
		{"defaults", func(p *Properties) {}, "", ""},
		{"periodic hours as bare number", func(p *Properties) { p.AutoCompactionRetention = "1" }, "", ""},
		{"compaction off", func(p *Properties) { p.AutoCompactionRetention = "0" }, "", ""},
		{"revision count", func(p *Properties) { p.AutoCompactionMode, p.AutoCompactionRetention = "revision", "10000" }, "", ""},
		{"revision with a duration", func(p *Properties) { p.AutoCompactionMode, p.AutoCompactionRetention = "revision", "5m" },
			"etcd.auto_compaction_retention: got \"5m\", with etcd.auto_compaction_mode revision", ""},
		{"periodic garbage", func(p *Properties) { p.AutoCompactionRetention = "soon" }, "etcd.auto_compaction_retention: got \"soon\"", ""},
		{"negative duration", func(p *Properties) { p.AutoCompactionRetention = "-5m" }, "etcd.auto_compaction_retention", ""},
		{"unknown mode", func(p *Properties) { p.AutoCompactionMode = "daily" }, "etcd.auto_compaction_mode: got \"daily\"", ""},
		{"interval zero", func(p *Properties) { p.Maintenance.CheckIntervalInSeconds = 0 }, "etcd.maintenance.check_interval_in_seconds", ""},
		{"ratio above 1", func(p *Properties) { p.Maintenance.DefragMaxInUseRatio = 1.5 }, "etcd.maintenance.defrag_max_in_use_ratio: got 1.5", ""},
		{"ratio zero", func(p *Properties) { p.Maintenance.NospaceDisarmRatio = 0 }, "etcd.maintenance.nospace_disarm_ratio", ""},
		{"negative min size", func(p *Properties) { p.Maintenance.DefragMinDBSizeBytes = -1 }, "etcd.maintenance.defrag_min_db_size_bytes", ""},
		{"quota 8 GiB is fine", func(p *Properties) { p.QuotaBackendBytes = 8 << 30 }, "", ""},
		{"quota above 8 GiB warns", func(p *Properties) { p.QuotaBackendBytes = 16 << 30 }, "", "etcd.quota_backend_bytes: 17179869184 is above 8589934592 (8 GiB)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c.Etcd)
			var problems []string
			warns := c.validateMaintenance(func(prop, format string, a ...any) {
				problems = append(problems, prop+": "+fmt.Sprintf(format, a...))
			})
			if tc.wantErr == "" {
				require.Empty(t, problems)
			} else {
				require.Len(t, problems, 1)
				require.Contains(t, problems[0], tc.wantErr)
			}
			if tc.wantWarn == "" {
				require.Empty(t, warns)
			} else {
				require.Contains(t, strings.Join(warns, "\n"), tc.wantWarn)
			}
		})
	}
}
