package status

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/maintenance"
)

func TestPrintShowsSizesAlarmsAndMaintenance(t *testing.T) {
	r := &Report{ClusterID: "c1", Endpoint: "http://10.0.0.1:4001", Healthy: true, Members: []Member{
		{ID: "a", Name: "etcd-0", Leader: true, Healthy: true, DBSize: 32 << 20, DBSizeInUse: 8 << 20, Fragmentation: 0.75, Alarms: []string{"NOSPACE"}},
		{ID: "b", Name: "etcd-1", Healthy: true, DBSize: 1 << 20, DBSizeInUse: 1 << 20},
	}, Maintenance: &maintenance.State{Updated: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), Coordinator: "etcd-0", Acting: true, Nospace: true,
		LastAction: "defrag", LastReason: "NOSPACE recovery: member etcd-1's db file is 30.0 MiB",
		LastDefrag:   &maintenance.DefragResult{Member: "etcd-1", Before: 30 << 20, After: 1 << 20, Took: 42 * time.Millisecond},
		QuotaWarning: "member etcd-0's db file is 32.0 MiB"}}
	var b bytes.Buffer
	Print(&b, r)
	out := b.String()
	for _, want := range []string{
		"DB SIZE", "IN USE", "FRAG", "ALARMS",
		"32.0 MiB  8.0 MiB  75%   NOSPACE",
		"1.0 MiB   1.0 MiB  0%    -",
		"maintenance (this VM's etcd_ctl, 2026-12-01T08:00:00Z): this etcd_ctl coordinates",
		"NOSPACE alarm raised: recovery",
		"last decision: defrag: NOSPACE recovery",
		"last defragmentation: etcd-1 30.0 MiB → 1.0 MiB (reclaimed 29.0 MiB) in 42ms",
		"WARNING: member etcd-0's db file is 32.0 MiB",
	} {
		require.Contains(t, out, want)
	}
}
