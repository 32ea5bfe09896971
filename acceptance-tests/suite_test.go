// The etcd-release acceptance suite: deploys etcd clusters through a BOSH director's API (its own client,
// director/), breaks them through the etcd-test-helper job (helper/), drives them with a recording client
// (consumer/) and asserts, at the end of every scenario, that every acknowledged write is readable, that the
// history is linearizable, and that the membership invariants hold (cluster/).
//
// Run it with ACCEPTANCE_CONFIG naming its JSON config (config/): `make acceptance` against the local director,
// `bosh run-errand acceptance-tests` from a deployment of this release, or the compiled binary
// (`go test -c ./acceptance-tests` → acceptance-tests.test). Scenarios carry Ginkgo labels
// (--ginkgo.label-filter=ci for the bounded CI subset).
package acceptance_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"

	"github.com/etcd-release/etcd-release/acceptance-tests/cluster"
	"github.com/etcd-release/etcd-release/acceptance-tests/config"
	"github.com/etcd-release/etcd-release/acceptance-tests/director"
)

var (
	cfg       config.Config
	bosh      *director.Client
	generator cluster.Generator
	pool      *ipPool
	// releaseVersion is the version under test and previousVersion what the upgrade scenario starts from ("" if
	// none is uploaded).
	releaseVersion  string
	previousVersion string
	// consulVersion is the consul release's version for the consul DNS scenarios ("" skips them).
	consulVersion string
)

func TestAcceptance(t *testing.T) {
	if os.Getenv(config.EnvVar) == "" {
		t.Skipf("%s is not set: the acceptance suite needs a director (see `make acceptance`)", config.EnvVar)
	}
	RegisterFailHandler(Fail)
	suiteCfg, reporterCfg := GinkgoConfiguration()
	if reporterCfg.JUnitReport == "" {
		if c, err := config.FromEnv(); err == nil && c.ReportDir != "" {
			reporterCfg.JUnitReport = filepath.Join(c.ReportDir, "junit.xml")
		}
	}
	RunSpecs(t, "etcd-release acceptance", suiteCfg, reporterCfg)
}

