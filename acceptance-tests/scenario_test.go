package acceptance_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/acceptance-tests/cluster"
	"github.com/etcd-release/etcd-release/acceptance-tests/config"
	"github.com/etcd-release/etcd-release/acceptance-tests/consumer"
	"github.com/etcd-release/etcd-release/acceptance-tests/director"
	"github.com/etcd-release/etcd-release/acceptance-tests/helper"
	"github.com/etcd-release/etcd-release/src/testkit/linearizability"
)

// settle is how long the load runs before and after each fault or deploy step.
const settle = 10 * time.Second

// Metrics is what the summary reports of a scenario (summed over its load phases).
type Metrics struct {
	WritesAcked  int           `json:"writes_acked"`
	WritesFailed int           `json:"writes_failed"`
	LongestStall time.Duration `json:"longest_stall"`
	Verdict      string        `json:"verdict"`
	Missing      int           `json:"missing_acked_writes"`
}

const (
	metricsEntry      = "metrics"
	deleteFailedEntry = "delete-failed"
)

func metricsOf(sr SpecReport) (Metrics, bool) {
	var m Metrics
	found := false
	for _, e := range sr.ReportEntries {
		if e.Name != metricsEntry {
			continue
		}
		if v, ok := e.GetRawValue().(Metrics); ok {
			m, found = v, true
		} else if json.Unmarshal([]byte(e.Value.AsJSON), &m) == nil {
			found = true
		}
	}
	return m, found
}

// scenario is one test deployment and what the suite does with it.
type scenario struct {
	name       string
	deployment string
	ips        []netip.Addr
	tls        bool
	certs      *cluster.Certs
	clientTLS  *cluster.ClientTLS
	helper     *helper.Client
	manifest   cluster.Manifest
	deployed   bool
	// ipsReleased is set once the static IPs went back to the pool.
	ipsReleased bool

	cli     *clientv3.Client
	load    *consumer.Consumer
	phases  int
	prefix  string // keys of the current (or last) load phase
	metrics Metrics
	// phaseStats are the finished load phases' statistics and lastVerdict the last one's verdict (set before
	// finishLoad asserts).
	phaseStats  []consumer.Stats
	lastVerdict linearizability.Verdict
	dumps       []string
}

// newScenario reserves addresses, generates TLS material and arranges for the deployment to be deleted when the
// spec ends (kept when it failed and keep_on_failure is set).
func newScenario(name string, tls bool) *scenario {
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	password := cfg.TestHelper.Password
	if password == "" {
		password = hex.EncodeToString(pw)
	}
	s := &scenario{
		name:       name,
		deployment: fmt.Sprintf("%s-%s-%s", cfg.DeploymentPrefix, name, hex.EncodeToString(suffix)),
		ips:        pool.take(5),
		tls:        tls,
	}
	helperCA, helperCert, helperKey, err := cluster.HelperCerts(s.ips)
	Expect(err).NotTo(HaveOccurred())
	s.helper, err = helper.NewTLS(cfg.TestHelper.Port, cfg.TestHelper.Username, password, helperCA)
	Expect(err).NotTo(HaveOccurred())
	s.manifest = cluster.Manifest{Name: s.deployment, ReleaseVersion: releaseVersion, IPs: s.ips, HelperPassword: password,
		HelperCert: string(helperCert), HelperKey: string(helperKey), EtcdProperties: cluster.NoTLSProperties()}
	if tls {
		var err error
		s.certs, err = cluster.NewCerts("1", s.ips)
		Expect(err).NotTo(HaveOccurred())
		s.clientTLS, err = cluster.NewClientTLS(s.certs, s.certs)
		Expect(err).NotTo(HaveOccurred())
		s.manifest.EtcdProperties = cluster.TLSProperties(s.certs, s.certs)
	}
	fmt.Fprintf(GinkgoWriter, "scenario %s: deployment %s, static IPs %v, TLS %v\n", name, s.deployment, s.ips, tls)
	DeferCleanup(s.cleanup, NodeTimeout(config.Seconds(cfg.Timeouts.TaskInSeconds+cfg.Timeouts.ConvergeInSeconds)))
	return s
}

// newConsulScenario is newScenario (TLS on) in consul DNS mode: a consul server instance group, a consul agent
// next to every member, members registered with consul and advertising <member>.etcd.service.cf.internal. It
// skips the spec when the config names no consul release.
func newConsulScenario(name string) *scenario {
	if consulVersion == "" {
		Skip("consul.release is not configured: the consul DNS scenarios need the test consul release " +
			"(go run ./src/releasetools/cmd/consul-test-release; acceptance-tests/run-local uploads it)")
	}
	s := newScenario(name, true)
	s.manifest.Consul = &cluster.Consul{Release: cfg.Consul.Release.Name, Version: consulVersion}
	fmt.Fprintf(GinkgoWriter, "scenario %s: consul DNS mode with release %s/%s\n", name, cfg.Consul.Release.Name, consulVersion)
	return s
}

