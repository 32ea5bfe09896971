package maintenance

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const mib = 1 << 20

var th = Thresholds{Quota: 100 * mib, MinDBSize: 40 * mib, MaxInUseRatio: 0.5, WarnRatio: 0.8, DisarmRatio: 0.8}

func mem(id uint64, db, inUse int64) Member {
	return Member{ID: id, Name: string(rune('a' + id - 1)), Answering: true, Healthy: true, DBSize: db * mib, InUse: inUse * mib}
}

func leader(m Member) Member  { m.Leader = true; return m }
func down(m Member) Member    { m.Answering, m.Healthy, m.DBSize, m.InUse = false, false, 0, 0; return m }
func learner(m Member) Member { m.Learner = true; return m }

func TestShouldDefrag(t *testing.T) {
	cases := []struct {
		name    string
		m       Member
		minSize int64 // MiB; 0 keeps th.MinDBSize
		want    bool
		why     string
	}{
		{"fragmented and big", mem(1, 50, 10), 0, true, "about 40.0 MiB can be reclaimed"},
		{"exactly at the ratio", mem(1, 50, 25), 0, true, "(50%)"},
		{"mostly in use", mem(1, 50, 30), 0, false, "uses 60%"},
		{"small and fragmented", mem(1, 20, 1), 0, false, "below etcd.maintenance.defrag_min_db_size_bytes"},
		{"below the minimum but near the quota", mem(1, 85, 5), 200, true, "at 85% of the 100.0 MiB quota"},
		{"near the quota but mostly in use", mem(1, 85, 80), 200, false, "uses 94%"},
		{"no status", down(mem(1, 0, 0)), 0, false, "did not report"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			th := th
			if tc.minSize != 0 {
				th.MinDBSize = tc.minSize * mib
			}
			got, why := ShouldDefrag(tc.m, th)
			require.Equal(t, tc.want, got, why)
			require.Contains(t, why, tc.why)
		})
	}
}

func TestQuorumWithout(t *testing.T) {
	cases := []struct {
		name    string
		members []Member
		id      uint64
		want    bool
	}{
		{"3 healthy", []Member{mem(1, 1, 1), mem(2, 1, 1), mem(3, 1, 1)}, 1, true},
		{"one other down", []Member{mem(1, 1, 1), down(mem(2, 1, 1)), mem(3, 1, 1)}, 1, false},
		{"the target itself down", []Member{down(mem(1, 1, 1)), mem(2, 1, 1), mem(3, 1, 1)}, 1, true},
		{"learner does not count", []Member{mem(1, 1, 1), mem(2, 1, 1), mem(3, 1, 1), learner(mem(4, 1, 1))}, 1, true},
		{"single member", []Member{mem(1, 1, 1)}, 1, false},
		{"5 members, one down", []Member{mem(1, 1, 1), down(mem(2, 1, 1)), mem(3, 1, 1), mem(4, 1, 1), mem(5, 1, 1)}, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := QuorumWithout(Cluster{Members: tc.members}, tc.id)
			require.Equal(t, tc.want, got, why)
		})
	}
}

func TestCoordinator(t *testing.T) {
	id, ok := Coordinator(Cluster{Members: []Member{mem(3, 1, 1), down(mem(1, 1, 1)), learner(mem(2, 1, 1)), mem(4, 1, 1)}})
	require.True(t, ok)
	require.Equal(t, uint64(3), id, "lowest healthy voter; down members and learners never coordinate")
	_, ok = Coordinator(Cluster{Members: []Member{down(mem(1, 1, 1))}})
	require.False(t, ok)
}

func TestNextDefrag(t *testing.T) {
	cases := []struct {
		name    string
		members []Member
		action  Action
		target  uint64
		to      uint64
		why     string
	}{
		{"nothing to do", []Member{mem(1, 50, 40), mem(2, 10, 1), mem(3, 50, 30)}, None, 0, 0, "no member is fragmented"},
		{"most fragmented first", []Member{mem(1, 50, 20), mem(2, 50, 5), mem(3, 50, 40)}, Defrag, 2, 0, "member b's db file is 50.0 MiB"},
		{"leader: move first, to the smallest db", []Member{mem(1, 45, 40), leader(mem(2, 50, 5)), mem(3, 41, 40)}, MoveLeader, 2, 3, "leadership moves to c first"},
		{"no quorum without it", []Member{mem(1, 50, 5), down(mem(2, 50, 5)), mem(3, 50, 40)}, None, 1, 0, "only 1 of 3 voters are healthy"},
		{"single member: the only voter is defragmented", []Member{leader(mem(1, 50, 5))}, Defrag, 1, 0, "it is the only voter"},
		{"single voter and a learner", []Member{leader(mem(1, 50, 5)), learner(mem(2, 50, 40))}, Defrag, 1, 0, "it is the only voter"},
		{"down member skipped", []Member{down(mem(1, 0, 0)), mem(2, 50, 5), mem(3, 50, 40), mem(4, 50, 40), mem(5, 50, 40)}, Defrag, 2, 0, "reclaimed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NextDefrag(Cluster{Members: tc.members}, th)
			require.Equal(t, tc.action, s.Action, s.Reason)
			require.Equal(t, tc.target, s.Target.ID, s.Reason)
			require.Equal(t, tc.to, s.To.ID, s.Reason)
			require.Contains(t, s.Reason, tc.why)
		})
	}
}

