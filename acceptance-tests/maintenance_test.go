package acceptance_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcd-release/etcd-release/acceptance-tests/cluster"
	"github.com/etcd-release/etcd-release/acceptance-tests/consumer"
)

var _ = Describe("etcd-release keyspace maintenance", func() {
	// Churn against a small quota (issue 13): automatic compaction and the maintenance loop keep every member's
	// db file below the quota while the same keys are overwritten many times the quota over; the usual load and
	// porcupine check run alongside.
	It("churns against a 32 MiB quota under load without a NOSPACE alarm", Label("maintenance", "tls"), func(ctx SpecContext) {
		s := newScenario("maintenance", true)
		const quota = 32 << 20
		s.manifest.EtcdProperties["quota_backend_bytes"] = quota
		s.manifest.EtcdProperties["auto_compaction_retention"] = "2s"
		s.manifest.EtcdProperties["maintenance"] = map[string]any{"check_interval_in_seconds": 5, "defrag_min_db_size_bytes": 4 << 20}
		s.deploy(ctx, 3)
		s.waitHealthy(ctx, 3)
		s.startLoad(ctx)
		cli, err := consumer.NewClient(cluster.Endpoints(ipsOf(s.instances(ctx)), s.tls), s.clientTLS.Config())
		Expect(err).NotTo(HaveOccurred())
		defer cli.Close()

		By("overwriting 20 keys of 64 KiB (1.25 MiB live) at 40 puts/s until 4× the quota is written")
		var acked, failed atomic.Int64
		errs := map[string]int{}
		value := strings.Repeat("m", 64<<10)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for n := 0; acked.Load()*int64(len(value)) < 4*quota; n++ {
			select {
			case <-ctx.Done():
				Fail("interrupted")
			case <-tick.C:
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := cli.Put(pctx, fmt.Sprintf("/churn/%d", n%20), value)
			cancel()
			if err != nil {
				failed.Add(1)
				errs[err.Error()]++
				continue
			}
			acked.Add(1)
		}
		fmt.Fprintf(GinkgoWriter, "churn: %d puts acknowledged, %d failed %v\n", acked.Load(), failed.Load(), errs)
		stats := s.finishLoad(ctx)
		Expect(failed.Load()).To(BeZero(), "churn puts failed: %v", errs)
		assertNoFailedWrites(stats)
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		alarms, err := cli.AlarmList(actx)
		Expect(err).NotTo(HaveOccurred())
		Expect(alarms.Alarms).To(BeEmpty())
		for _, in := range s.instances(ctx) {
			st, err := cli.Status(actx, cluster.Endpoints([]string{in.IP}, s.tls)[0])
			Expect(err).NotTo(HaveOccurred())
			fmt.Fprintf(GinkgoWriter, "%s: db %d bytes, %d in use\n", in.MemberName(), st.DbSize, st.DbSizeInUse)
			Expect(st.DbSize).To(BeNumerically("<", quota), in.MemberName())
		}
		s.waitHealthy(ctx, 3)
	})
})
