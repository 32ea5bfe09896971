package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-release/etcd-release/src/director/api"
	"github.com/etcd-release/etcd-release/src/director/client"
	"github.com/etcd-release/etcd-release/src/director/deployer"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
	"github.com/etcd-release/etcd-release/src/director/vm"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// director is a running local director on a test bridge.
type director struct {
	t         *testing.T
	n         int
	stateDir  string
	recordDir string
	bridge    string
	cidr      netip.Prefix
	store     *state.Store
	dep       *deployer.Deployer
	c         *client.Client
	creds     api.Credentials
	url       string
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the local director's end-to-end tests create network, mount and PID namespaces, veth pairs and a bridge: "+
			"run them as root (uid 0) with monit, ruby, iproute2 and nftables installed; running as uid %d", os.Geteuid())
	}
}

// startDirector serves a director on 127.0.0.1 with its own bridge lde<N> on 10.246.<N>.1/24 and VM prefix lde<N>.
func startDirector(t *testing.T) *director {
	requireRoot(t)
	ctx := context.Background()
	var n int
	var bridge string
	var cidr netip.Prefix
	var err error
	for attempt := 0; ; attempt++ {
		n = 10 + rand.IntN(240)
		bridge = fmt.Sprintf("lde%d", n)
		cidr = netip.MustParsePrefix(fmt.Sprintf("10.246.%d.1/24", n))
		if _, ierr := net.InterfaceByName(bridge); ierr == nil {
			continue
		}
		if err = vm.EnsureBridge(ctx, bridge, cidr.String()); err == nil {
			break
		}
		if attempt > 20 {
			t.Fatalf("creating a test bridge: %v", err)
		}
	}
	d := &director{t: t, n: n, stateDir: t.TempDir(), recordDir: t.TempDir(), bridge: bridge, cidr: cidr}
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	d.store, err = state.Open(d.stateDir)
	require.NoError(t, err)
	runner, err := tasks.NewRunner(d.store, log)
	require.NoError(t, err)
	d.dep, err = deployer.New(deployer.Config{StateDir: d.stateDir, Bridge: bridge, BridgeCIDR: cidr, VMPrefix: bridge,
		MonitInterval: time.Second, MinPollInterval: 200 * time.Millisecond, Log: log}, d.store)
	require.NoError(t, err)
	t.Cleanup(func() {
		runner.Wait()
		d.dep.DestroyAll(context.Background())
		left, _ := vm.List(bridge + "-")
		require.Empty(t, left, "VM namespaces left behind")
		require.NoError(t, vm.DeleteBridge(context.Background(), bridge))
	})
	d.creds, err = api.LoadOrCreateCredentials(d.stateDir, api.Credentials{})
	require.NoError(t, err)
	tlsCfg, err := api.LoadOrCreateTLS(d.stateDir, nil)
	require.NoError(t, err)
	srv := &api.Server{Name: "e2e", UUID: "e2e-uuid", Creds: d.creds, Store: d.store, Tasks: runner, Deployer: d.dep, Log: log.Named("api")}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	require.NoError(t, err)
	hs := &http.Server{Handler: srv.Handler()}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	caPEM, err := os.ReadFile(api.TLSPaths(d.stateDir).CACert)
	require.NoError(t, err)
	d.url = "https://" + ln.Addr().String()
	d.c, err = client.New(d.url, caPEM, d.creds.User, d.creds.Password)
	require.NoError(t, err)
	d.c.PollInterval = 100 * time.Millisecond
	return d
}

func (d *director) ip(last int) string { return fmt.Sprintf("10.246.%d.%d", d.n, last) }

func (d *director) cloudConfig() string { return d.cloudConfigDNS("") }

// cloudConfigDNS is the cloud config with a subnet dns line (e.g. "dns: [10.246.1.5]"), or none.
func (d *director) cloudConfigDNS(dns string) string {
	return fmt.Sprintf(`azs: [{name: z1}, {name: z2}]
vm_types: [{name: default}]
disk_types: [{name: small, disk_size: 64}]
networks:
- name: default
  type: manual
  subnets:
  - range: 10.246.%[1]d.0/24
    gateway: 10.246.%[1]d.1
    azs: [z1, z2]
    reserved: [10.246.%[1]d.2 - 10.246.%[1]d.9]
    static: [10.246.%[1]d.10 - 10.246.%[1]d.19]
    %[2]s
compilation: {workers: 2, az: z1, network: default, vm_type: default}
`, d.n, dns)
}

