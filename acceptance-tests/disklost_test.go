package acceptance_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcd-release/etcd-release/acceptance-tests/cluster"
	"github.com/etcd-release/etcd-release/acceptance-tests/config"
	"github.com/etcd-release/etcd-release/acceptance-tests/consumer"
)

// The bootstrap instance's store lost while the whole cluster was stopped, members then started one by one with
// the bootstrap instance first (the order the original release's recovery section uses). Before the creation
// nonce and the start decision's data rule, the bootstrap instance created an empty cluster with the old cluster
// ID and the members holding every write moved their data aside and joined it. Now: every write acknowledged
// before the stop is present, the survivors keep their member IDs, and the cluster ID is the original one.
var _ = Describe("etcd-release when the bootstrap instance's disk is lost", func() {
	It("keeps every acknowledged write when the bootstrap instance's store is lost while all are stopped", Label("bootstrap-store-lost", "tls", "ci"), func(ctx SpecContext) {
		s := newScenario("bootstrap-lost", true)
		s.deploy(ctx, 3)
		views := s.waitHealthy(ctx, 3)
		clusterIDs := cluster.ClusterIDs(views)
		before := cluster.MemberIDs(views)
		s.startLoad(ctx)
		sleep(ctx, settle)
		written := s.load
		s.finishLoad(ctx)

		instances := s.instances(ctx)
		var creator cluster.Instance
		for _, bi := range s.boshInstances(ctx) {
			if bi.Bootstrap {
				creator = s.clusterInstance(bi)
			}
		}
		Expect(creator.IP).NotTo(BeEmpty(), "no bootstrap instance")
		By("monit stop etcd on every member")
		for _, in := range instances {
			s.monitStop(ctx, in)
		}
		By(fmt.Sprintf("rm -rf /var/vcap/store/etcd/* on the bootstrap instance %s (%s)", creator.MemberName(), creator.IP))
		_, err := s.helper.Wipe(ctx, creator.IP, "etcd")
		helperDo("wiping the store on "+creator.IP, err)
		By("monit start etcd on the bootstrap instance, then on the others 10 s apart")
		order := []cluster.Instance{creator}
		for _, in := range instances {
			if in.IP != creator.IP {
				order = append(order, in)
			}
		}
		for i, in := range order {
			if i > 0 {
				sleep(ctx, 10*time.Second)
			}
			_, err := s.helper.Monit(ctx, in.IP, "etcd", "start")
			helperDo("monit start etcd on "+in.IP, err)
		}

		views = s.waitHealthy(ctx, 3)
		Expect(cluster.ClusterIDs(views)).To(Equal(clusterIDs), "one cluster, the original one")
		after := cluster.MemberIDs(views)
		for name, id := range before {
			if name != creator.MemberName() {
				Expect(after[name]).To(Equal(id), "%s kept its data and member ID", name)
			}
		}
		By("reading back every write acknowledged before the stop")
		missing := readBackAgain(ctx, s, written)
		Expect(missing).To(BeEmpty(), "acknowledged writes missing after the bootstrap instance's store was lost")

		s.startLoad(ctx)
		sleep(ctx, settle)
		s.finishLoad(ctx)
	})
})

// readBackAgain reads back a finished load phase's acknowledged writes once more (after a fault that came later).
func readBackAgain(ctx SpecContext, s *scenario, load *consumer.Consumer) []string {
	var missing []string
	Eventually(ctx, func() error {
		var err error
		missing, err = load.ReadBack(ctx, s.cli)
		return err
	}).WithTimeout(config.Seconds(cfg.Timeouts.ConvergeInSeconds)).WithPolling(2 * time.Second).Should(Succeed())
	return missing
}