func (s *scenario) cleanup(ctx SpecContext) {
	failed := CurrentSpecReport().Failed()
	if s.load != nil {
		s.load.Stop()
	}
	if failed && s.deployed {
		s.dumpDiagnostics(ctx)
	}
	if s.cli != nil {
		_ = s.cli.Close()
	}
	if !s.deployed {
		s.releaseIPs()
		return
	}
	if failed && cfg.KeepOnFailure {
		fmt.Fprintf(GinkgoWriter, "keep_on_failure: keeping deployment %s (static IPs %v stay reserved)\n", s.deployment, s.ips)
		return
	}
	if err := s.tryDelete(ctx, false); err != nil {
		// An operator whose delete-deployment fails retries with --force; the failure itself is reported (and
		// asserted by the deploy scenarios, which delete explicitly).
		fmt.Fprintf(GinkgoWriter, "deleting %s failed, retrying with force: %v\n", s.deployment, err)
		AddReportEntry(deleteFailedEntry, err.Error())
		Expect(s.tryDelete(ctx, true)).To(Succeed(), "deleting deployment %s with force", s.deployment)
	}
}

// delete deletes the deployment now and asserts that it worked (with force: ignoring errors, as --force).
func (s *scenario) delete(ctx context.Context, force bool) {
	Expect(s.tryDelete(ctx, force)).To(Succeed(), "bosh delete-deployment %s (force %v)", s.deployment, force)
}

func (s *scenario) tryDelete(ctx context.Context, force bool) error {
	if err := s.deleteKeepingIPs(ctx, force); err != nil {
		return err
	}
	s.releaseIPs()
	return nil
}

// deleteKeepingIPs deletes the deployment (its VMs and disks) and keeps its static IPs reserved, so that it can
// be deployed again with the same manifest and certificates.
func (s *scenario) deleteKeepingIPs(ctx context.Context, force bool) error {
	if !s.deployed {
		return nil
	}
	By(fmt.Sprintf("deleting deployment %s (force %v)", s.deployment, force))
	id, err := bosh.DeleteDeployment(ctx, s.deployment, force)
	if err == nil {
		_, err = bosh.WaitTask(ctx, id, config.Seconds(cfg.Timeouts.TaskInSeconds), GinkgoWriter)
	}
	if err != nil && !director.IsNotFound(err) {
		return err
	}
	s.deployed = false
	return deleteOrphanedDisks(ctx, s.deployment)
}

// deleteOrphanedDisks deletes the disks a deleted deployment left behind. A director keeps the persistent disks of
// a deleted deployment as orphans (for 5 days on a real one); a campaign that deletes and redeploys a 5-member
// cluster 20 times would otherwise leave a hundred of them on the director's disk.
func deleteOrphanedDisks(ctx context.Context, deployment string) error {
	disks, err := bosh.OrphanedDisks(ctx)
	if err != nil {
		return fmt.Errorf("listing the orphaned disks of %s: %w", deployment, err)
	}
	for _, d := range disks {
		if d.Deployment != deployment {
			continue
		}
		id, err := bosh.DeleteOrphanedDisk(ctx, d.CID)
		if err == nil {
			_, err = bosh.WaitTask(ctx, id, config.Seconds(cfg.Timeouts.TaskInSeconds), GinkgoWriter)
		}
		if err != nil && !director.IsNotFound(err) {
			return fmt.Errorf("deleting orphaned disk %s of %s: %w", d.CID, deployment, err)
		}
	}
	return nil
}

func (s *scenario) releaseIPs() {
	if !s.ipsReleased {
		s.ipsReleased = true
		pool.give(s.ips)
	}
}

// deploy deploys s.manifest with instances members and waits for the task.
func (s *scenario) deploy(ctx context.Context, instances int) {
	s.manifest.Instances = instances
	By(fmt.Sprintf("deploying %s: %d instances of %s/%s", s.deployment, instances, cfg.Release.Name, s.manifest.ReleaseVersion))
	m, err := generator.Render(s.manifest)
	Expect(err).NotTo(HaveOccurred())
	s.deployed = true
	id, err := bosh.Deploy(ctx, m)
	Expect(err).NotTo(HaveOccurred())
	start := time.Now()
	_, err = bosh.WaitTask(ctx, id, config.Seconds(cfg.Timeouts.DeployInSeconds), GinkgoWriter)
	Expect(err).NotTo(HaveOccurred(), "deploying %s", s.deployment)
	fmt.Fprintf(GinkgoWriter, "deploy task %d took %s\n", id, time.Since(start).Round(time.Second))
}

