package drain

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"
)

// What BOSH tells a stopping job, as read from the bosh-agent and director sources:
//
//   - drain's arguments and BOSH_JOB_STATE / BOSH_JOB_NEXT_STATE come from the agent
//     (agent/script/drain/concrete_script.go, script_params.go, presented_job_state.go). Both variables are
//     `{"persistent_disk":N}` with N the disk size (MB) of the current and of the next apply spec; a group
//     without a persistent disk has N = 0 in both. BOSH_JOB_NEXT_STATE is absent when the agent has no next
//     spec (a shutdown without one, and every job_check_status poll). So `"persistent_disk":0` next cannot
//     by itself mean "deleted": for a disk-less group it is what every ordinary update looks like.
//   - pre-stop runs right before drain (unless the stop skips drain, which skips both) with the director's
//     BOSH_VM_NEXT_STATE, BOSH_INSTANCE_NEXT_STATE and BOSH_DEPLOYMENT_NEXT_STATE, each "keep" or "delete". The
//     agent passes them through unchanged (agent/action/run_script.go); the director derives them from the stop
//     intent (bosh-director's lib/bosh/director/stopper.rb, pre_stop_env): a recreate deletes the VM but keeps
//     the instance, a scale-down deletes VM and instance, a `delete-deployment` deletes all three. Directors that
//     predate pre-stop never set them.
//
// Hence the rule: pre-stop's instance/deployment next state decides when it was recorded; without it the disk
// sizes decide, and a next disk of 0 means "deleted" only when the current state has a disk.

// NextStates is what pre-stop saw in BOSH_*_NEXT_STATE ("keep", "delete", or "" when not set).
type NextStates struct {
	VM         string `json:"vm"`
	Instance   string `json:"instance"`
	Deployment string `json:"deployment"`
}

// Recorded reports whether pre-stop was given any next state (directors without pre-stop support give none).
func (n NextStates) Recorded() bool { return n.Instance != "" || n.Deployment != "" || n.VM != "" }

// PreStopRecord is where pre-stop records the next states for the drain that follows. It lives in the run dir
// (tmpfs on a BOSH VM), so it never outlives the VM.
func PreStopRecord(runDir string) string { return filepath.Join(runDir, "pre-stop-next-state.json") }

// legacyDeploymentDeletedMarker is the record of releases before the pre-stop record; drain still honours it
// so that an upgrade in the middle of a delete behaves.
func legacyDeploymentDeletedMarker(runDir string) string {
	return filepath.Join(runDir, "deployment-deleted")
}

// PreStop implements bin/pre-stop: it records the next states for the drain that follows. A stop without any
// next state (an old director) removes a stale record, so that drain falls back to the disk sizes. Values other
// than keep and delete are recorded as given and DecideIntent ignores them: failing a stop over a value a later
// director might add would block every deploy.
func PreStop(runDir string, next NextStates) error {
	_ = os.Remove(legacyDeploymentDeletedMarker(runDir))
	rec := PreStopRecord(runDir)
	if !next.Recorded() {
		if err := os.Remove(rec); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("pre-stop: removing %s: %w", rec, err)
		}
		return nil
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("pre-stop: %w", err)
	}
	b, _ := json.Marshal(next)
	if err := atomicfile.Write(rec, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("pre-stop: writing %s: %w", rec, err)
	}
	return nil
}

// ReadPreStop returns what pre-stop recorded (zero NextStates when nothing was recorded).
func ReadPreStop(runDir string) (NextStates, error) {
	var n NextStates
	b, err := os.ReadFile(PreStopRecord(runDir))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &n); err != nil {
			return n, fmt.Errorf("drain: %s is not pre-stop's record (%v); remove it and run drain again", PreStopRecord(runDir), err)
		}
		return n, nil
	case !os.IsNotExist(err):
		return n, fmt.Errorf("drain: reading %s: %w", PreStopRecord(runDir), err)
	}
	if _, err := os.Stat(legacyDeploymentDeletedMarker(runDir)); err == nil {
		return NextStates{Deployment: "delete"}, nil
	}
	return n, nil
}

// ClearPreStop removes the record once a drain has acted on it, so that a later drain without a pre-stop (a
// manual run, an old director) is not steered by it.
func ClearPreStop(runDir string) {
	_ = os.Remove(PreStopRecord(runDir))
	_ = os.Remove(legacyDeploymentDeletedMarker(runDir))
}

// Intent is what BOSH is doing to this instance, as far as the member is concerned.
type Intent int

const (
	// IntentPoll is a job_check_status call: nothing to do.
	IntentPoll Intent = iota
	// IntentKeep: the instance (and its member identity) survives: update, restart, recreate, stop.
	IntentKeep
	// IntentRemove: this instance is being deleted; its member leaves the cluster.
	IntentRemove
	// IntentDeploymentDeleted: every instance is being deleted at once; the member list is kept, because
	// removing members one by one would lose quorum half way.
	IntentDeploymentDeleted
)

func (i Intent) String() string {
	return [...]string{"poll", "keep", "remove", "deployment-deleted"}[i]
}

