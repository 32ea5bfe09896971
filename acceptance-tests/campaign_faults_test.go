package acceptance_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/acceptance-tests/cluster"
	"github.com/etcd-release/etcd-release/acceptance-tests/config"
	"github.com/etcd-release/etcd-release/acceptance-tests/director"
)

// fault is one fault of the campaign: a cycle injects it and recovers (the cluster is then checked).
type fault struct {
	name string
	run  func(ctx SpecContext, s *scenario, rng *rand.Rand)
	// ownDeployment, if set, makes the fault run on a deployment of its own (created before its first cycle,
	// deleted after its last), prepared by it; the campaign's deployment waits meanwhile.
	ownDeployment func(*scenario)
	// prepare, if set, adjusts the campaign's deployment before its first deploy (e.g. a small quota).
	prepare func(*scenario)
}

// campaignQuota is the campaign deployment's backend quota when NOSPACE is among the faults: small enough to
// fill in seconds, far above what the consumer's keys need.
const campaignQuota = 64 << 20

func campaignFaults(size int) []fault {
	return []fault{
		{name: "kill-9 leader", run: killFault(size, true)},
		{name: "kill-9 follower", run: killFault(size, false)},
		{name: "stop --hard then start", run: stopHardFault(size)},
		{name: "partition of a minority", run: partitionMinorityFault(size)},
		{name: "partition of the leader", run: partitionLeaderFault(size)},
		{name: "single-member wipe", run: wipeFault(size)},
		{name: "bootstrap store lost (random start order)", run: bootstrapLostFault},
		{name: "rolling deploy", run: rollingFault(size)},
		{name: "disk-less rolling deploy", run: rollingFault(size), ownDeployment: func(s *scenario) { s.manifest.NoPersistentDisk = true }},
		rotationFault(size),
		{name: "defragmentation under load", run: onRandomMember("etcd_ctl defrag", func(ctx context.Context, s *scenario, ip string) error {
			_, err := s.helper.Defrag(ctx, ip)
			return err
		})},
		{name: "NOSPACE reached and cleared", run: nospaceFault, prepare: func(s *scenario) {
			s.manifest.EtcdProperties["quota_backend_bytes"] = campaignQuota
			s.manifest.EtcdProperties["maintenance"] = map[string]any{"check_interval_in_seconds": 5}
		}},
		{name: "scale 3→5→3 (5→3→5)", run: scaleFault(size)},
		{name: "snapshot under load", run: onRandomMember("etcd_ctl snapshot", func(ctx context.Context, s *scenario, ip string) error {
			_, err := s.helper.Snapshot(ctx, ip)
			return err
		})},
		{name: "restore drill", run: restoreDrillFault(size)},
	}
}

// victim is the leader, or a random follower.
func victim(ctx SpecContext, s *scenario, rng *rand.Rand, size int, leader bool) cluster.Instance {
	l, fs := leaderAndFollowers(ctx, s, size)
	if leader {
		return l
	}
	return fs[rng.IntN(len(fs))]
}

// leaderAndFollowers is the leader and every other instance.
func leaderAndFollowers(ctx SpecContext, s *scenario, size int) (cluster.Instance, []cluster.Instance) {
	l, _ := s.leaderAndFollower(ctx, size)
	var followers []cluster.Instance
	for _, in := range s.instances(ctx) {
		if in.IP != l.IP {
			followers = append(followers, in)
		}
	}
	return l, followers
}

func killFault(size int, leader bool) func(SpecContext, *scenario, *rand.Rand) {
	return func(ctx SpecContext, s *scenario, rng *rand.Rand) {
		in := victim(ctx, s, rng, size, leader)
		_, err := s.helper.Kill(ctx, in.IP, "etcd")
		helperDo("kill -9 etcd on "+in.IP, err)
	}
}

func stopHardFault(size int) func(SpecContext, *scenario, *rand.Rand) {
	return func(ctx SpecContext, s *scenario, rng *rand.Rand) {
		target := cluster.Group + "/" + victim(ctx, s, rng, size, false).ID
		s.changeState(ctx, target, director.StateDetached)
		s.changeState(ctx, target, director.StateStarted)
	}
}

// partitionLeaderFault cuts the leader off from every other member for 5 s.
func partitionLeaderFault(size int) func(SpecContext, *scenario, *rand.Rand) {
	return func(ctx SpecContext, s *scenario, rng *rand.Rand) {
		partition(ctx, s, []cluster.Instance{victim(ctx, s, rng, size, true)})
	}
}