// changeState runs a state change of one instance ("etcd/<id>") or the group and waits for it.
func (s *scenario) changeState(ctx context.Context, target, state string) {
	By(fmt.Sprintf("%s: %s → %s", s.deployment, target, state))
	id, err := bosh.ChangeState(ctx, s.deployment, target, state)
	Expect(err).NotTo(HaveOccurred())
	_, err = bosh.WaitTask(ctx, id, config.Seconds(cfg.Timeouts.DeployInSeconds), GinkgoWriter)
	Expect(err).NotTo(HaveOccurred(), "%s of %s", state, target)
}

// boshInstances lists the deployment's etcd instances as the director reports them.
func (s *scenario) boshInstances(ctx context.Context) []director.Instance {
	is, err := bosh.Instances(ctx, s.deployment, config.Seconds(cfg.Timeouts.TaskInSeconds))
	Expect(err).NotTo(HaveOccurred())
	var out []director.Instance
	for _, i := range is {
		if i.JobName == cluster.Group {
			out = append(out, i)
		}
	}
	sort.Slice(out, func(a, b int) bool { return *out[a].Index < *out[b].Index })
	return out
}

// instances are the deployment's etcd instances that have a VM (an IP and a VM CID).
func (s *scenario) instances(ctx context.Context) []cluster.Instance {
	var out []cluster.Instance
	for _, i := range s.boshInstances(ctx) {
		if i.IP() == "" || i.Index == nil || i.VMCID == nil || *i.VMCID == "" {
			continue
		}
		out = append(out, s.clusterInstance(i))
	}
	return out
}

// clusterInstance is what the membership checks know of an etcd instance; in consul DNS mode its member
// advertises <member>.<suffix>.
func (s *scenario) clusterInstance(i director.Instance) cluster.Instance {
	in := cluster.Instance{ID: i.ID, Index: *i.Index, IP: i.IP()}
	if s.manifest.Consul != nil {
		in.DNSName = in.MemberName() + "." + cluster.ConsulDNSSuffix
	}
	return in
}

// expectRestartedSince asserts that the etcd process of every instance started after t (monit's uptime, as the
// director reports it): the deploy really restarted every member.
func (s *scenario) expectRestartedSince(ctx context.Context, t time.Time) {
	for _, i := range s.boshInstances(ctx) {
		found := false
		for _, p := range i.Processes {
			if p.Name != "etcd" {
				continue
			}
			found = true
			Expect(p.Uptime.Secs).NotTo(BeNil(), "uptime of etcd on %s", i.Name())
			Expect(time.Duration(*p.Uptime.Secs)*time.Second).To(BeNumerically("<=", time.Since(t)+time.Second),
				"etcd on %s was not restarted by the deploy", i.Name())
		}
		Expect(found).To(BeTrue(), "no etcd process on %s", i.Name())
	}
}

// monitStop runs `monit stop etcd` on the instance through the helper and waits until etcd has really stopped:
// monit's CLI returns before the stop program has finished, and an operator waits for `monit summary` to show
// the job not monitored before touching its data. Stopped means the director reports the etcd process not
// monitored and the client port refuses connections.
func (s *scenario) monitStop(ctx context.Context, in cluster.Instance) {
	_, err := s.helper.Monit(ctx, in.IP, "etcd", "stop")
	helperDo("monit stop etcd on "+in.IP, err)
	Eventually(ctx, func() error {
		for _, i := range s.boshInstances(ctx) {
			if i.ID != in.ID {
				continue
			}
			for _, p := range i.Processes {
				if p.Name == "etcd" && p.State != "unknown" {
					return fmt.Errorf("etcd on %s is %s", i.Name(), p.State)
				}
			}
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(in.IP, strconv.Itoa(cluster.ClientPort)), time.Second)
		if err == nil {
			conn.Close()
			return fmt.Errorf("%s still accepts client connections", in.IP)
		}
		return nil
	}).WithTimeout(config.Seconds(cfg.Timeouts.ConvergeInSeconds)).WithPolling(time.Second).Should(Succeed(), "monit stop etcd on %s", in.MemberName())
}

func ipsOf(instances []cluster.Instance) []string {
	var out []string
	for _, i := range instances {
		out = append(out, i.IP)
	}
	return out
}

