package maintenance

import (
	"fmt"
	"sort"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// Member is one member as the loop sees it.
type Member struct {
	ID       uint64 `json:"-"`
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	Learner  bool   `json:"learner"`
	Leader   bool   `json:"leader"`
	// Answering: the member answered a status request (its sizes are known).
	Answering bool `json:"answering"`
	// Healthy: answering and it sees a leader.
	Healthy   bool   `json:"healthy"`
	DBSize    int64  `json:"db_size_bytes"`
	InUse     int64  `json:"db_size_in_use_bytes"`
	RaftIndex uint64 `json:"raft_index"`
	Err       string `json:"error,omitempty"`
}

// Cluster is one snapshot of the cluster.
type Cluster struct {
	Members  []Member
	Revision int64
	Alarms   []Alarm
}

// Alarm is one raised alarm.
type Alarm struct {
	MemberID uint64
	Type     string // "NOSPACE", "CORRUPT"
}

// Nospace reports whether a NOSPACE alarm is raised.
func (c Cluster) Nospace() bool {
	for _, a := range c.Alarms {
		if a.Type == "NOSPACE" {
			return true
		}
	}
	return false
}

// Thresholds are the decision parameters from the properties.
type Thresholds struct {
	Quota         int64
	MinDBSize     int64
	MaxInUseRatio float64
	WarnRatio     float64
	DisarmRatio   float64
}

// ThresholdsFrom reads the thresholds from etcd.quota_backend_bytes and etcd.maintenance.*.
func ThresholdsFrom(p config.Properties) Thresholds {
	m := p.Maintenance
	return Thresholds{Quota: p.Quota(), MinDBSize: m.DefragMinDBSizeBytes, MaxInUseRatio: m.DefragMaxInUseRatio,
		WarnRatio: m.QuotaWarningRatio, DisarmRatio: m.NospaceDisarmRatio}
}

// Action is what a Step does.
type Action string

// Actions.
const (
	None       Action = "none"
	Compact    Action = "compact"
	MoveLeader Action = "move-leader"
	Defrag     Action = "defrag"
	Disarm     Action = "disarm"
	Blocked    Action = "blocked"
)

// Step is one decision: an action, its target and why.
type Step struct {
	Action Action
	Target Member
	// To is the member leadership moves to (MoveLeader).
	To Member
	// Revision is the revision to compact to (Compact).
	Revision int64
	Reason   string
}

// InUseRatio is in-use bytes / db file size (1 when the size is unknown).
func InUseRatio(m Member) float64 {
	if m.DBSize <= 0 {
		return 1
	}
	return float64(m.InUse) / float64(m.DBSize)
}

// ShouldDefrag decides from a member's sizes alone whether its db file is worth defragmenting.
func ShouldDefrag(m Member, th Thresholds) (bool, string) {
	if !m.Answering || m.DBSize <= 0 {
		return false, fmt.Sprintf("member %s did not report its db size", m.Name)
	}
	ratio := InUseRatio(m)
	if ratio > th.MaxInUseRatio {
		return false, fmt.Sprintf("member %s uses %.0f%% of its %s db file, above the %.0f%% threshold (etcd.maintenance.defrag_max_in_use_ratio)",
			m.Name, 100*ratio, Bytes(m.DBSize), 100*th.MaxInUseRatio)
	}
	nearQuota := float64(m.DBSize) >= th.WarnRatio*float64(th.Quota)
	if m.DBSize < th.MinDBSize && !nearQuota {
		return false, fmt.Sprintf("member %s's db file (%s) is below etcd.maintenance.defrag_min_db_size_bytes (%s) and the quota warning level",
			m.Name, Bytes(m.DBSize), Bytes(th.MinDBSize))
	}
	why := "at or above etcd.maintenance.defrag_min_db_size_bytes"
	if nearQuota {
		why = fmt.Sprintf("at %.0f%% of the %s quota", 100*float64(m.DBSize)/float64(th.Quota), Bytes(th.Quota))
	}
	return true, fmt.Sprintf("member %s's db file is %s (%s), of which %s (%.0f%%) is in use; about %s can be reclaimed",
		m.Name, Bytes(m.DBSize), why, Bytes(m.InUse), 100*ratio, Bytes(m.DBSize-m.InUse))
}

// QuorumWithout reports whether the voters other than id are a healthy quorum of all voters.
func QuorumWithout(c Cluster, id uint64) (bool, string) {
	voters, healthy := 0, 0
	for _, m := range c.Members {
		if m.Learner {
			continue
		}
		voters++
		if m.ID != id && m.Healthy {
			healthy++
		}
	}
	need := voters/2 + 1
	if healthy >= need {
		return true, ""
	}
	return false, fmt.Sprintf("without it only %d of %d voters are healthy, %d are needed for a quorum", healthy, voters, need)
}

// Coordinator is the member whose etcd_ctl acts for the cluster: the answering voter with the lowest ID.
func Coordinator(c Cluster) (uint64, bool) {
	var best uint64
	for _, m := range c.Members {
		if !m.Learner && m.Healthy && (best == 0 || m.ID < best) {
			best = m.ID
		}
	}
	return best, best != 0
}

// leaderTarget picks the voter leadership moves to: a healthy voter other than from, smallest db first (it is
// the least likely to need defragmenting next), then the highest raft index.
func leaderTarget(c Cluster, from uint64) (Member, bool) {
	var cands []Member
	for _, m := range c.Members {
		if m.ID != from && !m.Learner && m.Healthy {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return Member{}, false
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].DBSize != cands[j].DBSize {
			return cands[i].DBSize < cands[j].DBSize
		}
		return cands[i].RaftIndex > cands[j].RaftIndex
	})
	return cands[0], true
}