// partitionMinorityFault splits the cluster for 5 s: (size-1)/2 random followers — one of 3, two of 5 — on one
// side, still connected to each other, the leader and the rest (a quorum) on the other.
func partitionMinorityFault(size int) func(SpecContext, *scenario, *rand.Rand) {
	return func(ctx SpecContext, s *scenario, rng *rand.Rand) {
		_, followers := leaderAndFollowers(ctx, s, size)
		rng.Shuffle(len(followers), func(i, j int) { followers[i], followers[j] = followers[j], followers[i] })
		partition(ctx, s, followers[:(size-1)/2])
	}
}

// partition drops traffic between the minority and every other member for 5 s (the minority's members still
// reach each other), then heals.
func partition(ctx SpecContext, s *scenario, minority []cluster.Instance) {
	side := map[string]bool{}
	for _, in := range minority {
		side[in.IP] = true
	}
	var rest []string
	for _, o := range s.instances(ctx) {
		if !side[o.IP] {
			rest = append(rest, o.IP)
		}
	}
	for _, in := range minority {
		_, err := s.helper.Partition(ctx, in.IP, rest)
		helperDo("partitioning "+in.IP, err)
	}
	sleep(ctx, 5*time.Second)
	for _, in := range minority {
		helperDo("healing "+in.IP, s.helper.Heal(ctx, in.IP))
	}
}

func wipeFault(size int) func(SpecContext, *scenario, *rand.Rand) {
	return func(ctx SpecContext, s *scenario, rng *rand.Rand) {
		in := victim(ctx, s, rng, size, false)
		s.monitStop(ctx, in)
		_, err := s.helper.Wipe(ctx, in.IP, "etcd")
		helperDo("wiping "+in.IP, err)
		_, err = s.helper.Monit(ctx, in.IP, "etcd", "start")
		helperDo("monit start etcd on "+in.IP, err)
	}
}

// bootstrapLostFault: the clients stop before the cluster does and start again once it is one healthy
// cluster: a client write to the cluster a lone creator re-creates is, by design, a conflict that etcd_ctl
// leaves to the operator (both sides hold client writes; TestBothSidesWithClientWritesIsAConflict), not a
// fault the cluster can heal. The first campaign run showed exactly that when the writers kept going.
func bootstrapLostFault(ctx SpecContext, s *scenario, rng *rand.Rand) {
	s.finishLoad(ctx)
	instances := s.instances(ctx)
	for _, in := range instances {
		s.monitStop(ctx, in)
	}
	for _, bi := range s.boshInstances(ctx) {
		if bi.Bootstrap {
			_, err := s.helper.Wipe(ctx, bi.IP(), "etcd")
			helperDo("wiping the bootstrap instance "+bi.IP(), err)
		}
	}
	rng.Shuffle(len(instances), func(i, j int) { instances[i], instances[j] = instances[j], instances[i] })
	for _, in := range instances {
		_, err := s.helper.Monit(ctx, in.IP, "etcd", "start")
		helperDo("monit start etcd on "+in.IP, err)
		sleep(ctx, time.Duration(rng.IntN(3000))*time.Millisecond)
	}
	s.waitHealthy(ctx, len(instances)) // only then do the writers come back
	s.startLoad(ctx)
}

// rollingFault deploys a property change over every member: the heartbeat goes 50 ↔ 100 ms.
func rollingFault(size int) func(SpecContext, *scenario, *rand.Rand) {
	return func(ctx SpecContext, s *scenario, _ *rand.Rand) {
		heartbeat, _ := s.manifest.EtcdProperties["heartbeat_interval_in_milliseconds"].(int)
		if heartbeat == 100 {
			heartbeat = 50
		} else {
			heartbeat = 100
		}
		s.manifest.EtcdProperties["heartbeat_interval_in_milliseconds"] = heartbeat
		s.deploy(ctx, size)
	}
}

// rotationFault rotates CAs and certificates, one deploy per cycle through the documented three steps (add
// the next CAs, swap the certificates, remove the old CAs), and on to the next generation. The consumer
// trusts every generation the campaign can reach from the start (set up by prepare), and presents the
// client certificate the step needs.
func rotationFault(size int) fault {
	var gens []*cluster.Certs
	step := 0
	return fault{
		name: "certificate rotation",
		prepare: func(s *scenario) {
			gens = append(gens, s.certs)
			for g := 2; g <= campaignCycles()/3+2; g++ {
				c, err := cluster.NewCerts(fmt.Sprint(g), s.ips)
				Expect(err).NotTo(HaveOccurred())
				gens = append(gens, c)
			}
			var err error
			s.clientTLS, err = cluster.NewClientTLS(s.certs, gens...)
			Expect(err).NotTo(HaveOccurred())
		},
		run: func(ctx SpecContext, s *scenario, _ *rand.Rand) {
			cur, next := gens[step/3], gens[step/3+1]
			props, client := map[int]map[string]any{
				0: cluster.TLSProperties(cur, cur, next),
				1: cluster.TLSProperties(next, cur, next),
				2: cluster.TLSProperties(next, next),
			}[step%3], map[int]*cluster.Certs{0: cur, 1: next, 2: next}[step%3]
			By(fmt.Sprintf("rotation step %d of generation %d → %d", step%3+1, step/3+1, step/3+2))
			Expect(s.clientTLS.Use(client)).To(Succeed())
			for k, v := range props {
				s.manifest.EtcdProperties[k] = v
			}
			s.deploy(ctx, size)
			step++
		},
	}
}

