package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/releasetools/erb"
	"github.com/etcd-release/etcd-release/src/testkit/loadgen"
)

// bbrVM is one member laid out like a BOSH VM for the bbr-etcd scripts: the scripts' /var/vcap paths point
// into the member's dir, etcd_ctl runs under a real monit daemon with the etcd job's own wrapper script, and
// /var/vcap/bosh/bin/monit is a wrapper for that daemon's CLI (as on a stemcell and the local director).
type bbrVM struct {
	index   int
	root    string // stands in for /var/vcap
	monitrc string
}

const bbrArtifact = "bbr-etcd-etcd-backup-one-restore-all" // <job>-<release>-backup-one-restore-all

func localize(script, root, etcdCtl string) string {
	script = strings.ReplaceAll(script, "/var/vcap/packages/etcd_ctl/bin/etcd_ctl", etcdCtl)
	return strings.ReplaceAll(script, "/var/vcap/", root+"/")
}

func writeExec(t *testing.T, path, content string) {
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o755))
}

// newBBRVM renders the etcd job's monit wrapper and the bbr-etcd job's scripts (real ERB) for member i and
// starts a monit daemon that runs etcd_ctl.
func newBBRVM(t *testing.T, c *cluster, r *erb.Renderer, i int) *bbrVM {
	vm := &bbrVM{index: i, root: c.layout.MemberDir(i)}
	repoRoot, err := filepath.Abs("../../..")
	require.NoError(t, err)
	cfgDir := filepath.Join(vm.root, "jobs", "etcd", "config")
	require.NoError(t, os.MkdirAll(cfgDir, 0o755))
	require.NoError(t, os.Symlink(c.layout.ConfigPath(i), filepath.Join(cfgDir, "etcd_ctl.json")))
	wrapper, err := os.ReadFile(filepath.Join(repoRoot, "jobs", "etcd", "templates", "etcd_ctl_wrapper.erb"))
	require.NoError(t, err)
	writeExec(t, filepath.Join(vm.root, "jobs", "etcd", "bin", "etcd_ctl"), localize(string(wrapper), vm.root, c.bin))

	addr := c.layout.Address(i)
	files, err := r.RenderDir(context.Background(), filepath.Join(repoRoot, "jobs", "bbr-etcd"), erb.Context{
		Deployment: c.layout.Deployment, InstanceGroup: "etcd", Index: i, ID: fmt.Sprintf("id-%d", i), Bootstrap: i == 0,
		Address: addr, IP: addr, Release: erb.ReleaseRef{Name: "etcd", Version: "0+dev.1"},
		Properties: map[string]any{"bbr": map[string]any{"backup_one_restore_all": true}},
	})
	require.NoError(t, err)
	for name, content := range files {
		if strings.HasPrefix(name, "bin/") {
			writeExec(t, filepath.Join(vm.root, "jobs", "bbr-etcd", name), localize(string(content), vm.root, c.bin))
		}
	}

	mdir := filepath.Join(vm.root, "monit")
	require.NoError(t, os.MkdirAll(mdir, 0o755))
	vm.monitrc = filepath.Join(mdir, "monitrc")
	rc := fmt.Sprintf(`set daemon 1
set logfile %[1]s/monit.log
set pidfile %[1]s/monit.pid
set idfile %[1]s/monit.id
set statefile %[1]s/monit.state
set httpd port 2812 and use address %[2]s
    allow admin:test-only
check process etcd with pidfile %[3]s/etcd.pid
  start program "%[4]s/jobs/etcd/bin/etcd_ctl start"
  stop program "%[4]s/jobs/etcd/bin/etcd_ctl stop" with timeout 60 seconds
`, mdir, addr, c.layout.Paths(i).RunDir, vm.root)
	require.NoError(t, os.WriteFile(vm.monitrc, []byte(rc), 0o600))
	writeExec(t, filepath.Join(vm.root, "bosh", "bin", "monit"), "#!/bin/sh\nexec monit -c "+vm.monitrc+" \"$@\"\n")
	out, err := exec.Command("monit", "-c", vm.monitrc).CombinedOutput()
	require.NoError(t, err, "starting monit: %s", out)
	t.Cleanup(func() {
		_ = exec.Command("monit", "-c", vm.monitrc, "quit").Run()
		time.Sleep(time.Second)
		if b, err := os.ReadFile(filepath.Join(c.layout.Paths(i).RunDir, "etcd.pid")); err == nil {
			_ = exec.Command("kill", "-KILL", strings.TrimSpace(string(b))).Run()
		}
	})
	return vm
}

// script runs one bbr script as bbr does (bosh-backup-and-restore's instance/job.go): backup and restore get
// BBR_ARTIFACT_DIRECTORY and ARTIFACT_DIRECTORY, with a trailing slash; the other scripts get no artifact.
func (vm *bbrVM) script(t *testing.T, name, artifact string) string {
	cmd := exec.Command(filepath.Join(vm.root, "jobs", "bbr-etcd", "bin", "bbr", name))
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "BBR_VERSION=1.18.0"}
	if artifact != "" {
		cmd.Env = append(cmd.Env, "BBR_ARTIFACT_DIRECTORY="+artifact+"/", "ARTIFACT_DIRECTORY="+artifact+"/")
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "etcd/%d bin/bbr/%s: %s", vm.index, name, out)
	return string(out)
}

