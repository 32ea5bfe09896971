// Package drain implements the BOSH pre-stop and drain contract for an etcd member: always move leadership away
// from a stopping member; remove the member from the cluster only when BOSH is deleting its instance
// (DecideIntent), and never when that would lose quorum (DecideRemoval).
package drain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
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
	// CurrentPersistentDisk is BOSH_JOB_STATE's persistent_disk, or -1 when not given.
	CurrentPersistentDisk int
	// NextPersistentDisk is BOSH_JOB_NEXT_STATE's persistent_disk, or -1 when not given.
	NextPersistentDisk int
	// PreStop is what bin/pre-stop recorded from BOSH_*_NEXT_STATE (see PreStopRecord).
	PreStop NextStates
}

// ParseRequest reads drain's arguments, BOSH_JOB_STATE and BOSH_JOB_NEXT_STATE.
func ParseRequest(args []string, jobState, nextState string) (Request, error) {
	r := Request{CurrentPersistentDisk: -1, NextPersistentDisk: -1}
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
	var err error
	if r.CurrentPersistentDisk, err = parseJobState("BOSH_JOB_STATE", jobState); err != nil {
		return r, err
	}
	if r.NextPersistentDisk, err = parseJobState("BOSH_JOB_NEXT_STATE", nextState); err != nil {
		return r, err
	}
	return r, nil
}

// Run performs the drain and returns the number of seconds BOSH should wait (always 0: the work is done
// synchronously). The decision is DecideIntent (what BOSH does to the instance) and, for a deleted instance,
// DecideRemoval (quorum); the steps around them only talk to the cluster.
func Run(ctx context.Context, c *config.Config, src peers.Source, req Request, markerPath string, lg *zap.Logger) (int, error) {
	intent, reason := DecideIntent(req)
	lg.Info("drain decision", zap.String("intent", intent.String()), zap.String("reason", reason),
		zap.String("kind", req.Kind), zap.Int("persistent-disk", req.CurrentPersistentDisk), zap.Int("next-persistent-disk", req.NextPersistentDisk))
	switch intent {
	case IntentPoll:
		return 0, nil
	case IntentDeploymentDeleted:
		// Removing members one by one while every instance is being deleted at once would lose quorum half way
		// and fail the delete; the whole cluster goes away with its disks instead.
		lg.Info("drain keeps the member list", zap.String("reason", reason))
		deregister(ctx, src, lg)
		return 0, nil
	}
	v, err := viewCluster(ctx, c, src)
	if err != nil {
		if intent != IntentRemove {
			lg.Info("drain has nothing to do", zap.String("reason", "the cluster does not answer, so there is no leadership to move"), zap.Error(err))
			return 0, nil
		}
		return 0, fmt.Errorf("drain: this instance is being deleted but its member cannot be removed: %w", err)
	}
	defer v.cli.Close()
	if v.me == nil {
		lg.Info("drain has nothing to do", zap.String("reason", "this instance is not a member of the cluster"))
		if intent == IntentRemove {
			deregister(ctx, src, lg)
		}
		return 0, nil
	}
	if err := moveLeadershipAway(ctx, c, v.cli, v.list, v.me.ID, c.Self().ClientURL, lg); err != nil {
		lg.Warn("could not move leadership away before stopping; the cluster will elect a new leader", zap.Error(err))
	}
	if intent == IntentKeep {
		lg.Info("drain keeps this member", zap.String("reason", reason+"; a restart keeps the data and the member identity"))
		return 0, nil
	}
	return 0, removeSelf(ctx, c, src, v, markerPath, reason, lg)
}

// clusterView is the live member list and this member's entry in it (nil when absent).
type clusterView struct {
	cli  *clientv3.Client
	list *clientv3.MemberListResponse
	me   *etcdserverpb.Member
}

// viewCluster lists the members through every desired member's client URL and finds this member by name or
// peer URL. The caller closes v.cli.
func viewCluster(ctx context.Context, c *config.Config, src peers.Source) (*clusterView, error) {
	desired, err := src.Members(ctx)
	if err != nil {
		return nil, err
	}
	cli, err := etcdclient.New(c, peers.ClientURLs(desired), 5*time.Second)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	list, err := cli.MemberList(lctx)
	cancel()
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("the cluster does not answer: %w", err)
	}
	self := c.Self()
	v := &clusterView{cli: cli, list: list}
	for _, m := range list.Members {
		if m.Name == self.Name || slices.Contains(m.PeerURLs, self.PeerURL) {
			v.me = m
		}
	}
	return v, nil
}

// membershipOf counts voters and the healthy other voters for DecideRemoval.
func membershipOf(ctx context.Context, c *config.Config, v *clusterView) Membership {
	m := Membership{Learner: v.me.IsLearner}
	for _, mm := range v.list.Members {
		if mm.IsLearner {
			continue
		}
		m.Voters++
		if mm.ID != v.me.ID && len(mm.ClientURLs) > 0 && memberHealthy(ctx, c, mm.ClientURLs[0]) {
			m.HealthyOthers++
		}
	}
	return m
}

// removeSelf removes this member of an instance BOSH is deleting, unless DecideRemoval says otherwise. The
// drain marker is written first so that the supervisor, seeing etcd stop, knows the removal was intended.
func removeSelf(ctx context.Context, c *config.Config, src peers.Source, v *clusterView, markerPath, why string, lg *zap.Logger) error {
	id := v.me.ID
	switch r, err := DecideRemoval(membershipOf(ctx, c, v)); r {
	case RemovalRefused:
		return err
	case RemovalLastMember:
		lg.Info("drain keeps the last member", zap.String("reason", "this is the only voting member; the cluster is deleted with it"))
		deregister(ctx, src, lg)
		return nil
	}
	if err := os.WriteFile(markerPath, []byte(strconv.FormatUint(id, 16)+"\n"), 0o644); err != nil {
		return fmt.Errorf("drain: writing %s: %w", markerPath, err)
	}
	var otherEps []string
	for _, m := range v.list.Members {
		if m.ID != id && !m.IsLearner {
			otherEps = append(otherEps, m.ClientURLs...)
		}
	}
	ocli, err := etcdclient.New(c, otherEps, 5*time.Second)
	if err != nil {
		os.Remove(markerPath)
		return err
	}
	defer ocli.Close()
	if err := removeMember(ctx, ocli, id, lg); err != nil {
		os.Remove(markerPath)
		return fmt.Errorf("drain: removing member %x: %w", id, err)
	}
	lg.Info("removed this member from the cluster", zap.String("member-id", strconv.FormatUint(id, 16)), zap.String("reason", why))
	deregister(ctx, src, lg)
	return nil
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
	err := retry.Poll(ctx, retry.Options{Interval: time.Second, Timeout: RemoveRetryTimeout,
		Waiting: func(p retry.Progress) {
			lg.Info("member removal refused for now; retrying", zap.String("reason", "etcd does not yet count recently connected members toward quorum"), zap.Error(p.Last))
		}}, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		_, err := cli.MemberRemove(rctx, id)
		if err != nil && !errors.Is(err, rpctypes.ErrUnhealthy) {
			return retry.Stop(err)
		}
		return err
	})
	// After the retries, the caller reports etcd's own refusal, not the wait's wrapper.
	if gu := (*retry.GaveUp)(nil); errors.As(err, &gu) && gu.Last != nil && errors.Is(gu.Cause, retry.ErrTimeout) {
		return gu.Last
	}
	return err
}

// RemoveRetryTimeout bounds the retries of a member removal that etcd refuses as unsafe for now.
const RemoveRetryTimeout = 60 * time.Second

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
