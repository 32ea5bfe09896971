package maintenance

import (
	"fmt"
	"sort"
	"time"
)

// Recovery is what one NOSPACE recovery has done so far (kept by the caller between steps).
type Recovery struct {
	// CompactedAt is the revision this recovery compacted to (0: not yet).
	CompactedAt int64
	// Defragmented are the members this recovery defragmented.
	Defragmented map[uint64]bool
}

// DisarmLimit is the db file size below which every member must be before the alarm is disarmed.
func DisarmLimit(th Thresholds) int64 { return int64(th.DisarmRatio * float64(th.Quota)) }

// NextRecovery is the next step of NOSPACE recovery: compact to the current revision, then defragment every
// answering member above the disarm limit one at a time (leadership moved away first), then disarm; a member
// still above the limit after its defragmentation blocks the recovery. It does not
// require a quorum without the member (see the package doc); a member that does not answer is skipped, since its
// size is unknown and a member that answers nothing cannot take writes either.
func NextRecovery(c Cluster, th Thresholds, r Recovery) Step {
	if !c.Nospace() {
		return Step{Action: None, Reason: "no NOSPACE alarm is raised"}
	}
	if c.Revision > r.CompactedAt {
		return Step{Action: Compact, Revision: c.Revision, Reason: fmt.Sprintf(
			"the NOSPACE alarm is raised; compacting to the current revision %d drops every old revision", c.Revision)}
	}
	limit := DisarmLimit(th)
	ms := append([]Member(nil), c.Members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	for _, m := range ms {
		if !m.Answering || m.DBSize < limit {
			continue
		}
		// The in-use size is not trusted to judge the live data: right after a compaction a member may still count
		// pages freed under a read transaction as in use; only a defragmented file's size is the live data.
		if r.Defragmented[m.ID] {
			return Step{Action: Blocked, Target: m, Reason: fmt.Sprintf("member %s's db file is still %s after compaction and defragmentation, above %s "+
				"(etcd.maintenance.nospace_disarm_ratio × quota): the live data itself is too big; raise etcd.quota_backend_bytes or delete keys, then run etcd_ctl defrag",
				m.Name, Bytes(m.DBSize), Bytes(limit))}
		}
		return moveOrDefrag(c, m, fmt.Sprintf("NOSPACE recovery: member %s's db file is %s, above the disarm limit %s; %s are in use",
			m.Name, Bytes(m.DBSize), Bytes(limit), Bytes(m.InUse)))
	}
	return Step{Action: Disarm, Reason: fmt.Sprintf("every answering member's db file is below %s (etcd.maintenance.nospace_disarm_ratio × quota)", Bytes(limit))}
}

// QuotaWarning returns a warning when m's db file is above the warning share of the quota, else "".
func QuotaWarning(m Member, th Thresholds) string {
	if !m.Answering || th.Quota <= 0 || float64(m.DBSize) < th.WarnRatio*float64(th.Quota) {
		return ""
	}
	return fmt.Sprintf("member %s's db file is %s, %.0f%% of the %s quota (etcd.quota_backend_bytes); %s are in use. "+
		"At the quota etcd raises the NOSPACE alarm and refuses writes", m.Name, Bytes(m.DBSize),
		100*float64(m.DBSize)/float64(th.Quota), Bytes(th.Quota), Bytes(m.InUse))
}

// Bytes formats n in binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit || v <= -unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func errNospaceRaised(timeout time.Duration) error {
	return fmt.Errorf("the cluster's NOSPACE alarm is still raised after %s: etcd refuses writes, the membership lock's included. "+
		"Check etcd_ctl status on a member (alarms, db sizes) and its log for \"NOSPACE recovery cannot continue\"; "+
		"with etcd.maintenance.enabled false run etcd_ctl defrag on a member", timeout)
}
