package acceptance_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/acceptance-tests/cluster"
	"github.com/etcd-release/etcd-release/acceptance-tests/config"
	"github.com/etcd-release/etcd-release/acceptance-tests/director"
	"github.com/etcd-release/etcd-release/acceptance-tests/helper"
)

var _ = Describe("etcd-release backups and recovery", func() {
	// The README's "Everything lost" procedure: a snapshot kept off the VMs, the deployment deleted with its
	// disks, deployed again (a new, empty cluster), then on every VM `monit stop etcd`, `etcd_ctl restore
	// --snapshot FILE --force`, `monit start etcd`.
	It("brings every write back after the deployment was deleted, from a snapshot taken under load", Label("restore-drill", "tls", "ci"), func(ctx SpecContext) {
		s := newScenario("restore-drill", true)
		s.deploy(ctx, 3)
		s.waitHealthy(ctx, 3)
		s.startLoad(ctx)
		sleep(ctx, settle)
		beforeSnapshot := s.load
		s.finishLoad(ctx)

		By("etcd_ctl snapshot on one member while the consumer runs, the copy kept off the VMs")
		s.startLoad(ctx)
		sleep(ctx, settle/2)
		in := s.instances(ctx)[0]
		snap, err := s.helper.Snapshot(ctx, in.IP)
		helperDo("etcd_ctl snapshot on "+in.IP, err)
		fmt.Fprintf(GinkgoWriter, "snapshot %s (%d bytes) from %s\n", snap.Name, len(snap.Data), in.MemberName())
		sleep(ctx, settle/2)
		s.finishLoad(ctx) // a snapshot costs the writers nothing: linearizable, nothing missing
		preRestore := s.revision(ctx)

		Expect(s.deleteKeepingIPs(ctx, false)).To(Succeed(), "bosh delete-deployment")
		s.deploy(ctx, 3)
		views := s.waitHealthy(ctx, 3)
		Expect(s.keysUnder(ctx, beforeSnapshot.Prefix())).To(BeZero(), "the deployment deployed again is a new, empty cluster")
		emptyIDs := cluster.ClusterIDs(views)

		s.restoreEverywhere(ctx, snap)
		views = s.waitHealthy(ctx, 3)
		Expect(cluster.ClusterIDs(views)).NotTo(Equal(emptyIDs), "the restore made a new cluster identity")
		By("reading back every write acknowledged before the snapshot")
		Expect(readBackAgain(ctx, s, beforeSnapshot)).To(BeEmpty(), "acknowledged writes missing after the restore")
		By(fmt.Sprintf("watching from revision %d, before the restore: etcd answers compacted", preRestore))
		Eventually(ctx, func() error { return s.watchFrom(ctx, preRestore) }).
			WithTimeout(config.Seconds(cfg.Timeouts.ConvergeInSeconds)).WithPolling(2 * time.Second).Should(MatchError(rpctypes.ErrCompacted))

		s.startLoad(ctx)
		sleep(ctx, settle)
		s.finishLoad(ctx)
	})

	// The README's "Quorum lost for good, one member's data survived" procedure.
	It("recovers from the one member left when two of three lost their VMs and disks", Label("survivor", "tls", "ci"), func(ctx SpecContext) {
		s := newScenario("survivor", true)
		s.deploy(ctx, 3)
		views := s.waitHealthy(ctx, 3)
		clusterIDs, before := cluster.ClusterIDs(views), cluster.MemberIDs(views)
		s.startLoad(ctx)
		sleep(ctx, settle)
		written := s.load
		s.finishLoad(ctx)

		survivor, _ := s.leaderAndFollower(ctx, 3)
		var lost []cluster.Instance
		for _, in := range s.instances(ctx) {
			if in.IP != survivor.IP {
				lost = append(lost, in)
			}
		}
		for _, in := range lost {
			By(fmt.Sprintf("%s loses its disk and its VM", in.MemberName()))
			s.monitStop(ctx, in)
			_, err := s.helper.Wipe(ctx, in.IP, "etcd")
			helperDo("wiping the store on "+in.IP, err)
			s.changeState(ctx, cluster.Group+"/"+in.ID, director.StateDetached)
		}

		By(fmt.Sprintf("on the survivor %s: monit stop etcd, etcd_ctl recover-from-survivor, monit start etcd", survivor.MemberName()))
		s.monitStop(ctx, survivor)
		res, err := s.helper.RecoverFromSurvivor(ctx, survivor.IP)
		helperDo("etcd_ctl recover-from-survivor on "+survivor.IP, err)
		fmt.Fprintf(GinkgoWriter, "recover-from-survivor:\n%s%s", res.Stdout, res.Stderr)
		_, err = s.helper.Monit(ctx, survivor.IP, "etcd", "start")
		helperDo("monit start etcd on "+survivor.IP, err)
		s.waitHealthy(ctx, 1)

		for _, in := range lost {
			s.changeState(ctx, cluster.Group+"/"+in.ID, director.StateStarted) // a new VM; its empty store joins
		}
		views = s.waitHealthy(ctx, 3)
		Expect(cluster.ClusterIDs(views)).To(Equal(clusterIDs), "one cluster, the original one")
		Expect(cluster.MemberIDs(views)[survivor.MemberName()]).To(Equal(before[survivor.MemberName()]), "the survivor kept its member ID")
		By("reading back every write acknowledged before the members were lost")
		Expect(readBackAgain(ctx, s, written)).To(BeEmpty(), "acknowledged writes missing after the recovery")

		s.startLoad(ctx)
		sleep(ctx, settle)
		s.finishLoad(ctx)
	})
})