func (s *scenario) tlsConfig() *cluster.ClientTLS { return s.clientTLS }

// waitHealthy waits until every invariant holds for the deployment's instances and returns the last views.
func (s *scenario) waitHealthy(ctx context.Context, want int) []cluster.View {
	By(fmt.Sprintf("waiting until %s is one healthy cluster of %d voting members", s.deployment, want))
	instances := s.instances(ctx)
	Expect(instances).To(HaveLen(want), "instances with a VM")
	var views []cluster.View
	Eventually(ctx, func() error {
		views = cluster.Inspect(ctx, instances, s.clientTLS.Config())
		return cluster.CheckInvariants(views)
	}).WithTimeout(config.Seconds(cfg.Timeouts.ConvergeInSeconds)).WithPolling(time.Second).Should(Succeed())
	return views
}

// startLoad starts the consumer through every instance's endpoint.
func (s *scenario) startLoad(ctx context.Context) {
	eps := cluster.Endpoints(ipsOf(s.instances(ctx)), s.tls)
	if s.cli == nil {
		cli, err := consumer.NewClient(eps, s.clientTLS.Config())
		Expect(err).NotTo(HaveOccurred())
		s.cli = cli
	} else {
		s.cli.SetEndpoints(eps...)
	}
	s.phases++
	prefix := fmt.Sprintf("/acceptance/%s/%d", s.deployment, s.phases)
	s.prefix = prefix
	By(fmt.Sprintf("starting the consumer on %v (keys %s/)", eps, prefix))
	s.load = consumer.Start(s.cli, consumer.Options{Prefix: prefix, WritesPerSecond: cfg.Load.WritesPerSecond,
		RegisterClients: cfg.Load.RegisterClients, RegisterKeys: cfg.Load.RegisterKeys,
		RegisterOpsPerSecond: cfg.Load.RegisterOpsPerSecond, OpTimeout: time.Duration(cfg.Load.OpTimeoutMillis) * time.Millisecond})
}

// setEndpoints points the consumer at the given instances.
func (s *scenario) setEndpoints(ips []string) {
	if s.cli != nil {
		s.cli.SetEndpoints(cluster.Endpoints(ips, s.tls)...)
	}
}

// finishLoad stops the consumer, reads back every acknowledged write, checks the history for linearizability,
// adds the phase to the scenario's metrics and asserts: no acknowledged write missing, history linearizable.
// It returns the phase's statistics.
func (s *scenario) finishLoad(ctx context.Context) consumer.Stats {
	Expect(s.load).NotTo(BeNil(), "no load running")
	By("stopping the consumer, reading back every acknowledged write and checking linearizability")
	s.load.Stop()
	var missing []string
	Eventually(ctx, func() error {
		var err error
		missing, err = s.load.ReadBack(ctx, s.cli)
		return err
	}).WithTimeout(config.Seconds(cfg.Timeouts.ConvergeInSeconds)).WithPolling(2 * time.Second).Should(Succeed())
	stats := s.load.Stats()
	ops := s.load.History().Ops()
	viz := ""
	if cfg.ReportDir != "" {
		viz = filepath.Join(cfg.ReportDir, fmt.Sprintf("%s-phase%d-linearizability.html", s.deployment, s.phases))
	}
	start := time.Now()
	verdict, err := consumer.Check(ops, config.Seconds(cfg.Timeouts.CheckInSeconds), viz)
	Expect(err).NotTo(HaveOccurred())
	fmt.Fprintf(GinkgoWriter, "phase %d: %d ops over %s: %d writes acked, %d failed, %d reads ok, %d failed, longest stall %s (at %s), max write latency %s; %d acknowledged writes missing; %s (checked in %s)\n",
		s.phases, len(ops), stats.Duration.Round(time.Millisecond), stats.WritesAcked, stats.WritesFailed, stats.ReadsOK, stats.ReadsFailed,
		stats.LongestStall.Round(time.Millisecond), stats.LongestStallAt.UTC().Format("15:04:05.000"), stats.MaxLatency.Round(time.Millisecond),
		len(missing), verdict, time.Since(start).Round(time.Millisecond))
	if len(stats.Errors) > 0 {
		fmt.Fprintf(GinkgoWriter, "errors: %s\n", stats.ErrorSummary())
	}
	s.metrics.WritesAcked += stats.WritesAcked
	s.metrics.WritesFailed += stats.WritesFailed
	s.metrics.LongestStall = max(s.metrics.LongestStall, stats.LongestStall)
	s.metrics.Missing += len(missing)
	switch {
	case s.metrics.Verdict == "" || verdict != linearizability.Linearizable:
		s.metrics.Verdict = string(verdict)
	}
	s.phaseStats, s.lastVerdict = append(s.phaseStats, stats), verdict
	AddReportEntry(metricsEntry, s.metrics, ReportEntryVisibilityNever)
	s.saveHistory(ops)
	s.load = nil
	Expect(stats.WritesAcked).To(BeNumerically(">", 0), "the consumer acknowledged no write")
	Expect(missing).To(BeEmpty(), "acknowledged writes missing from the read-back")
	Expect(verdict).To(Equal(linearizability.Linearizable), "history of %d operations (visualization: %s)", len(ops), viz)
	return stats
}

