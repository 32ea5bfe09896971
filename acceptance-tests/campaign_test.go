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
	"github.com/etcd-release/etcd-release/src/testkit/linearizability"
)

// The fault campaign (`make campaign`, label campaign, never in CI): one TLS deployment per size, every fault
// repeated CAMPAIGN_CYCLES times (make campaign sets 20; unset, the campaign is skipped), each cycle under a
// fresh load phase (a writer of unique keys with read-back and register clients checked for
// linearizability), then the split-brain checks (one cluster ID, one leader, every member a voter). The faults
// are in campaign_faults_test.go; the disk-less rolling deploy runs on a deployment of its own. CAMPAIGN_SEED replays a schedule (victims and start orders come from it);
// CAMPAIGN_FAULTS (comma-separated names) and CAMPAIGN_SIZES ("3,5") narrow it. The results table goes to the
// GinkgoWriter and to campaign-<size>.md in the report dir, also when a cycle fails.
var _ = Describe("fault campaign", Label("campaign"), func() {
	for _, size := range campaignSizes() {
		It(fmt.Sprintf("keeps every acknowledged write and one cluster through every fault, %d members", size), func(ctx SpecContext) {
			runCampaign(ctx, size)
		})
	}
})

// faultResult is the row of one fault in the results table.
type faultResult struct {
	name                string
	cycles              int
	acked, failed, lost int
	longestStall        time.Duration
	verdict             string
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
	cycles := campaignCycles()
	fmt.Fprintf(GinkgoWriter, "campaign on %d members: seed %d (CAMPAIGN_SEED=%d replays it), %d cycles per fault\n", size, seed, seed, cycles)
	rng := rand.New(rand.NewPCG(seed, uint64(size)))
	faults := selectedFaults(campaignFaults(size))
	s := newScenario(fmt.Sprintf("campaign-%d", size), true)
	for _, f := range faults {
		if f.prepare != nil {
			f.prepare(s)
		}
	}
	s.deploy(ctx, size)
	s.waitHealthy(ctx, size)
	var results []*faultResult
	start := time.Now()
	DeferCleanup(func() { writeCampaignTable(size, seed, cycles, time.Since(start), results, true) })
	for _, f := range faults {
		r := &faultResult{name: f.name, verdict: "-"}
		results = append(results, r)
		fs := s
		if f.ownDeployment != nil {
			fs = faultDeployment(ctx, f, size)
		}
		for c := 1; c <= cycles; c++ {
			By(fmt.Sprintf("%s, cycle %d/%d", f.name, c, cycles))
			runCycle(ctx, fs, f, rng, r, c, size)
		}
		if fs != s {
			fs.finishDeployment(ctx)
		}
		writeCampaignTable(size, seed, cycles, time.Since(start), results, false) // a long run cut short keeps what it did
	}
}

// faultDeployment is a fault's own deployment, prepared by it, deployed and healthy.
func faultDeployment(ctx SpecContext, f fault, size int) *scenario {
	fs := newScenario(fmt.Sprintf("campaign-%d-own", size), true)
	f.ownDeployment(fs)
	fs.deploy(ctx, size)
	fs.waitHealthy(ctx, size)
	return fs
}

// finishDeployment deletes a fault's own deployment once its cycles are done (its client first).
func (s *scenario) finishDeployment(ctx SpecContext) {
	if s.cli != nil {
		_ = s.cli.Close()
		s.cli = nil
	}
	s.delete(ctx, false)
}

// runCycle is one cycle of f on s: a load phase around the fault, the split-brain checks, then the load's
// read-back and linearizability check, recorded in r even when they fail.
func runCycle(ctx SpecContext, s *scenario, f fault, rng *rand.Rand, r *faultResult, c, size int) {
	before, phases := s.metrics, len(s.phaseStats)
	s.startLoad(ctx)
	sleep(ctx, 3*time.Second)
	f.run(ctx, s, rng)
	views := s.waitHealthy(ctx, size) // one cluster ID, one leader, every member a voter
	Expect(cluster.ClusterIDs(views)).To(HaveLen(1), "split brain after %s, cycle %d", f.name, c)
	sleep(ctx, 2*time.Second)
	r.cycles = c
	defer func() { // record the cycle even when finishLoad's assertions fail
		r.acked += s.metrics.WritesAcked - before.WritesAcked
		r.failed += s.metrics.WritesFailed - before.WritesFailed
		r.lost += s.metrics.Missing - before.Missing
		for _, st := range s.phaseStats[phases:] {
			r.longestStall = max(r.longestStall, st.LongestStall)
		}
		if r.verdict == "-" || s.lastVerdict != linearizability.Linearizable {
			r.verdict = string(s.lastVerdict)
		}
	}()
	s.finishLoad(ctx)
}

func campaignCycles() int {
	cycles, err := strconv.Atoi(os.Getenv("CAMPAIGN_CYCLES"))
	Expect(err).NotTo(HaveOccurred(), "CAMPAIGN_CYCLES")
	return cycles
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
	byName := map[string]fault{}
	var names []string
	for _, f := range all {
		byName[f.name] = f
		names = append(names, f.name)
	}
	var out []fault
	for _, want := range strings.Split(v, ",") {
		f, ok := byName[strings.TrimSpace(want)]
		Expect(ok).To(BeTrue(), "CAMPAIGN_FAULTS names %q, which is not a fault; the faults are: %s", strings.TrimSpace(want), strings.Join(names, ", "))
		out = append(out, f)
	}
	return out
}

// writeCampaignTable writes the results table to campaign-<size>.md in the report dir (after every fault), and
// at the end of the run (final) prints it and adds it to the report.
func writeCampaignTable(size int, seed uint64, cycles int, took time.Duration, results []*faultResult, final bool) {
	host, _ := os.Hostname()
	var b strings.Builder
	fmt.Fprintf(&b, "### %d members — %s, seed %d, %d cycles per fault, %s, machine %s\n\n", size, time.Now().UTC().Format("2006-01-02"), seed, cycles, took.Round(time.Second), host)
	b.WriteString("| fault | cycles | writes acked | failed writes | longest stall | lost writes | linearizability |\n|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %d | %s |\n", r.name, r.cycles, r.acked, r.failed, r.longestStall.Round(time.Millisecond), r.lost, r.verdict)
	}
	if final {
		fmt.Fprint(GinkgoWriter, b.String())
		AddReportEntry("campaign", b.String())
	}
	if cfg.ReportDir != "" {
		_ = os.WriteFile(filepath.Join(cfg.ReportDir, fmt.Sprintf("campaign-%d.md", size)), []byte(b.String()), 0o644)
	}
}