func TestNextRecovery(t *testing.T) {
	nospace := []Alarm{{MemberID: 1, Type: "NOSPACE"}}
	cases := []struct {
		name   string
		c      Cluster
		r      Recovery
		action Action
		target uint64
		to     uint64
		rev    int64
		why    string
	}{
		{"no alarm", Cluster{Members: []Member{mem(1, 99, 99)}, Revision: 10}, Recovery{}, None, 0, 0, 0, "no NOSPACE"},
		{"corrupt alarm is not ours", Cluster{Members: []Member{mem(1, 99, 99)}, Alarms: []Alarm{{1, "CORRUPT"}}}, Recovery{}, None, 0, 0, 0, "no NOSPACE"},
		{"compact first", Cluster{Members: []Member{mem(1, 99, 99)}, Revision: 10, Alarms: nospace}, Recovery{}, Compact, 0, 0, 10, "revision 10"},
		{"compact again after deletes", Cluster{Members: []Member{mem(1, 99, 1)}, Revision: 12, Alarms: nospace}, Recovery{CompactedAt: 10}, Compact, 0, 0, 12, ""},
		{"defrag in ID order, follower", Cluster{Members: []Member{leader(mem(1, 99, 1)), mem(2, 99, 1), mem(3, 99, 1)}, Revision: 10, Alarms: nospace},
			Recovery{CompactedAt: 10}, MoveLeader, 1, 2, 0, "leadership moves to b"},
		{"skip small and down members", Cluster{Members: []Member{mem(1, 10, 1), down(mem(2, 0, 0)), mem(3, 99, 1)}, Revision: 10, Alarms: nospace},
			Recovery{CompactedAt: 10}, Defrag, 3, 0, 0, "above the disarm limit 80.0 MiB"},
		{"no quorum needed under NOSPACE", Cluster{Members: []Member{mem(1, 99, 1), down(mem(2, 0, 0)), mem(3, 10, 1)}, Revision: 10, Alarms: nospace},
			Recovery{CompactedAt: 10}, Defrag, 1, 0, 0, ""},
		{"lone leader cannot be defragmented", Cluster{Members: []Member{leader(mem(1, 99, 1)), down(mem(2, 0, 0)), down(mem(3, 0, 0))}, Revision: 10, Alarms: nospace},
			Recovery{CompactedAt: 10}, Blocked, 1, 0, 0, "no other healthy voter"},
		{"one-member cluster: its only member", Cluster{Members: []Member{leader(mem(1, 99, 1))}, Revision: 10, Alarms: nospace},
			Recovery{CompactedAt: 10}, Defrag, 1, 0, 0, "it is the only voter"},
		{"in use looks too big: defragment anyway", Cluster{Members: []Member{mem(1, 99, 90), leader(mem(2, 10, 1))}, Revision: 10, Alarms: nospace}, Recovery{CompactedAt: 10}, Defrag, 1, 0, 0, "90.0 MiB are in use"},
		{"still too big after defrag: live data", Cluster{Members: []Member{mem(1, 90, 90)}, Revision: 10, Alarms: nospace}, Recovery{CompactedAt: 10, Defragmented: map[uint64]bool{1: true}}, Blocked, 1, 0, 0, "raise etcd.quota_backend_bytes or delete keys"},
		{"all below: disarm", Cluster{Members: []Member{mem(1, 10, 1), mem(2, 79, 1), down(mem(3, 0, 0))}, Revision: 10, Alarms: nospace}, Recovery{CompactedAt: 10}, Disarm, 0, 0, 0, "below 80.0 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NextRecovery(tc.c, th, tc.r)
			require.Equal(t, tc.action, s.Action, s.Reason)
			require.Equal(t, tc.target, s.Target.ID, s.Reason)
			require.Equal(t, tc.to, s.To.ID, s.Reason)
			require.Equal(t, tc.rev, s.Revision)
			require.Contains(t, s.Reason, tc.why)
		})
	}
}