func (s *scenario) saveHistory(ops []consumer.Op) {
	if cfg.ReportDir == "" {
		return
	}
	b, err := json.Marshal(ops)
	if err == nil {
		_ = os.WriteFile(filepath.Join(cfg.ReportDir, fmt.Sprintf("%s-phase%d-history.json", s.deployment, s.phases)), b, 0o644)
	}
}

// assertNoFailedWrites asserts the rolling-update targets: no failed write and, when configured, a bounded stall.
func assertNoFailedWrites(stats consumer.Stats) {
	Expect(stats.WritesFailed).To(BeZero(), "failed writes: %s", stats.ErrorSummary())
	if cfg.Load.MaxStallMillis > 0 {
		Expect(stats.LongestStall).To(BeNumerically("<", time.Duration(cfg.Load.MaxStallMillis)*time.Millisecond),
			"longest write stall (target load.max_stall_ms)")
	}
}

// memberIDs returns the member ID of every instance by member name.
func (s *scenario) memberIDs(ctx context.Context, want int) map[string]string {
	return cluster.MemberIDs(s.waitHealthy(ctx, want))
}

// leader returns the leader's and one follower's instance.
func (s *scenario) leaderAndFollower(ctx context.Context, want int) (cluster.Instance, cluster.Instance) {
	views := s.waitHealthy(ctx, want)
	leader, ok := cluster.LeaderOf(views)
	Expect(ok).To(BeTrue(), "no leader")
	for _, v := range views {
		if v.Instance.IP != leader.IP {
			return leader, v.Instance
		}
	}
	Fail("no follower")
	return leader, leader
}

// helperDo runs a helper operation and fails the spec with its error.
func helperDo(what string, err error) {
	if errors.Is(err, helper.ErrUnsupported) {
		Fail(fmt.Sprintf("%s: %v", what, err))
	}
	Expect(err).NotTo(HaveOccurred(), what)
}

// dumpDiagnostics prints what a failed scenario leaves behind: instances, each member's view, the helper's
// status from each VM, and the consumer's errors.
func (s *scenario) dumpDiagnostics(ctx context.Context) {
	var b strings.Builder
	fmt.Fprintf(&b, "=== diagnostics of %s ===\n", s.deployment)
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	is, err := bosh.Instances(dctx, s.deployment, time.Minute)
	if err != nil {
		fmt.Fprintf(&b, "instances: %v\n", err)
	}
	var cis []cluster.Instance
	for _, i := range is {
		js := "-"
		if i.JobState != nil {
			js = *i.JobState
		}
		var ps []string
		for _, p := range i.Processes {
			ps = append(ps, p.Name+":"+p.State)
		}
		fmt.Fprintf(&b, "instance %s: state %s, job_state %s, ips %v, processes %v\n", i.Name(), i.State, js, i.IPs, ps)
		if i.JobName == cluster.Group && i.IP() != "" && i.Index != nil {
			cis = append(cis, s.clusterInstance(i))
		}
	}
	for _, v := range cluster.Inspect(dctx, cis, s.clientTLS.Config()) {
		fmt.Fprintf(&b, "member view: %s\n", v)
	}
	for _, i := range cis {
		st, err := s.helper.Status(dctx, i.IP)
		if st != nil {
			j, _ := json.Marshal(st)
			fmt.Fprintf(&b, "helper status on %s: %s\n", i.IP, j)
		}
		if err != nil {
			fmt.Fprintf(&b, "helper status on %s: %v\n", i.IP, err)
		}
	}
	if s.load != nil {
		fmt.Fprintf(&b, "consumer errors: %s\n", s.load.Stats().ErrorSummary())
	}
	GinkgoWriter.Print(b.String())
	if cfg.ReportDir != "" {
		_ = os.WriteFile(filepath.Join(cfg.ReportDir, s.deployment+"-diagnostics.txt"), []byte(b.String()), 0o644)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