// restoreEverywhere runs the restore procedure on every VM: monit stop etcd on all (etcd_ctl restore refuses
// while any peer serves), etcd_ctl restore --snapshot --force on each, monit start etcd on each.
func (s *scenario) restoreEverywhere(ctx context.Context, snap *helper.SnapshotFile) {
	instances := s.instances(ctx)
	By("monit stop etcd on every member")
	for _, in := range instances {
		s.monitStop(ctx, in)
	}
	for _, in := range instances {
		By(fmt.Sprintf("etcd_ctl restore --snapshot %s --force on %s", snap.Name, in.MemberName()))
		res, err := s.helper.Restore(ctx, in.IP, snap, true)
		helperDo("etcd_ctl restore on "+in.IP, err)
		fmt.Fprintf(GinkgoWriter, "%s%s", res.Stdout, res.Stderr)
	}
	By("monit start etcd on every member")
	for _, in := range instances {
		_, err := s.helper.Monit(ctx, in.IP, "etcd", "start")
		helperDo("monit start etcd on "+in.IP, err)
	}
}

// revision is the cluster's current revision.
func (s *scenario) revision(ctx context.Context) int64 {
	var rev int64
	Eventually(ctx, func() error {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := s.cli.Get(gctx, "/", clientv3.WithCountOnly())
		if err == nil {
			rev = resp.Header.Revision
		}
		return err
	}).WithTimeout(config.Seconds(cfg.Timeouts.ConvergeInSeconds)).Should(Succeed())
	return rev
}

// keysUnder counts the keys under prefix.
func (s *scenario) keysUnder(ctx context.Context, prefix string) int64 {
	var n int64
	Eventually(ctx, func() error {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := s.cli.Get(gctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil {
			n = resp.Count
		}
		return err
	}).WithTimeout(config.Seconds(cfg.Timeouts.ConvergeInSeconds)).Should(Succeed())
	return n
}

// watchFrom opens a watch of the whole keyspace from rev and returns the error of its first answer.
func (s *scenario) watchFrom(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 10*time.Second)
	defer cancel()
	for resp := range s.cli.Watch(wctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev)) {
		if err := resp.Err(); err != nil {
			return err
		}
		return fmt.Errorf("the watch from revision %d delivered %d events, not compacted", rev, len(resp.Events))
	}
	return fmt.Errorf("the watch from revision %d ended without an answer: %v", rev, wctx.Err())
}
