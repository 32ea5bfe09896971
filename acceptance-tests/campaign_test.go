package acceptance_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcd-release/etcd-release/acceptance-tests/cluster"
	"github.com/etcd-release/etcd-release/acceptance-tests/consumer"
	"github.com/etcd-release/etcd-release/acceptance-tests/director"
)

// The fault campaign (`make campaign`, label campaign, never in CI): one TLS deployment per size, every fault
// repeated CAMPAIGN_CYCLES times (make campaign sets 20; unset, the campaign is skipped), each cycle under a fresh load phase (a writer of unique keys with
// read-back and register clients checked for linearizability), then the split-brain checks (one cluster ID, one
// leader, every member a voter). CAMPAIGN_SEED replays a schedule (victims and start orders come from it);
// CAMPAIGN_FAULTS (comma-separated names) and CAMPAIGN_SIZES ("3,5") narrow it. The results table goes to the
// GinkgoWriter and to campaign-<size>.md in the report dir, also when a cycle fails.
var _ = Describe("fault campaign", Label("campaign"), func() {
	for _, size := range campaignSizes() {
		It(fmt.Sprintf("keeps every acknowledged write and one cluster through every fault, %d members", size), func(ctx SpecContext) {
			runCampaign(ctx, size)
		})
	}
})

// fault is one fault of the campaign: a cycle injects it and recovers (the cluster is then checked).
type fault struct {
	name string
	run  func(ctx SpecContext, s *scenario, rng *rand.Rand)
}

// faultResult is the row of one fault in the results table.
type faultResult struct {
	name                string
	cycles              int
	acked, failed, lost int
	longestStall        time.Duration
	verdict             string
}

func campaignFaults(size int) []fault {
	victim := func(ctx SpecContext, s *scenario, rng *rand.Rand, leader bool) cluster.Instance {
		l, _ := s.leaderAndFollower(ctx, size)
		if leader {
			return l
		}
		var followers []cluster.Instance
		for _, in := range s.instances(ctx) {
			if in.IP != l.IP {
				followers = append(followers, in)
			}
		}
		return followers[rng.IntN(len(followers))]
	}
	kill := func(leader bool) func(SpecContext, *scenario, *rand.Rand) {
		return func(ctx SpecContext, s *scenario, rng *rand.Rand) {
			in := victim(ctx, s, rng, leader)
			_, err := s.helper.Kill(ctx, in.IP, "etcd")
			helperDo("kill -9 etcd on "+in.IP, err)
		}
	}
	partition := func(leader bool) func(SpecContext, *scenario, *rand.Rand) {
		return func(ctx SpecContext, s *scenario, rng *rand.Rand) {
			in := victim(ctx, s, rng, leader)
			var others []string
			for _, o := range s.instances(ctx) {
				if o.IP != in.IP {
					others = append(others, o.IP)
				}
			}
			_, err := s.helper.Partition(ctx, in.IP, others)
			helperDo("partitioning "+in.IP, err)
			sleep(ctx, 5*time.Second)
			helperDo("healing "+in.IP, s.helper.Heal(ctx, in.IP))
		}
	}
	heartbeat := 50
	return []fault{
		{"kill-9 leader", kill(true)},
		{"kill-9 follower", kill(false)},
		{"stop --hard then start", func(ctx SpecContext, s *scenario, rng *rand.Rand) {
			target := cluster.Group + "/" + victim(ctx, s, rng, false).ID
			s.changeState(ctx, target, director.StateDetached)
			s.changeState(ctx, target, director.StateStarted)
		}},
		{"partition of a follower", partition(false)},
		{"partition of the leader", partition(true)},
		{"single-member wipe", func(ctx SpecContext, s *scenario, rng *rand.Rand) {
			in := victim(ctx, s, rng, false)
			s.monitStop(ctx, in)
			_, err := s.helper.Wipe(ctx, in.IP, "etcd")
			helperDo("wiping "+in.IP, err)
			_, err = s.helper.Monit(ctx, in.IP, "etcd", "start")
			helperDo("monit start etcd on "+in.IP, err)
		}},
		{"bootstrap store lost (random start order)", func(ctx SpecContext, s *scenario, rng *rand.Rand) {
			// The clients stop before the cluster does and start again once it is one healthy cluster: a client
			// write to the cluster a lone creator re-creates is, by design, a conflict that etcd_ctl leaves to the
			// operator (both sides hold client writes; TestBothSidesWithClientWritesIsAConflict), not a fault
			// the cluster can heal. The first campaign run showed exactly that when the writers kept going.
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
		}},
		{"rolling deploy", func(ctx SpecContext, s *scenario, _ *rand.Rand) {
			heartbeat = 150 - heartbeat // 50 ↔ 100: every deploy changes every member
			s.manifest.EtcdProperties["heartbeat_interval_in_milliseconds"] = heartbeat
			s.deploy(ctx, size)
		}},
		{"defragmentation under load", func(ctx SpecContext, s *scenario, rng *rand.Rand) {
			instances := s.instances(ctx)
			in := instances[rng.IntN(len(instances))]
			_, err := s.helper.Defrag(ctx, in.IP)
			helperDo("etcd_ctl defrag from "+in.IP, err)
		}},
		{"scale 3→5→3 (5→3→5)", func(ctx SpecContext, s *scenario, _ *rand.Rand) {
			other := 5 // the scenario reserves 5 static IPs: 3 members scale out to 5, 5 scale in to 3
			if size >= 5 {
				other = 3
			}
			for _, n := range []int{other, size} {
				s.deploy(ctx, n)
				s.setEndpoints(ipsOf(s.instances(ctx)))
				s.waitHealthy(ctx, n)
			}
		}},
		{"snapshot under load", func(ctx SpecContext, s *scenario, rng *rand.Rand) {
			instances := s.instances(ctx)
			in := instances[rng.IntN(len(instances))]
			_, err := s.helper.Snapshot(ctx, in.IP)
			helperDo("etcd_ctl snapshot on "+in.IP, err)
		}},
	}
}

