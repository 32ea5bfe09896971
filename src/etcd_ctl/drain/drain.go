// Package drain implements the BOSH drain contract for an etcd member: always move leadership away from a
// stopping member; remove the member from the cluster only when BOSH says the instance is going away (its next
// state has no persistent disk), and never when that would lose quorum.
package drain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
)

// Request is one drain invocation as BOSH makes it.
type Request struct {
	// Kind is the first argument: job_shutdown, job_changed, job_new, job_check_status (or the obsolete
	// job_unchanged).
	Kind string
	// Hash is the second argument: hash_changed, hash_unchanged or hash_new.
	Hash     string
	Packages []string
	// NextPersistentDisk is BOSH_JOB_NEXT_STATE's persistent_disk, or -1 when not given.
	NextPersistentDisk int
	// DeploymentDeleted is true when pre-stop was told the whole deployment is being deleted.
	DeploymentDeleted bool
}

// DeploymentDeletedMarker is where pre-stop records that BOSH is deleting the whole deployment. Drain has no
// other way to know: its own arguments and environment look the same for a scale-down and a delete.
func DeploymentDeletedMarker(runDir string) string {
	return filepath.Join(runDir, "deployment-deleted")
}

// PreStop implements bin/pre-stop: it records whether BOSH_DEPLOYMENT_NEXT_STATE is "delete" for the drain
// that follows, and clears a stale record otherwise.
func PreStop(runDir, deploymentNextState string) error {
	marker := DeploymentDeletedMarker(runDir)
	if deploymentNextState != "delete" {
		if err := os.Remove(marker); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("pre-stop: removing %s: %w", marker, err)
		}
		return nil
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("pre-stop: %w", err)
	}
	if err := os.WriteFile(marker, []byte("delete\n"), 0o644); err != nil {
		return fmt.Errorf("pre-stop: writing %s: %w", marker, err)
	}
	return nil
}

// GoingAway reports whether BOSH is deleting this instance (next state without a persistent disk).
func (r Request) GoingAway() bool { return r.NextPersistentDisk == 0 }

// ParseRequest reads drain's arguments and BOSH_JOB_NEXT_STATE.
func ParseRequest(args []string, nextState string) (Request, error) {
	r := Request{NextPersistentDisk: -1}
	if len(args) < 1 {
		return r, errors.New("drain: missing arguments; BOSH calls drain with job_shutdown|job_changed|job_new|job_check_status and hash_changed|hash_unchanged|hash_new")
	}
	r.Kind = args[0]
	switch r.Kind {
	case "job_shutdown", "job_changed", "job_new", "job_check_status", "job_unchanged":
	default:
		return r, fmt.Errorf("drain: unknown first argument %q; expected job_shutdown, job_changed, job_new or job_check_status", r.Kind)
	}
	if len(args) > 1 {
		r.Hash = args[1]
	}
	if len(args) > 2 {
		r.Packages = args[2:]
	}
	if nextState != "" {
		var s struct {
			PersistentDisk *int `json:"persistent_disk"`
		}
		if err := json.Unmarshal([]byte(nextState), &s); err != nil {
			return r, fmt.Errorf("drain: BOSH_JOB_NEXT_STATE is not JSON (%q): %w", nextState, err)
		}
		if s.PersistentDisk != nil {
			r.NextPersistentDisk = *s.PersistentDisk
		}
	}
	return r, nil
}

// ErrWouldLoseQuorum is returned when removing this member would leave the cluster without a healthy quorum.
var ErrWouldLoseQuorum = errors.New("removing this member would lose quorum")