type manifestOpts struct {
	servers       int
	port          int
	failPostStart bool
	dynamicDrain  bool
}

func (d *director) manifest(o manifestOpts) []byte {
	return []byte(fmt.Sprintf(`name: e2e
releases: [{name: dirtest, version: latest}]
stemcells: [{alias: default, os: ubuntu-jammy, version: latest}]
update: {canaries: 1, max_in_flight: 2, canary_watch_time: 200-10000, update_watch_time: 200-10000, serial: true}
instance_groups:
- name: servers
  instances: %d
  azs: [z1, z2]
  vm_type: default
  stemcell: default
  persistent_disk: 64
  networks: [{name: default}]
  jobs:
  - name: server
    release: dirtest
    properties:
      server: {port: %d, record_dir: %s, fail_post_start: %v, dynamic_drain: %v}
- name: clients
  instances: 1
  azs: [z1]
  vm_type: default
  stemcell: default
  networks: [{name: default, static_ips: [%s]}]
  jobs:
  - name: client
    release: dirtest
- name: smoke
  lifecycle: errand
  instances: 1
  azs: [z1]
  vm_type: default
  stemcell: default
  networks: [{name: default}]
  jobs:
  - name: smoke
    release: dirtest
    properties: {smoke: {exit_code: 7}}
`, o.servers, o.port, d.recordDir, o.failPostStart, o.dynamicDrain, d.ip(10)))
}

func (d *director) wait(id int) (client.Task, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var events bytes.Buffer
	task, err := d.c.Wait(ctx, id, &events)
	d.t.Logf("task %d (%s): %s\n%s", id, task.Description, task.State, events.String())
	return task, err
}

func (d *director) mustTask(id int, err error) client.Task {
	d.t.Helper()
	require.NoError(d.t, err)
	task, err := d.wait(id)
	require.NoError(d.t, err)
	return task
}

