package deployer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/director/state"
)

func TestExpiredOrphans(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	disks := []state.OrphanDisk{
		{CID: "fresh", OrphanedAt: now.Add(-time.Hour)},
		{CID: "four-days", OrphanedAt: now.Add(-4 * 24 * time.Hour)},
		{CID: "six-days", OrphanedAt: now.Add(-6 * 24 * time.Hour)},
		{CID: "exactly", OrphanedAt: now.Add(-DefaultOrphanRetention)},
	}
	for _, tc := range []struct {
		name      string
		retention time.Duration
		want      []string
	}{
		{"default retention deletes only what is older", DefaultOrphanRetention, []string{"six-days"}},
		{"one day", 24 * time.Hour, []string{"four-days", "six-days", "exactly"}},
		{"zero keeps everything", 0, nil},
		{"negative keeps everything", -time.Hour, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, expiredOrphans(disks, now, tc.retention))
		})
	}
}

func TestCheckAttach(t *testing.T) {
	for _, tc := range []struct {
		name string
		inst *state.Instance
		err  string
	}{
		{"no such instance", nil, "instance 'etcd/3' doesn't exist in deployment 'etcd'"},
		{"started", &state.Instance{Group: "etcd", ID: "u1", State: "started"}, "must be stopped before a disk is attached: run `bosh -d etcd stop etcd/u1`"},
		{"stopped", &state.Instance{Group: "etcd", ID: "u1", State: "stopped"}, ""},
		{"stopped --hard", &state.Instance{Group: "etcd", ID: "u1", State: "detached"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkAttach("etcd", "etcd/3", tc.inst)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}