// Run performs the drain and returns the number of seconds BOSH should wait (always 0: the work is done
// synchronously).
func Run(ctx context.Context, c *config.Config, src peers.Source, req Request, markerPath string, lg *zap.Logger) (int, error) {
	if req.Kind == "job_check_status" {
		return 0, nil
	}
	if req.GoingAway() && req.DeploymentDeleted {
		// Removing members one by one while every instance is being deleted at once would lose quorum half way
		// and fail the delete; the whole cluster goes away with its disks instead.
		lg.Info("drain keeps the member list", zap.String("reason", "BOSH is deleting the whole deployment (pre-stop saw BOSH_DEPLOYMENT_NEXT_STATE=delete)"))
		deregister(ctx, src, lg)
		return 0, nil
	}
	self := c.Self()
	desired, err := src.Members(ctx)
	if err != nil {
		return 0, err
	}
	cli, err := etcdclient.New(c, peers.ClientURLs(desired), 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	list, err := cli.MemberList(lctx)
	cancel()
	if err != nil {
		if !req.GoingAway() {
			lg.Info("drain has nothing to do", zap.String("reason", "the cluster does not answer, so there is no leadership to move"), zap.Error(err))
			return 0, nil
		}
		return 0, fmt.Errorf("drain: this instance is being deleted but its member cannot be removed: the cluster does not answer: %w", err)
	}
	var me *clientMember
	for _, m := range list.Members {
		if m.Name == self.Name || slices.Contains(m.PeerURLs, self.PeerURL) {
			me = &clientMember{id: m.ID, learner: m.IsLearner}
		}
	}
	if me == nil {
		lg.Info("drain has nothing to do", zap.String("reason", "this instance is not a member of the cluster"))
		if req.GoingAway() {
			deregister(ctx, src, lg)
		}
		return 0, nil
	}

	if err := moveLeadershipAway(ctx, c, cli, list, me.id, self.ClientURL, lg); err != nil {
		lg.Warn("could not move leadership away before stopping; the cluster will elect a new leader", zap.Error(err))
	}
	if !req.GoingAway() {
		lg.Info("drain keeps this member", zap.String("reason", fmt.Sprintf("BOSH is %s this instance and keeps its persistent disk (a restart keeps the data and member identity)", kindVerb(req.Kind))))
		return 0, nil
	}

	voters, healthyOthers := 0, 0
	for _, m := range list.Members {
		if m.IsLearner {
			continue
		}
		voters++
		if m.ID != me.id && len(m.ClientURLs) > 0 && memberHealthy(ctx, c, m.ClientURLs[0]) {
			healthyOthers++
		}
	}
	if !me.learner && voters == 1 {
		lg.Info("drain keeps the last member", zap.String("reason", "this is the only voting member; the cluster is deleted with it"))
		deregister(ctx, src, lg)
		return 0, nil
	}
	remaining := voters
	if !me.learner {
		remaining--
	}
	if quorum := remaining/2 + 1; healthyOthers < quorum {
		return 0, fmt.Errorf("drain: %w: after removal %d voting members remain and only %d of them are healthy (quorum is %d); bring the unhealthy members back first",
			ErrWouldLoseQuorum, remaining, healthyOthers, quorum)
	}
	if err := os.WriteFile(markerPath, []byte(strconv.FormatUint(me.id, 16)+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("drain: writing %s: %w", markerPath, err)
	}
	var otherEps []string
	for _, m := range list.Members {
		if m.ID != me.id && !m.IsLearner {
			otherEps = append(otherEps, m.ClientURLs...)
		}
	}
	ocli, err := etcdclient.New(c, otherEps, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer ocli.Close()
	if err := removeMember(ctx, ocli, me.id, lg); err != nil {
		os.Remove(markerPath)
		return 0, fmt.Errorf("drain: removing member %x: %w", me.id, err)
	}
	lg.Info("removed this member from the cluster", zap.String("member-id", strconv.FormatUint(me.id, 16)),
		zap.String("reason", "BOSH is deleting this instance (next state has no persistent disk)"))
	deregister(ctx, src, lg)
	return 0, nil
}

// deregister takes this member's registration back (consul) once the instance is going away. Best effort: the
// member is already out of the cluster, so a failure is logged and does not fail the drain.
func deregister(ctx context.Context, src peers.Source, lg *zap.Logger) {
	d, ok := src.(peers.Deregisterer)
	if !ok {
		return
	}
	if err := d.Deregister(ctx); err != nil {
		lg.Warn("could not deregister this member; the registration stays until its health check turns critical and the agent goes away with the VM", zap.Error(err))
	}
}

// removeMember removes id, retrying while etcd's strict reconfiguration check answers "unhealthy cluster": etcd
// counts a member toward quorum only once it has been connected for a few seconds, so a removal right after a
// scale-up or restart is refused for a moment.
func removeMember(ctx context.Context, cli *clientv3.Client, id uint64, lg *zap.Logger) error {
	deadline := time.Now().Add(RemoveRetryTimeout)
	for {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := cli.MemberRemove(rctx, id)
		cancel()
		if err == nil || !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			return err
		}
		lg.Info("member removal refused for now; retrying", zap.String("reason", "etcd does not yet count recently connected members toward quorum"), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// RemoveRetryTimeout bounds the retries of a member removal that etcd refuses as unsafe for now.
const RemoveRetryTimeout = 60 * time.Second

type clientMember struct {
	id      uint64
	learner bool
}

func kindVerb(kind string) string {
	if kind == "job_shutdown" {
		return "stopping or recreating"
	}
	return "updating"
}

func memberHealthy(ctx context.Context, c *config.Config, ep string) bool {
	cli, err := etcdclient.New(c, []string{ep}, 2*time.Second)
	if err != nil {
		return false
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := cli.Status(sctx, ep)
	return err == nil && st.Leader != 0 && !st.IsLearner
}

// moveLeadershipAway moves leadership to the most up-to-date healthy voting peer if this member leads.
func moveLeadershipAway(ctx context.Context, c *config.Config, cli *clientv3.Client, list *clientv3.MemberListResponse, myID uint64, myEP string, lg *zap.Logger) error {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	st, err := cli.Status(sctx, myEP)
	cancel()
	if err != nil {
		return fmt.Errorf("reading this member's status: %w", err)
	}
	if st.Leader != myID {
		return nil
	}
	var best uint64
	var bestIndex uint64
	for _, m := range list.Members {
		if m.ID == myID || m.IsLearner || len(m.ClientURLs) == 0 {
			continue
		}
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		ps, err := cli.Status(pctx, m.ClientURLs[0])
		pcancel()
		if err != nil {
			continue
		}
		if best == 0 || ps.RaftAppliedIndex > bestIndex {
			best, bestIndex = m.ID, ps.RaftAppliedIndex
		}
	}
	if best == 0 {
		return errors.New("no healthy voting peer to take over")
	}
	// MoveLeader must be served by the leader itself.
	lcli, err := etcdclient.New(c, []string{myEP}, 3*time.Second)
	if err != nil {
		return err
	}
	defer lcli.Close()
	mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
	defer mcancel()
	if _, err := lcli.MoveLeader(mctx, best); err != nil {
		return fmt.Errorf("moving leadership to %x: %w", best, err)
	}
	lg.Info("moved leadership away", zap.String("to", strconv.FormatUint(best, 16)), zap.String("reason", "this member is about to stop"))
	return nil
}