// instance is the part of a format=full line the tests read.
type instance struct {
	VMCID     *string  `json:"vm_cid"`
	JobName   string   `json:"job_name"`
	Index     int      `json:"index"`
	ID        string   `json:"id"`
	AZ        *string  `json:"az"`
	IPs       []string `json:"ips"`
	JobState  *string  `json:"job_state"`
	State     string   `json:"state"`
	Bootstrap bool     `json:"bootstrap"`
	DiskCIDs  []string `json:"disk_cids"`
	Processes []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"processes"`
	// Vitals as `bosh vms --vitals` reads them (cloudfoundry/bosh-cli director/vms.go): strings but the uptime.
	Vitals struct {
		CPU    struct{ User, Sys, Wait string } `json:"cpu"`
		Mem    struct{ KB, Percent string }     `json:"mem"`
		Swap   struct{ KB, Percent string }     `json:"swap"`
		Uptime struct {
			Secs *uint64 `json:"secs"`
		} `json:"uptime"`
		Load []string
		Disk map[string]struct {
			Percent      string
			InodePercent string `json:"inode_percent"`
		}
	} `json:"vitals"`
}

func (d *director) instances() map[string]instance {
	id, err := d.c.Instances(context.Background(), "e2e")
	d.mustTask(id, err)
	out, err := d.c.TaskOutput(context.Background(), id, "result")
	require.NoError(d.t, err)
	m := map[string]instance{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var i instance
		require.NoError(d.t, json.Unmarshal(sc.Bytes(), &i), sc.Text())
		m[fmt.Sprintf("%s/%d", i.JobName, i.Index)] = i
	}
	return m
}

// records returns and clears the hook events an instance recorded.
func (d *director) records(id string) []string {
	p := filepath.Join(d.recordDir, id+".log")
	b, _ := os.ReadFile(p)
	_ = os.Remove(p)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func withoutEnv(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "drain-env ") {
			out = append(out, l)
		}
	}
	return out
}

func envLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "drain-env ") {
			out = append(out, strings.TrimPrefix(l, "drain-env "))
		}
	}
	return out
}

func buildRelease(t *testing.T) string {
	out := filepath.Join(t.TempDir(), "dirtest.tgz")
	_, err := release.Build("testdata/release", out, release.BuildOptions{Version: "1+dev.1"})
	require.NoError(t, err)
	return out
}

func (d *director) setup() {
	ctx := context.Background()
	sc := filepath.Join(d.t.TempDir(), "stemcell.tgz")
	require.NoError(d.t, client.WriteLightStemcell(sc, "bosh-local-ubuntu-jammy", "1.0", "ubuntu-jammy"))
	id, err := d.c.UploadStemcell(ctx, sc)
	d.mustTask(id, err)
	id, err = d.c.UploadRelease(ctx, buildRelease(d.t))
	d.mustTask(id, err)
	require.NoError(d.t, d.c.UpdateCloudConfig(ctx, []byte(d.cloudConfig())))
}

func (d *director) vmPath(inst instance, p string) string {
	require.NotNil(d.t, inst.VMCID, "instance %s/%d has no VM", inst.JobName, inst.Index)
	return filepath.Join(d.dep.VMDataDir(*inst.VMCID), strings.TrimPrefix(p, "/var/vcap/"))
}

func TestDeployLifecycle(t *testing.T) {
	d := startDirector(t)
	ctx := context.Background()
	d.setup()

	// A template error fails the deploy with BOSH's nested message before any VM exists.
	bad := bytes.Replace(d.manifest(manifestOpts{servers: 2, port: 1}), []byte("record_dir: "), []byte("record_dirx: "), 1)
	id, err := d.c.Deploy(ctx, bad)
	require.NoError(t, err)
	task, err := d.wait(id)
	require.Error(t, err)
	require.Equal(t, "error", task.State)
	require.Contains(t, task.Result, "Unable to render instance groups for deployment. Errors are:\n"+
		"  - Unable to render jobs for instance group 'servers'. Errors are:\n"+
		"    - Unable to render templates for job 'server'. Errors are:\n"+
		"      - Error filling in template 'ctl.erb' (line 2: Can't find property '[\"server.record_dir\"]')")
	left, _ := vm.List(d.bridge + "-")
	require.Empty(t, left)

	// First deploy: 2 servers over z1/z2 with disks, one client on a static IP, an errand group without VMs.
	start := time.Now()
	task = d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 2, port: 8080})))
	t.Logf("first deploy took %s", time.Since(start))
	require.Equal(t, "/deployments/e2e", task.Result)
	events, err := d.c.TaskOutput(ctx, id+1, "event")
	require.NoError(t, err)
	var stages []string
	for _, line := range bytes.Split(bytes.TrimSpace(events), []byte("\n")) {
		var e map[string]any
		require.NoError(t, json.Unmarshal(line, &e), string(line))
		require.IsType(t, []any{}, e["tags"], string(line))
		if e["state"] == "started" {
			stages = append(stages, fmt.Sprintf("%s|%s", e["stage"], e["task"]))
		}
	}
	joined := strings.Join(stages, "\n")
	require.Contains(t, joined, "Compiling packages|base/")
	require.Less(t, strings.Index(joined, "Compiling packages|base/"), strings.Index(joined, "Compiling packages|tool/"))
	require.Less(t, strings.Index(joined, "Creating missing vms"), strings.Index(joined, "Updating instance"))
	require.Regexp(t, `Updating instance\|servers/[0-9a-f-]+ \(0\) \(canary\)`, joined)
	// The debug output (bosh task --debug) tells the same story in text, with the packages' compile logs.
	debug, err := d.c.TaskOutput(ctx, id+1, "debug")
	require.NoError(t, err)
	require.Regexp(t, `Updating instance: servers/[0-9a-f-]+ \(0\) \(canary\) \(1/\d+\) finished`, string(debug))
	require.Contains(t, string(debug), "compiling package base/")

	insts := d.instances()
	require.Len(t, insts, 3, "servers/0, servers/1, clients/0; the errand group has no VM")
	s0, s1, c0 := insts["servers/0"], insts["servers/1"], insts["clients/0"]
	for _, i := range []instance{s0, s1, c0} {
		require.NotNil(t, i.JobState)
		require.Equal(t, "running", *i.JobState, "%s/%d", i.JobName, i.Index)
		require.Equal(t, "started", i.State)
	}
	require.True(t, s0.Bootstrap)
	require.False(t, s1.Bootstrap)
	require.Equal(t, "z1", *s0.AZ)
	require.Equal(t, "z2", *s1.AZ)
	require.Equal(t, []string{d.ip(10)}, c0.IPs, "static IP")
	require.Equal(t, []string{d.ip(20)}, s0.IPs, "lowest free dynamic IP after gateway, reserved and static")
	require.Len(t, s0.Processes, 1)
	require.Equal(t, "server", s0.Processes[0].Name)
	require.Equal(t, "running", s0.Processes[0].State)
	require.Len(t, s0.DiskCIDs, 1)
	require.Empty(t, c0.DiskCIDs)
	checkVitals(t, s0, true)
	checkVitals(t, c0, false)
	d.checkLogs(s0)
	for _, i := range []instance{s0, s1} {
		require.Equal(t, []string{"pre-start", "start", "post-start"}, d.records(i.ID), "lifecycle order of %s/%d", i.JobName, i.Index)
	}

	// Link content: the client sees the server group's instances with their IPs.
	var link struct {
		Instances []struct {
			Name, ID, AZ, Address string
			Index                 int
			Bootstrap             bool
		}
		Port    int
		Missing string
	}
	raw, err := os.ReadFile(d.vmPath(c0, "/var/vcap/jobs/client/config/link.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &link), string(raw))
	require.Equal(t, 8080, link.Port)
	require.Equal(t, "absent", link.Missing)
	require.Len(t, link.Instances, 2)
	require.Equal(t, "servers", link.Instances[0].Name)
	require.Equal(t, s0.ID, link.Instances[0].ID)
	require.Equal(t, s0.IPs[0], link.Instances[0].Address)
	require.Equal(t, "z1", link.Instances[0].AZ)
	require.True(t, link.Instances[0].Bootstrap)
	require.Equal(t, 1, link.Instances[1].Index)
	require.Equal(t, s1.IPs[0], link.Instances[1].Address)
	// Self-link: each server sees its peers.
	raw, err = os.ReadFile(d.vmPath(s1, "/var/vcap/jobs/server/config/config.json"))
	require.NoError(t, err)
	require.JSONEq(t, fmt.Sprintf(`{"port":8080,"bootstrap":false,"index":1,"peers":[%q,%q]}`, s0.IPs[0], s1.IPs[0]), string(raw))

	// Layout: modes, only directly listed packages, compile environment, hook logs.
	fi, err := os.Stat(d.vmPath(s0, "/var/vcap/jobs/server/bin/ctl"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o750), fi.Mode().Perm())
	fi, err = os.Stat(d.vmPath(s0, "/var/vcap/jobs/server/config/config.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	_, err = os.Stat(d.vmPath(s0, "/var/vcap/packages/tool/bin/tool"))
	require.NoError(t, err)
	_, err = os.Stat(d.vmPath(s0, "/var/vcap/packages/base"))
	require.True(t, os.IsNotExist(err), "base is only a compile-time dependency")
	compileEnv, err := os.ReadFile(d.vmPath(s0, "/var/vcap/packages/tool/compile-env.txt"))
	require.NoError(t, err)
	for _, v := range []string{"BOSH_COMPILE_TARGET=", "BOSH_INSTALL_TARGET=", "BOSH_PACKAGE_NAME=tool", "BOSH_PACKAGE_VERSION=", "BOSH_PACKAGES_DIR="} {
		require.Contains(t, string(compileEnv), v)
	}
	hookLog, err := os.ReadFile(d.vmPath(s0, "/var/vcap/sys/log/server/pre-start.stdout.log"))
	require.NoError(t, err)
	require.Contains(t, string(hookLog), "pre-start output for the log")
	monitFiles, err := filepath.Glob(d.vmPath(s0, "/var/vcap/monit/job/*.monitrc"))
	require.NoError(t, err)
	require.Len(t, monitFiles, 1)
	require.Equal(t, "0000_server.monitrc", filepath.Base(monitFiles[0]))
	marker0, err := os.ReadFile(filepath.Join(d.dep.DiskDir(s0.DiskCIDs[0]), "server", "marker"))
	require.NoError(t, err)

	// A redeploy without changes touches nothing.
	d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 2, port: 8080})))
	require.Empty(t, d.records(s0.ID))

	// A property change: update drain (job_changed hash_changed) with the disk size in both states, then the
	// restart in BOSH's order. Dynamic drain: -1 makes the director wait and re-poll with job_check_status.
	d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 2, port: 9090, dynamicDrain: true})))
	d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 2, port: 9091, dynamicDrain: true})))
	for _, i := range []instance{s0, s1} {
		rec := d.records(i.ID)
		require.Equal(t, []string{"drain job_changed hash_changed", "stop", "pre-start", "start", "post-start",
			"drain job_changed hash_changed", "drain job_check_status hash_unchanged", "stop", "pre-start", "start", "post-start"}, withoutEnv(rec))
		require.Equal(t, []string{
			`job_changed hash_changed state={"persistent_disk":64} next={"persistent_disk":64}`,
			`job_changed hash_changed state={"persistent_disk":64} next={"persistent_disk":64}`,
			`job_check_status hash_unchanged state={"persistent_disk":64} next=unset`,
		}, envLines(rec))
	}
	raw, err = os.ReadFile(d.vmPath(c0, "/var/vcap/jobs/client/config/link.json"))
	require.NoError(t, err)
	require.Contains(t, string(raw), `"port":9091`, "the consumer got the new link property")

	// Recreate: shutdown drain, new VM, same disk with the same content.
	d.mustTask(d.c.ChangeState(ctx, "e2e", "servers/"+s0.ID, "recreate"))
	rec := d.records(s0.ID)
	require.Equal(t, []string{"drain job_shutdown hash_unchanged", "drain job_check_status hash_unchanged", "stop", "pre-start", "start", "post-start"}, withoutEnv(rec))
	require.Empty(t, d.records(s1.ID), "only the selected instance")
	insts = d.instances()
	require.NotEqual(t, *s0.VMCID, *insts["servers/0"].VMCID, "a new VM")
	require.Equal(t, s0.DiskCIDs, insts["servers/0"].DiskCIDs, "the same disk")
	require.Equal(t, s0.IPs, insts["servers/0"].IPs)
	marker, err := os.ReadFile(filepath.Join(d.dep.DiskDir(s0.DiskCIDs[0]), "server", "marker"))
	require.NoError(t, err)
	require.Equal(t, string(marker0), string(marker))
	s0 = insts["servers/0"]

	// stop --hard (detached): VM deleted, disk kept; start: a new VM on the same disk.
	d.mustTask(d.c.ChangeState(ctx, "e2e", "servers/1", "detached"))
	insts = d.instances()
	require.Nil(t, insts["servers/1"].VMCID)
	require.Equal(t, "detached", insts["servers/1"].State)
	_, err = os.Stat(d.dep.DiskDir(s1.DiskCIDs[0]))
	require.NoError(t, err, "the disk survives detached")
	d.mustTask(d.c.ChangeState(ctx, "e2e", "servers/1", "started"))
	insts = d.instances()
	require.Equal(t, "running", *insts["servers/1"].JobState)
	rec = d.records(s1.ID)
	require.Equal(t, []string{"drain job_shutdown hash_unchanged", "drain job_check_status hash_unchanged", "stop", "pre-start", "start", "post-start"}, withoutEnv(rec))
	s1 = insts["servers/1"]

	// A restarted director re-attaches the running VMs.
	restarted, err := deployer.New(deployer.Config{StateDir: d.stateDir, Bridge: d.bridge, BridgeCIDR: d.cidr, VMPrefix: d.bridge}, d.store)
	require.NoError(t, err)
	require.NoError(t, restarted.Recover(ctx))
	infos, err := restarted.Instances(ctx, "e2e", true)
	require.NoError(t, err)
	require.Len(t, infos, 3)
	for _, i := range infos {
		require.Equal(t, "running", *i.JobState, "%s/%d after a director restart", i.JobName, i.Index)
	}

	// Errand on a fresh VM of the errand group: result line with output and exit code; the VM is deleted.
	task = d.mustTask(d.c.RunErrand(ctx, "e2e", "smoke", false))
	result, err := d.c.TaskOutput(ctx, task.ID, "result")
	require.NoError(t, err)
	var er deployer.ErrandResult
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(result), &er), string(result))
	require.Equal(t, 7, er.ExitCode)
	require.Equal(t, "smoke", er.ErrandName)
	require.Equal(t, "smoke", er.Instance.Group)
	require.Equal(t, fmt.Sprintf("servers: %s %s\n", s0.IPs[0], s1.IPs[0]), er.Stdout)
	require.Equal(t, "smoke stderr line\n", er.Stderr)
	require.Len(t, d.instances(), 3, "the errand VM is gone")
	left, _ = vm.List(d.bridge + "-")
	require.Len(t, left, 3)

	// Scale down: the highest index goes, with a shutdown drain that says the disk goes away.
	d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 1, port: 9091})))
	rec = d.records(s1.ID)
	// The installed (old) drain script runs: it is still the dynamic one.
	require.Equal(t, []string{"drain job_shutdown hash_unchanged", "drain job_check_status hash_unchanged", "stop"}, withoutEnv(rec))
	require.Equal(t, []string{
		`job_shutdown hash_unchanged state={"persistent_disk":64} next={"persistent_disk":0}`,
		`job_check_status hash_unchanged state={"persistent_disk":64} next=unset`,
	}, envLines(rec))
	insts = d.instances()
	require.Len(t, insts, 2)
	require.Equal(t, s0.ID, insts["servers/0"].ID)
	d.reattachOrphan(s1)
	insts = d.instances()

	// A new dns in the cloud config recreates the VM (its resolv.conf is written at creation), keeping the disk;
	// deploying again without a change recreates nothing.
	require.NoError(t, d.c.UpdateCloudConfig(ctx, []byte(d.cloudConfigDNS(fmt.Sprintf("dns: [%s]", d.ip(5))))))
	before := insts["servers/0"]
	d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 1, port: 9091})))
	insts = d.instances()
	after := insts["servers/0"]
	require.NotEqual(t, *before.VMCID, *after.VMCID, "a new VM for the new dns")
	require.Equal(t, before.DiskCIDs, after.DiskCIDs, "the disk is kept")
	resolv, err := os.ReadFile(filepath.Join("/etc/netns", *after.VMCID, "resolv.conf"))
	require.NoError(t, err)
	require.Contains(t, string(resolv), "nameserver "+d.ip(5)+"\n")
	d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 1, port: 9091})))
	require.Equal(t, *after.VMCID, *d.instances()["servers/0"].VMCID, "an unchanged dns keeps the VM")

	// A failing post-start fails the task with a message naming the instance and the exit code.
	id, err = d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 1, port: 9092, failPostStart: true}))
	require.NoError(t, err)
	task, err = d.wait(id)
	require.Error(t, err)
	require.Equal(t, "error", task.State)
	require.Contains(t, task.Result, fmt.Sprintf("'servers/%s (0)'", s0.ID))
	require.Contains(t, task.Result, "post-start script of job 'server' failed with exit code 3")
	require.Contains(t, task.Result, "post-start failing on purpose")

	// Delete: every VM goes; the disks are orphaned, and delete-disk deletes them.
	deleteTask := d.mustTask(d.c.DeleteDeployment(ctx, "e2e", false))
	left, _ = vm.List(d.bridge + "-")
	require.Empty(t, left)
	_, err = os.Stat(d.dep.DiskDir(s0.DiskCIDs[0]))
	require.NoError(t, err, "a deleted deployment's disks are orphaned, not deleted")
	orphans, err := d.c.OrphanDisks(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, orphans)
	for _, o := range orphans {
		d.mustTask(d.c.DeleteOrphanDisk(ctx, o.CID))
		_, err = os.Stat(d.dep.DiskDir(o.CID))
		require.True(t, os.IsNotExist(err), "delete-disk deletes %s", o.CID)
	}
	orphans, err = d.c.OrphanDisks(ctx)
	require.NoError(t, err)
	require.Empty(t, orphans)
	resp, _, err := d.c.Do(ctx, "GET", "/deployments/e2e", nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	d.checkEvents(deleteTask.ID, s0)
}

// checkLogs: `bosh logs servers/0` is one tarball of the VM's /var/vcap/sys/log with the job's hook logs;
// `bosh logs --all`-style job,agent over every instance is a tarball of per-instance tarballs, each with job/ and
// agent/ folders; a blob is served once.
func (d *director) checkLogs(s0 instance) {
	t, ctx := d.t, context.Background()
	task := d.mustTask(d.c.FetchLogs(ctx, "e2e", "servers", "0", []string{"job"}))
	blob, err := d.c.Resource(ctx, task.Result)
	require.NoError(t, err)
	files := untar(t, blob)
	require.Contains(t, files["./server/pre-start.stdout.log"], "pre-start output for the log")
	_, err = d.c.Resource(ctx, task.Result)
	require.Error(t, err, "a downloaded blob is gone")

	task = d.mustTask(d.c.FetchLogs(ctx, "e2e", "*", "*", []string{"job", "agent"}))
	blob, err = d.c.Resource(ctx, task.Result)
	require.NoError(t, err)
	outer := untar(t, blob)
	require.Len(t, outer, 3, "servers/0, servers/1, clients/0")
	inner := untar(t, []byte(outer[fmt.Sprintf("servers.0.%s.tgz", s0.ID)]))
	require.Contains(t, inner["./job/server/pre-start.stdout.log"], "pre-start output for the log")
	require.Contains(t, inner, "./agent/vm-init.log")

	id, err := d.c.FetchLogs(ctx, "e2e", "servers", "0", []string{"system"})
	require.NoError(t, err)
	task, err = d.wait(id)
	require.Error(t, err)
	require.Contains(t, task.Result, "use job or agent", "an unsupported type fails naming the supported ones")
}

func untar(t *testing.T, tgz []byte) map[string]string {
	gz, err := gzip.NewReader(bytes.NewReader(tgz))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[h.Name] = string(b)
	}
}

// checkVitals: every figure `bosh vms --vitals` prints is there and a number; the VM's own memory is its
// processes' (monit, the job) and so above zero; only a VM with a persistent disk reports one.
func checkVitals(t *testing.T, i instance, disk bool) {
	v := i.Vitals
	require.Len(t, v.Load, 3, "%s/%d load", i.JobName, i.Index)
	for name, f := range map[string]string{"cpu.user": v.CPU.User, "cpu.sys": v.CPU.Sys, "cpu.wait": v.CPU.Wait, "mem.kb": v.Mem.KB,
		"mem.percent": v.Mem.Percent, "swap.kb": v.Swap.KB, "load.0": v.Load[0], "disk.system": v.Disk["system"].Percent,
		"disk.ephemeral": v.Disk["ephemeral"].Percent, "disk.ephemeral.inodes": v.Disk["ephemeral"].InodePercent} {
		_, err := strconv.ParseFloat(f, 64)
		require.NoError(t, err, "%s/%d vitals %s = %q", i.JobName, i.Index, name, f)
	}
	kb, _ := strconv.Atoi(v.Mem.KB)
	require.Positive(t, kb, "the VM's processes use memory")
	require.NotNil(t, v.Uptime.Secs)
	_, has := v.Disk["persistent"]
	require.Equal(t, disk, has, "persistent disk figures only with a disk")
}

// reattachOrphan is the operator's recovery after a scale-down by mistake: the deleted instance's disk is
// orphaned (listed, data intact), a new instance from scaling up again is stopped --hard, the orphan attached to
// it and the instance started: it runs on the old data. Scaling down again orphans the disk again.
func (d *director) reattachOrphan(gone instance) {
	t, ctx := d.t, context.Background()
	oldMarker, err := os.ReadFile(filepath.Join(d.dep.DiskDir(gone.DiskCIDs[0]), "server", "marker"))
	require.NoError(t, err, "the deleted instance's disk is kept with its data")
	orphans, err := d.c.OrphanDisks(ctx)
	require.NoError(t, err)
	require.Len(t, orphans, 1)
	require.Equal(t, gone.DiskCIDs[0], orphans[0].CID)
	require.Equal(t, "e2e", orphans[0].DeploymentName)
	require.Equal(t, "servers/"+gone.ID, orphans[0].InstanceName)
	require.Equal(t, 64, orphans[0].Size)
	require.Equal(t, "z2", *orphans[0].AZ)

	d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 2, port: 9091})))
	fresh := d.instances()["servers/1"]
	require.NotEqual(t, gone.ID, fresh.ID, "scaling up creates a new instance with a new disk")
	require.NotEqual(t, gone.DiskCIDs, fresh.DiskCIDs)
	d.records(fresh.ID)

	// A running instance refuses the disk: its jobs use the one it has.
	id, err := d.c.AttachDisk(ctx, "e2e", "servers", fresh.ID, gone.DiskCIDs[0])
	require.NoError(t, err)
	task, err := d.wait(id)
	require.Error(t, err)
	require.Contains(t, task.Result, "must be stopped before a disk is attached")

	d.mustTask(d.c.ChangeState(ctx, "e2e", "servers/"+fresh.ID, "detached"))
	d.mustTask(d.c.AttachDisk(ctx, "e2e", "servers", fresh.ID, gone.DiskCIDs[0]))
	orphans, err = d.c.OrphanDisks(ctx)
	require.NoError(t, err)
	require.Len(t, orphans, 1, "the fresh disk it replaced is orphaned in its place, never deleted")
	require.Equal(t, fresh.DiskCIDs[0], orphans[0].CID)
	d.mustTask(d.c.ChangeState(ctx, "e2e", "servers/"+fresh.ID, "started"))
	back := d.instances()["servers/1"]
	require.Equal(t, "running", *back.JobState)
	require.Equal(t, gone.DiskCIDs, back.DiskCIDs, "the instance runs on the re-attached disk")
	v := d.dep.VM(*back.VMCID)
	require.NotNil(t, v)
	marker, _, code, err := v.Exec(ctx, []string{"cat", "/var/vcap/store/server/marker"}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 0, code, "the disk is mounted at /var/vcap/store in the new VM")
	require.Equal(t, string(oldMarker), string(marker), "the old member's data")

	d.mustTask(d.c.DeleteOrphanDisk(ctx, fresh.DiskCIDs[0]))
	d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 1, port: 9091})))
	d.records(fresh.ID)
	orphans, err = d.c.OrphanDisks(ctx)
	require.NoError(t, err)
	require.Len(t, orphans, 1)
	require.Equal(t, gone.DiskCIDs[0], orphans[0].CID, "scaled down again: orphaned again")
}

// checkEvents reads the event log the lifecycle left: deployment creates and updates with their end events,
// instance updates, the errand run, orphaned, attached and deleted disks, the deployment's deletion.
func (d *director) checkEvents(deleteTask int, s0 instance) {
	t, ctx := d.t, context.Background()
	all, err := d.c.Events(ctx, url.Values{"deployment": {"e2e"}})
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, e := range all {
		seen[e.Action+" "+e.ObjectType] = true
		require.NotEmpty(t, e.User, "event %s", e.ID)
	}
	for _, want := range []string{"create deployment", "update deployment", "delete deployment", "create instance", "update instance",
		"recreate instance", "stop instance", "delete instance", "run errand", "orphan disk", "attach disk"} {
		require.True(t, seen[want], "an event %q in %v", want, seen)
	}
	mine, err := d.c.Events(ctx, url.Values{"task": {strconv.Itoa(deleteTask)}, "object_type": {"deployment"}})
	require.NoError(t, err)
	require.Len(t, mine, 2, "begin and end of the delete")
	require.Equal(t, mine[1].ID, mine[0].ParentID)
	require.Equal(t, "delete", mine[0].Action)
	inst, err := d.c.Events(ctx, url.Values{"instance": {"servers/" + s0.ID}, "action": {"recreate"}})
	require.NoError(t, err)
	require.Len(t, inst, 2, "begin and end of the recreate of servers/0")
	page, err := d.c.Events(ctx, url.Values{"before_id": {all[2].ID}, "deployment": {"e2e"}})
	require.NoError(t, err)
	require.Equal(t, all[3].ID, page[0].ID, "before_id pages on")
	disks, err := d.c.Events(ctx, url.Values{"object_type": {"disk"}, "action": {"delete"}})
	require.NoError(t, err)
	require.NotEmpty(t, disks, "delete-disk is recorded")
}