func runCampaign(ctx SpecContext, size int) {
	if os.Getenv("CAMPAIGN_CYCLES") == "" {
		Skip("the fault campaign runs only when CAMPAIGN_CYCLES is set (make campaign), not in a run of every scenario")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CAMPAIGN_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		Expect(err).NotTo(HaveOccurred(), "CAMPAIGN_SEED")
	}
	cycles, err := strconv.Atoi(os.Getenv("CAMPAIGN_CYCLES"))
	Expect(err).NotTo(HaveOccurred(), "CAMPAIGN_CYCLES")
	fmt.Fprintf(GinkgoWriter, "campaign on %d members: seed %d (CAMPAIGN_SEED=%d replays it), %d cycles per fault\n", size, seed, seed, cycles)
	rng := rand.New(rand.NewPCG(seed, uint64(size)))
	s := newScenario(fmt.Sprintf("campaign-%d", size), true)
	s.deploy(ctx, size)
	s.waitHealthy(ctx, size)
	var results []*faultResult
	start := time.Now()
	DeferCleanup(func() { writeCampaignTable(size, seed, cycles, time.Since(start), results) })
	for _, f := range selectedFaults(campaignFaults(size)) {
		r := &faultResult{name: f.name, verdict: "-"}
		results = append(results, r)
		for c := 1; c <= cycles; c++ {
			By(fmt.Sprintf("%s, cycle %d/%d", f.name, c, cycles))
			before, phases := s.metrics, len(s.phaseStats)
			s.startLoad(ctx)
			sleep(ctx, 3*time.Second)
			f.run(ctx, s, rng)
			views := s.waitHealthy(ctx, size) // one cluster ID, one leader, every member a voter
			Expect(cluster.ClusterIDs(views)).To(HaveLen(1), "split brain after %s, cycle %d", f.name, c)
			sleep(ctx, 2*time.Second)
			r.cycles = c
			func() {
				defer func() { // record the cycle even when finishLoad's assertions fail
					r.acked += s.metrics.WritesAcked - before.WritesAcked
					r.failed += s.metrics.WritesFailed - before.WritesFailed
					r.lost += s.metrics.Missing - before.Missing
					for _, st := range s.phaseStats[phases:] {
						r.longestStall = max(r.longestStall, st.LongestStall)
					}
					if r.verdict == "-" || s.lastVerdict != consumer.Linearizable {
						r.verdict = string(s.lastVerdict)
					}
				}()
				s.finishLoad(ctx)
			}()
		}
	}
}

func campaignSizes() []int {
	v := os.Getenv("CAMPAIGN_SIZES")
	if v == "" {
		return []int{3, 5}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func selectedFaults(all []fault) []fault {
	v := os.Getenv("CAMPAIGN_FAULTS")
	if v == "" {
		return all
	}
	var out []fault
	for _, f := range all {
		for _, want := range strings.Split(v, ",") {
			if strings.TrimSpace(want) == f.name {
				out = append(out, f)
			}
		}
	}
	return out
}

// writeCampaignTable prints the results table and writes it to campaign-<size>.md in the report dir.
func writeCampaignTable(size int, seed uint64, cycles int, took time.Duration, results []*faultResult) {
	host, _ := os.Hostname()
	var b strings.Builder
	fmt.Fprintf(&b, "### %d members — %s, seed %d, %d cycles per fault, %s, machine %s\n\n", size, time.Now().UTC().Format("2006-01-02"), seed, cycles, took.Round(time.Second), host)
	b.WriteString("| fault | cycles | writes acked | failed writes | longest stall | lost writes | linearizability |\n|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %d | %s |\n", r.name, r.cycles, r.acked, r.failed, r.longestStall.Round(time.Millisecond), r.lost, r.verdict)
	}
	fmt.Fprint(GinkgoWriter, b.String())
	AddReportEntry("campaign", b.String())
	if cfg.ReportDir != "" {
		_ = os.WriteFile(filepath.Join(cfg.ReportDir, fmt.Sprintf("campaign-%d.md", size)), []byte(b.String()), 0o644)
	}
}