func (vm *bbrVM) artifactDir(name string) string {
	return filepath.Join(vm.root, "store", "bbr-backup", name)
}

func copyDir(t *testing.T, from, to string) {
	require.NoError(t, os.MkdirAll(to, 0o700))
	entries, err := os.ReadDir(from)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o600))
	}
}

// TestBBRBackupAndRestoreScriptsInBBROrder runs the bbr-etcd job's rendered scripts exactly in bbr's order
// against three real etcd_ctl members supervised by real monit daemons: backup (metadata, backup on every
// instance, the bootstrap instance's named artifact drained), then restore (metadata, the artifact copied to
// every instance, pre-restore-lock on all, restore on all, post-restore-unlock on all). Writes acknowledged
// before the backup are back, a write after it is not, the cluster is new, and every script may run twice.
func TestBBRBackupAndRestoreScriptsInBBROrder(t *testing.T) {
	c := newCluster(t, 3, withTLS(true, true))
	r, err := erb.NewRenderer("")
	require.NoError(t, err)
	var vms []*bbrVM
	for i := 0; i < 3; i++ {
		vms = append(vms, newBBRVM(t, c, r, i))
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 3*time.Minute)
	}
	oldCluster := c.status(0).ClusterID
	// Members run under monit, not c.procs: name them for every client.
	w := loadgen.Start(c.client(0, 1, 2), "/bbr", 50, 5*time.Second)
	time.Sleep(3 * time.Second)
	res := w.Stop()
	require.Zero(t, res.Failed)

	// bbr deployment backup.
	for _, vm := range vms {
		require.Equal(t, "---\n", vm.script(t, "metadata", ""))
	}
	local := t.TempDir()
	for _, vm := range vms {
		name := "bbr-etcd"
		if vm.index == 0 {
			name = bbrArtifact
		}
		require.NoError(t, os.MkdirAll(vm.artifactDir(name), 0o700))
		out := vm.script(t, "backup", vm.artifactDir(name))
		require.NotContains(t, out, "PRIVATE KEY")
		if vm.index == 0 {
			vm.script(t, "backup", vm.artifactDir(name)) // idempotent: a second run adds a newer snapshot
			copyDir(t, vm.artifactDir(name), filepath.Join(local, name))
		} else {
			entries, _ := os.ReadDir(vm.artifactDir(name))
			require.Empty(t, entries, "only the bootstrap instance backs up")
		}
		require.NoError(t, os.RemoveAll(filepath.Join(vm.root, "store", "bbr-backup")))
	}
	snaps, _ := filepath.Glob(filepath.Join(local, bbrArtifact, "etcd-snapshot-*.json"))
	require.Len(t, snaps, 2)
	c.put(0, "/bbr-after-backup", "gone after the restore")

	// bbr deployment restore.
	for _, vm := range vms {
		vm.script(t, "metadata", "")
		copyDir(t, filepath.Join(local, bbrArtifact), vm.artifactDir(bbrArtifact))
	}
	for _, vm := range vms {
		require.Contains(t, vm.script(t, "pre-restore-lock", ""), "stopped for the restore")
	}
	vms[1].script(t, "pre-restore-lock", "") // idempotent
	for _, vm := range vms {
		require.Contains(t, vm.script(t, "restore", vm.artifactDir(bbrArtifact)), "restored revision")
	}
	vms[2].script(t, "restore", vms[2].artifactDir(bbrArtifact)) // idempotent: the same snapshot again
	for _, vm := range vms {
		vm.script(t, "post-restore-unlock", "")
	}
	vms[0].script(t, "post-restore-unlock", "") // idempotent
	for _, vm := range vms {
		require.NoError(t, os.RemoveAll(filepath.Join(vm.root, "store", "bbr-backup")))
	}

	for i := 0; i < 3; i++ {
		c.waitReady(i, 3*time.Minute)
	}
	var clusterID string
	for i := 0; i < 3; i++ {
		st := c.status(i)
		require.True(t, st.Healthy, "%+v", st)
		require.Len(t, st.Members, 3)
		for _, m := range st.Members {
			require.False(t, m.Learner)
		}
		if clusterID == "" {
			clusterID = st.ClusterID
		}
		require.Equal(t, clusterID, st.ClusterID, "one cluster")
	}
	require.NotEqual(t, oldCluster, clusterID, "the restore made a new cluster")
	missing, err := loadgen.Missing(context.Background(), c.client(0, 1, 2), "/bbr", res.Acked)
	require.NoError(t, err)
	require.Empty(t, missing, "writes acknowledged before the backup")
	require.Equal(t, "", c.get(1, "/bbr-after-backup"), "the restore brings back the backup's keyspace")
}
