package devrelease

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/releasetools/blobs"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// TestReleaseCompilesOffline builds a dev release tarball from this repository (making the blobs if needed),
// reads it back, and compiles the Go packages from it exactly as a BOSH agent does — `bash -x packaging` in the
// package's compile directory with the agent's BOSH_* variables, dependencies installed first — with no network
// at all (a new network namespace when running as root, and GOPROXY=off in the scripts). The binaries must run.
func TestReleaseCompilesOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the release's Go packages (1-2 minutes)")
	}
	repo, err := filepath.Abs("../../..")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	tarball := filepath.Join(t.TempDir(), "etcd-dev.tgz")
	start := time.Now()
	_, m, err := Create(ctx, repo, Options{Blobs: blobs.Options{Logf: t.Logf}, Build: release.BuildOptions{Version: "0+dev.test"}, Out: tarball})
	require.NoError(t, err)
	t.Logf("release %s/%s built in %s", m.Name, m.Version, time.Since(start).Round(time.Millisecond))

	rel, err := release.Read(tarball)
	require.NoError(t, err)
	compiled := []string{"golang-1-linux", "etcd_ctl", "etcd-test-helper", "acceptance-tests"}
	for _, name := range compiled {
		_, ok := rel.Package(name)
		require.True(t, ok, "package %s in the release", name)
	}

	work := t.TempDir()
	packagesDir := filepath.Join(work, "packages") // stands in for /var/vcap/packages
	for _, p := range rel.Packages {               // dependency order, like the director
		if !slices.Contains(compiled, p.Name) {
			continue
		}
		start := time.Now()
		compile(ctx, t, p, filepath.Join(work, "compile", p.Name), filepath.Join(packagesDir, p.Name), packagesDir)
		t.Logf("compiled %s in %s", p.Name, time.Since(start).Round(time.Millisecond))
	}

	out, err := exec.Command(filepath.Join(packagesDir, "etcd_ctl", "bin", "etcd_ctl"), "--help").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "wait-ready")
	out, err = exec.Command(filepath.Join(packagesDir, "etcd-test-helper", "bin", "etcd-test-helper"), "-h").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "-config")
	// The errand's suite binary runs; without ACCEPTANCE_CONFIG the suite says what it needs and skips.
	suite := exec.Command(filepath.Join(packagesDir, "acceptance-tests", "bin", "acceptance-tests.test"), "-test.v", "-test.run", "TestAcceptance")
	suite.Env = []string{"PATH=/usr/bin:/bin"}
	out, err = suite.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "ACCEPTANCE_CONFIG is not set")
	out, err = exec.Command(filepath.Join(packagesDir, "golang-1-linux", "bin", "go"), "version").CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// compile runs a package's packaging script the way the BOSH agent does (cloudfoundry/bosh-agent
// agent/compiler/compiler_unix.go): `bash -x packaging` in the compile directory, with BOSH_COMPILE_TARGET,
// BOSH_INSTALL_TARGET, BOSH_PACKAGE_NAME and BOSH_PACKAGE_VERSION set.
func compile(ctx context.Context, t *testing.T, p *release.Package, compileDir, installDir, packagesDir string) {
	t.Helper()
	require.NoError(t, p.Extract(compileDir))
	require.NoError(t, os.MkdirAll(installDir, 0o755))
	argv := []string{"bash", "-x", "packaging"}
	if os.Geteuid() == 0 {
		if unshare, err := exec.LookPath("unshare"); err == nil {
			argv = append([]string{unshare, "--net"}, argv...) // no network at all, not even loopback
		}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = compileDir
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"BOSH_COMPILE_TARGET=" + compileDir,
		"BOSH_INSTALL_TARGET=" + installDir,
		"BOSH_PACKAGE_NAME=" + p.Name,
		"BOSH_PACKAGE_VERSION=" + p.Version + ".1",
		"BOSH_PACKAGES_DIR=" + packagesDir,
		"HOME=" + filepath.Join(compileDir, "home"), // nothing from the developer's home leaks in
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(string(out), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		t.Fatalf("packaging %s: %v\n%s", p.Name, err, strings.Join(lines, "\n"))
	}
}