// soleVoter reports whether id is the cluster's only voter (a one-member deployment): there is no leadership to
// hand over and no quorum to keep, and defragmenting it stalls the cluster for the defragmentation's duration,
// which is the only way a one-member cluster gets its space back.
func soleVoter(c Cluster, id uint64) bool {
	for _, m := range c.Members {
		if !m.Learner && m.ID != id {
			return false
		}
	}
	m, ok := c.Member(id)
	return ok && !m.Learner
}

// moveOrDefrag turns "defragment m" into a step: move leadership first when m leads.
func moveOrDefrag(c Cluster, m Member, reason string) Step {
	if soleVoter(c, m.ID) {
		return Step{Action: Defrag, Target: m, Reason: reason + "; it is the only voter, so the cluster stalls while it is defragmented"}
	}
	if !m.Leader {
		return Step{Action: Defrag, Target: m, Reason: reason}
	}
	to, ok := leaderTarget(c, m.ID)
	if !ok {
		return Step{Action: Blocked, Target: m, Reason: reason + "; but it is the leader and no other healthy voter can take over"}
	}
	return Step{Action: MoveLeader, Target: m, To: to, Reason: reason + "; it is the leader, so leadership moves to " + to.Name + " first"}
}

// NextDefrag is the next step of ordinary defragmentation: the most fragmented member worth defragmenting,
// provided the other voters are a healthy quorum.
func NextDefrag(c Cluster, th Thresholds) Step {
	ms := append([]Member(nil), c.Members...)
	sort.Slice(ms, func(i, j int) bool {
		if InUseRatio(ms[i]) != InUseRatio(ms[j]) {
			return InUseRatio(ms[i]) < InUseRatio(ms[j])
		}
		return ms[i].ID < ms[j].ID
	})
	for _, m := range ms {
		ok, reason := ShouldDefrag(m, th)
		if !ok {
			continue
		}
		if q, why := QuorumWithout(c, m.ID); !q && !soleVoter(c, m.ID) {
			return Step{Action: None, Target: m, Reason: reason + "; not now: " + why}
		}
		return moveOrDefrag(c, m, reason)
	}
	return Step{Action: None, Reason: "no member is fragmented enough to defragment"}
}

// OperatorDefrag is the step for an operator's request to defragment member id now, whatever its fragmentation:
// skipped when it does not answer or the other voters are not a healthy quorum; a leader hands over first.
func OperatorDefrag(c Cluster, id uint64) Step {
	m, ok := c.Member(id)
	if !ok {
		return Step{Action: None, Reason: fmt.Sprintf("member %x is no longer in the cluster", id)}
	}
	if !m.Answering {
		return Step{Action: None, Target: m, Reason: fmt.Sprintf("member %s does not answer (%s)", m.Name, m.Err)}
	}
	if q, why := QuorumWithout(c, m.ID); !q && !m.Learner && !soleVoter(c, m.ID) {
		return Step{Action: None, Target: m, Reason: fmt.Sprintf("defragmenting member %s would stall it while %s", m.Name, why)}
	}
	return moveOrDefrag(c, m, fmt.Sprintf("operator request (etcd_ctl defrag): member %s's db file is %s, %s in use", m.Name, Bytes(m.DBSize), Bytes(m.InUse)))
}

// EarlyCompaction compacts to the current revision before the quota is reached: when a member's db file is above
// the warning share of the quota and mostly in use, defragmenting cannot help, and the only data that can go is
// history automatic compaction still keeps (etcd.auto_compaction_retention). The NOSPACE alarm would drop that
// history too (recovery compacts to the current revision) after refusing writes, so dropping it first costs
// watchers nothing more and clients nothing at all. compactedAt is the revision of the last early compaction;
// nothing is done until the revision moved past it.
func EarlyCompaction(c Cluster, th Thresholds, compactedAt int64) Step {
	if c.Nospace() || c.Revision <= compactedAt {
		return Step{Action: None}
	}
	for _, m := range c.Members {
		if !m.Answering || float64(m.DBSize) < th.WarnRatio*float64(th.Quota) || InUseRatio(m) <= th.MaxInUseRatio {
			continue
		}
		return Step{Action: Compact, Revision: c.Revision, Target: m, Reason: fmt.Sprintf(
			"member %s's db file is %s, %.0f%% of the %s quota, and %.0f%% of it is in use, so defragmenting alone cannot help; "+
				"compacting to the current revision %d ahead of automatic compaction avoids the NOSPACE alarm", m.Name, Bytes(m.DBSize),
			100*float64(m.DBSize)/float64(th.Quota), Bytes(th.Quota), 100*InUseRatio(m), c.Revision)}
	}
	return Step{Action: None}
}

// NextCheck is how long the loop waits before its next check: etcd.maintenance.check_interval_in_seconds, but a
// fifth of it (at least a second) while the NOSPACE alarm is raised or a member's db file is above half the
// quota, where a churning keyspace can reach the quota within one ordinary interval.
func NextCheck(c Cluster, th Thresholds, base time.Duration) time.Duration {
	fast := max(base/5, time.Second)
	if fast >= base {
		return base
	}
	if c.Nospace() {
		return fast
	}
	for _, m := range c.Members {
		if m.Answering && m.DBSize*2 >= th.Quota {
			return fast
		}
	}
	return base
}