// DecideIntent is the drain rule: whether BOSH is deleting this instance. It returns the intent and the reason
// that is logged with it.
func DecideIntent(r Request) (Intent, string) {
	if r.Kind == "job_check_status" {
		return IntentPoll, "BOSH is polling a drain that already finished"
	}
	switch {
	case r.PreStop.Deployment == "delete":
		return IntentDeploymentDeleted, "pre-stop saw BOSH_DEPLOYMENT_NEXT_STATE=delete: the whole deployment is being deleted"
	case r.PreStop.Instance == "delete":
		return IntentRemove, "pre-stop saw BOSH_INSTANCE_NEXT_STATE=delete: BOSH is deleting this instance"
	case r.PreStop.Instance == "keep":
		return IntentKeep, fmt.Sprintf("pre-stop saw BOSH_INSTANCE_NEXT_STATE=keep: BOSH is %s this instance and keeps it (BOSH_VM_NEXT_STATE=%s)", kindVerb(r.Kind), orUnset(r.PreStop.VM))
	}
	// No usable pre-stop record: an old director. Only the disk sizes are left.
	switch {
	case r.NextPersistentDisk == 0 && r.CurrentPersistentDisk > 0:
		return IntentRemove, fmt.Sprintf("BOSH_JOB_NEXT_STATE has persistent_disk 0 while the current state has %d: BOSH is deleting this instance (pre-stop recorded no next state)", r.CurrentPersistentDisk)
	case r.NextPersistentDisk == 0 && r.CurrentPersistentDisk == 0:
		return IntentKeep, "BOSH_JOB_NEXT_STATE and BOSH_JOB_STATE both have persistent_disk 0: a group without a persistent disk always looks like this, so it is no sign of deletion (pre-stop recorded no next state)"
	case r.NextPersistentDisk == 0:
		return IntentKeep, "BOSH_JOB_NEXT_STATE has persistent_disk 0 but BOSH_JOB_STATE is not set, so there is no sign that the instance had a disk to lose; keeping the member (pre-stop recorded no next state)"
	case r.NextPersistentDisk < 0:
		return IntentKeep, fmt.Sprintf("BOSH is %s this instance without a next state (no BOSH_JOB_NEXT_STATE, no pre-stop record)", kindVerb(r.Kind))
	}
	return IntentKeep, fmt.Sprintf("BOSH is %s this instance and keeps its persistent disk (%d MB)", kindVerb(r.Kind), r.NextPersistentDisk)
}

func orUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}

// Membership is what the cluster says about this member when it is about to be removed.
type Membership struct {
	// Learner is true when this member is a learner (it does not count toward quorum).
	Learner bool
	// Voters counts the voting members, this one included when it votes.
	Voters int
	// HealthyOthers counts the other voting members that answer with a leader.
	HealthyOthers int
}

// Removal is what drain does with a member of an instance that is being deleted.
type Removal int

const (
	// RemovalProceed: remove the member.
	RemovalProceed Removal = iota
	// RemovalLastMember: this is the only voter; the cluster goes away with it, nothing to remove.
	RemovalLastMember
	// RemovalRefused: removing it would leave fewer healthy voters than a quorum of the rest.
	RemovalRefused
)

// ErrWouldLoseQuorum is returned when removing this member would leave the cluster without a healthy quorum.
var ErrWouldLoseQuorum = errors.New("removing this member would lose quorum")

// DecideRemoval applies the quorum arithmetic: after the removal, the remaining voters need a healthy majority.
func DecideRemoval(m Membership) (Removal, error) {
	if !m.Learner && m.Voters == 1 {
		return RemovalLastMember, nil
	}
	remaining := m.Voters
	if !m.Learner {
		remaining--
	}
	if quorum := remaining/2 + 1; m.HealthyOthers < quorum {
		return RemovalRefused, fmt.Errorf("drain: %w: after removal %d voting members remain and only %d of them are healthy (quorum is %d); bring the unhealthy members back first",
			ErrWouldLoseQuorum, remaining, m.HealthyOthers, quorum)
	}
	return RemovalProceed, nil
}

func kindVerb(kind string) string {
	switch kind {
	case "job_shutdown":
		return "stopping or recreating"
	case "job_new":
		return "adding a job to"
	}
	return "updating"
}

// parseJobState reads the persistent_disk of BOSH_JOB_STATE or BOSH_JOB_NEXT_STATE (-1 when unset).
func parseJobState(name, v string) (int, error) {
	if strings.TrimSpace(v) == "" {
		return -1, nil
	}
	var s struct {
		PersistentDisk *int `json:"persistent_disk"`
	}
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return -1, fmt.Errorf("drain: %s is not JSON (%q): %w", name, v, err)
	}
	if s.PersistentDisk == nil {
		return -1, nil
	}
	if *s.PersistentDisk < 0 {
		return -1, fmt.Errorf("drain: %s has persistent_disk %d; BOSH gives a size of 0 or more", name, *s.PersistentDisk)
	}
	return *s.PersistentDisk, nil
}