// nospaceFault fills the keyspace with 1 MiB values until etcd raises its NOSPACE alarm, deletes them (etcd
// takes deletes under the alarm), and waits for the maintenance loop to compact, defragment and disarm. The
// consumer's writes fail while the alarm is raised: that is the fault's price; none acknowledged may be lost.
func nospaceFault(ctx SpecContext, s *scenario, _ *rand.Rand) {
	prefix := fmt.Sprintf("/campaign-filler/%d/", time.Now().UnixNano())
	value := strings.Repeat("f", 1<<20)
	By("filling the keyspace with 1 MiB values until NOSPACE")
	full := false
	for i := 0; i < 2*campaignQuota>>20 && !full; i++ {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := s.cli.Put(pctx, fmt.Sprintf("%s%d", prefix, i), value)
		cancel()
		full = errors.Is(err, rpctypes.ErrNoSpace)
	}
	Expect(full).To(BeTrue(), "etcd never answered NOSPACE with twice the quota written")
	By("deleting the filler; the maintenance loop compacts, defragments and disarms")
	Eventually(ctx, func() error {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := s.cli.Delete(dctx, prefix, clientv3.WithPrefix())
		return err
	}).WithTimeout(config.Seconds(cfg.Timeouts.ConvergeInSeconds)).Should(Succeed())
	Eventually(ctx, func() error {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := s.cli.AlarmList(actx)
		if err == nil && len(resp.Alarms) > 0 {
			err = fmt.Errorf("alarms still raised: %v", resp.Alarms)
		}
		return err
	}).WithTimeout(config.Seconds(cfg.Timeouts.ConvergeInSeconds)).WithPolling(2 * time.Second).Should(Succeed())
}

func scaleFault(size int) func(SpecContext, *scenario, *rand.Rand) {
	return func(ctx SpecContext, s *scenario, _ *rand.Rand) {
		other := 5 // the scenario reserves 5 static IPs: 3 members scale out to 5, 5 scale in to 3
		if size >= 5 {
			other = 3
		}
		for _, n := range []int{other, size} {
			s.deploy(ctx, n)
			s.setEndpoints(ipsOf(s.instances(ctx)))
			s.waitHealthy(ctx, n)
		}
		// The scale-in orphaned the disks of the members it removed.
		Expect(deleteOrphanedDisks(ctx, s.deployment)).To(Succeed())
	}
}

func onRandomMember(what string, do func(context.Context, *scenario, string) error) func(SpecContext, *scenario, *rand.Rand) {
	return func(ctx SpecContext, s *scenario, rng *rand.Rand) {
		instances := s.instances(ctx)
		in := instances[rng.IntN(len(instances))]
		helperDo(what+" on "+in.IP, do(ctx, s, in.IP))
	}
}

// restoreDrillFault is the README's "Everything lost" procedure: the writers stop (their writes are then all
// acknowledged or failed), a snapshot is taken on a random member and kept off the VMs, the deployment is
// deleted with its disks and deployed again, and the snapshot is restored on every member; every write the
// stopped writers had acknowledged must be back. The writers then start again.
func restoreDrillFault(size int) func(SpecContext, *scenario, *rand.Rand) {
	return func(ctx SpecContext, s *scenario, rng *rand.Rand) {
		written := s.load
		s.finishLoad(ctx)
		instances := s.instances(ctx)
		in := instances[rng.IntN(len(instances))]
		snap, err := s.helper.Snapshot(ctx, in.IP)
		helperDo("etcd_ctl snapshot on "+in.IP, err)
		Expect(s.deleteKeepingIPs(ctx, false)).To(Succeed(), "bosh delete-deployment")
		s.deploy(ctx, size)
		s.waitHealthy(ctx, size)
		s.restoreEverywhere(ctx, snap)
		s.waitHealthy(ctx, size)
		missing := readBackAgain(ctx, s, written)
		s.metrics.Missing += len(missing)
		Expect(missing).To(BeEmpty(), "acknowledged writes missing after the restore")
		s.startLoad(ctx)
	}
}