func TestQuotaWarning(t *testing.T) {
	require.Empty(t, QuotaWarning(mem(1, 79, 79), th))
	require.Contains(t, QuotaWarning(mem(1, 80, 10), th), "member a's db file is 80.0 MiB, 80% of the 100.0 MiB quota")
	require.Empty(t, QuotaWarning(down(mem(1, 0, 0)), th))
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 100 * mib: "100.0 MiB", 8 << 30: "8.0 GiB"} {
		require.Equal(t, want, Bytes(n))
	}
}

func TestCompactTarget(t *testing.T) {
	for _, tc := range []struct{ current, keep, want int64 }{
		{100, 0, 100}, {100, 10, 90}, {100, 98, 2}, {100, 99, 0}, {100, 200, 0}, {1, 0, 0}, {100, -5, 100},
	} {
		require.Equal(t, tc.want, CompactTarget(tc.current, tc.keep), "%+v", tc)
	}
}

func TestEarlyCompaction(t *testing.T) {
	nospace := []Alarm{{MemberID: 1, Type: "NOSPACE"}}
	cases := []struct {
		name        string
		c           Cluster
		compactedAt int64
		action      Action
		why         string
	}{
		{"far from the quota", Cluster{Members: []Member{mem(1, 50, 45)}, Revision: 9}, 0, None, ""},
		{"near the quota, mostly in use", Cluster{Members: []Member{mem(1, 10, 9), mem(2, 85, 80)}, Revision: 9}, 0, Compact, "member b's db file is 85.0 MiB, 85% of the 100.0 MiB quota, and 94% of it is in use"},
		{"near the quota, mostly free: defragmenting helps", Cluster{Members: []Member{mem(1, 85, 20)}, Revision: 9}, 0, None, ""},
		{"already compacted at this revision", Cluster{Members: []Member{mem(1, 85, 80)}, Revision: 9}, 9, None, ""},
		{"NOSPACE: recovery's job", Cluster{Members: []Member{mem(1, 99, 98)}, Revision: 9, Alarms: nospace}, 0, None, ""},
		{"unknown sizes", Cluster{Members: []Member{down(mem(1, 0, 0))}, Revision: 9}, 0, None, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := EarlyCompaction(tc.c, th, tc.compactedAt)
			require.Equal(t, tc.action, s.Action, s.Reason)
			require.Contains(t, s.Reason, tc.why)
			if s.Action == Compact {
				require.Equal(t, tc.c.Revision, s.Revision)
			}
		})
	}
}

func TestNextCheck(t *testing.T) {
	nospace := []Alarm{{MemberID: 1, Type: "NOSPACE"}}
	for _, tc := range []struct {
		name string
		c    Cluster
		base time.Duration
		want time.Duration
	}{
		{"small dbs", Cluster{Members: []Member{mem(1, 10, 5), mem(2, 49, 40)}}, time.Minute, time.Minute},
		{"a db at half the quota", Cluster{Members: []Member{mem(1, 10, 5), mem(2, 50, 40)}}, time.Minute, 12 * time.Second},
		{"NOSPACE", Cluster{Members: []Member{mem(1, 10, 5)}, Alarms: nospace}, time.Minute, 12 * time.Second},
		{"at least a second", Cluster{Alarms: nospace}, 2 * time.Second, time.Second},
		{"never slower than the base", Cluster{Alarms: nospace}, time.Second, time.Second},
		{"unknown sizes", Cluster{Members: []Member{down(mem(1, 0, 0))}}, time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, NextCheck(tc.c, th, tc.base))
		})
	}
}

func TestOperatorDefrag(t *testing.T) {
	three := Cluster{Members: []Member{leader(mem(1, 50, 5)), mem(2, 50, 5), down(mem(3, 0, 0))}}
	cases := []struct {
		name   string
		c      Cluster
		id     uint64
		action Action
		why    string
	}{
		{"gone", three, 9, None, "no longer in the cluster"},
		{"down", three, 3, None, "does not answer"},
		{"would lose quorum", three, 2, None, "would stall it while without it only 1 of 3"},
		{"leader hands over first... but no quorum without it", three, 1, None, "would stall it"},
		{"healthy three, leader", Cluster{Members: []Member{leader(mem(1, 50, 5)), mem(2, 50, 5), mem(3, 50, 5)}}, 1, MoveLeader, "operator request"},
		{"one-member cluster", Cluster{Members: []Member{leader(mem(1, 50, 5))}}, 1, Defrag, "it is the only voter"},
		{"learner", Cluster{Members: []Member{leader(mem(1, 50, 5)), learner(mem(2, 50, 5))}}, 2, Defrag, "operator request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := OperatorDefrag(tc.c, tc.id)
			require.Equal(t, tc.action, s.Action, s.Reason)
			require.Contains(t, s.Reason, tc.why)
		})
	}
}