var _ = BeforeSuite(func(ctx SpecContext) {
	var err error
	cfg, err = config.FromEnv()
	Expect(err).NotTo(HaveOccurred(), "acceptance config")
	bosh, err = director.New(cfg.Director.URL, []byte(cfg.Director.CACert), cfg.Director.Client, cfg.Director.ClientSecret)
	Expect(err).NotTo(HaveOccurred())
	info, err := bosh.CheckLogin(ctx)
	Expect(err).NotTo(HaveOccurred())
	fmt.Fprintf(GinkgoWriter, "director %s (%s, version %s, cpi %s)\n", info.Name, cfg.Director.URL, info.Version, info.CPI)
	if cfg.ReportDir != "" {
		Expect(os.MkdirAll(cfg.ReportDir, 0o755)).To(Succeed())
	}

	for _, tarball := range []string{cfg.PreviousRelease.Tarball, cfg.Release.Tarball, cfg.Consul.Release.Tarball} {
		if tarball == "" {
			continue
		}
		By("uploading release " + tarball)
		id, err := bosh.UploadRelease(ctx, tarball)
		Expect(err).NotTo(HaveOccurred())
		_, err = bosh.WaitTask(ctx, id, config.Seconds(cfg.Timeouts.TaskInSeconds), GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
	}
	releases, err := bosh.Releases(ctx)
	Expect(err).NotTo(HaveOccurred())
	var versions []string
	releaseVersion, versions = resolveRelease(releases, cfg.Release)
	previousVersion = cfg.PreviousRelease.Version
	if previousVersion == "" {
		for _, v := range versions {
			if compareVersions(v, releaseVersion) < 0 {
				previousVersion = v
			}
		}
	}
	if cfg.Consul.Release.Name != "" {
		consulVersion, _ = resolveRelease(releases, cfg.Consul.Release)
		fmt.Fprintf(GinkgoWriter, "consul DNS scenarios use release %s/%s\n", cfg.Consul.Release.Name, consulVersion)
	}
	fmt.Fprintf(GinkgoWriter, "release %s/%s under test; previous version for the upgrade: %q\n", cfg.Release.Name, releaseVersion, previousVersion)

	stemcells, err := bosh.Stemcells(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(slices.ContainsFunc(stemcells, func(s director.Stemcell) bool { return s.OperatingSystem == cfg.Stemcell.OS })).
		To(BeTrue(), "no stemcell of OS %q is uploaded", cfg.Stemcell.OS)

	generator = cluster.Generator{Config: cfg}
	ips, err := cfg.IPs()
	Expect(err).NotTo(HaveOccurred())
	pool = &ipPool{free: ips}
})

// resolveRelease returns the version of r to deploy ("latest" = the highest uploaded) and every uploaded version
// in order; it fails the suite when r is not uploaded.
func resolveRelease(releases []director.Release, r config.Release) (string, []string) {
	var versions []string
	for _, rel := range releases {
		if rel.Name == r.Name {
			for _, v := range rel.ReleaseVersions {
				versions = append(versions, v.Version)
			}
		}
	}
	Expect(versions).NotTo(BeEmpty(), "release %q is not uploaded (set its tarball in the config to upload it)", r.Name)
	slices.SortFunc(versions, compareVersions)
	v := r.Version
	if v == "latest" {
		v = versions[len(versions)-1]
	}
	Expect(versions).To(ContainElement(v), "release %s/%s is not uploaded", r.Name, v)
	return v, versions
}

// Only scenarios labelled with one of cfg.Scenarios run (the errand also turns them into a label filter).
var _ = BeforeEach(func() {
	if len(cfg.Scenarios) == 0 {
		return
	}
	labels := CurrentSpecReport().Labels()
	for _, s := range cfg.Scenarios {
		if slices.Contains(labels, s) {
			return
		}
	}
	Skip(fmt.Sprintf("labels %v are not in the configured scenarios %v", labels, cfg.Scenarios))
})

// compareVersions orders release versions the way BOSH does for dev and final versions: numeric runs compare as
// numbers, everything else as text ("0+dev.2" < "0+dev.10" < "1").
func compareVersions(a, b string) int {
	as, bs := versionParts(a), versionParts(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		an, aerr := strconv.Atoi(as[i])
		bn, berr := strconv.Atoi(bs[i])
		switch {
		case aerr == nil && berr == nil:
			if an != bn {
				return an - bn
			}
		default:
			if c := strings.Compare(as[i], bs[i]); c != 0 {
				return c
			}
		}
	}
	return len(as) - len(bs)
}

func versionParts(v string) []string {
	var parts []string
	cur := ""
	digit := false
	for _, r := range v {
		d := r >= '0' && r <= '9'
		if cur != "" && d != digit {
			parts = append(parts, cur)
			cur = ""
		}
		cur += string(r)
		digit = d
	}
	if cur != "" {
		parts = append(parts, cur)
	}
	return parts
}

// ipPool hands out static IPs to deployments; a kept (failed) deployment keeps its IPs.
type ipPool struct {
	mu   sync.Mutex
	free []netip.Addr
}

func (p *ipPool) take(n int) []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	Expect(len(p.free)).To(BeNumerically(">=", n), "static_ips: not enough free addresses left (kept deployments hold some)")
	out := append([]netip.Addr(nil), p.free[:n]...)
	p.free = p.free[n:]
	return out
}

func (p *ipPool) give(ips []netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(ips, p.free...)
}

var _ = ReportAfterSuite("summary", func(r Report) {
	table := summaryTable(r)
	fmt.Println()
	fmt.Println(table)
	dir := ""
	if c, err := config.FromEnv(); err == nil {
		dir = c.ReportDir
	}
	if dir == "" {
		return
	}
	_ = os.MkdirAll(dir, 0o755)
	_ = os.WriteFile(filepath.Join(dir, "summary.md"), []byte(table+"\n"), 0o644)
})

func summaryTable(r Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## etcd-release acceptance: %s\n\n", time.Now().UTC().Format(time.RFC3339))
	b.WriteString("| scenario | result | duration | writes acked | failed writes | longest stall | linearizability | notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	specs := slices.Clone(r.SpecReports)
	slices.SortStableFunc(specs, func(a, b SpecReport) int { return a.LeafNodeLocation.LineNumber - b.LeafNodeLocation.LineNumber })
	for _, sr := range specs {
		if sr.LeafNodeType != types.NodeTypeIt {
			continue
		}
		m, ok := metricsOf(sr)
		row := []string{sr.LeafNodeText, sr.State.String(), sr.RunTime.Round(time.Second).String(), "-", "-", "-", "-", ""}
		if ok {
			row[3], row[4] = strconv.Itoa(m.WritesAcked), strconv.Itoa(m.WritesFailed)
			row[5], row[6] = m.LongestStall.Round(time.Millisecond).String(), m.Verdict
		}
		var notes []string
		for _, e := range sr.ReportEntries {
			if e.Name == deleteFailedEntry {
				notes = append(notes, "delete-deployment failed, deleted with force")
			}
		}
		if msg := strings.TrimSpace(sr.Failure.Message); msg != "" {
			msg, _, _ = strings.Cut(msg, "\n")
			if len(msg) > 160 {
				msg = msg[:160] + "…"
			}
			notes = append(notes, msg)
		}
		row[7] = strings.ReplaceAll(strings.Join(notes, "; "), "|", "/")
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}
