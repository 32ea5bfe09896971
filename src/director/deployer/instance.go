package deployer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/vm"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"
)

// vmSpec is the VM spec of an instance with the given cid.
func (d *Deployer) vmSpec(inst state.Instance, cid string) (vm.Spec, error) {
	a, err := netip.ParseAddr(inst.IP)
	if err != nil {
		return vm.Spec{}, fmt.Errorf("instance %s has no valid IP %q", instanceName(inst), inst.IP)
	}
	bits, gw := d.cfg.BridgeCIDR.Bits(), d.cfg.BridgeCIDR.Addr()
	if g, err := netip.ParseAddr(inst.Gateway); err == nil && inst.PrefixLen > 0 {
		bits, gw = inst.PrefixLen, g
	}
	spec := vm.Spec{
		ID: cid, Address: netip.PrefixFrom(a, bits), Gateway: gw, OnLink: d.cfg.BridgeCIDR.Masked(), Bridge: d.cfg.Bridge,
		DataDir: filepath.Join(d.cfg.StateDir, "vms", cid), MonitInterval: d.cfg.MonitInterval, Logger: d.log,
		Hide: []string{d.cfg.StateDir},
	}
	if inst.DiskCID != "" {
		spec.DiskDir = d.diskDir(inst.DiskCID)
	}
	return spec, nil
}

func (d *Deployer) diskDir(cid string) string { return filepath.Join(d.cfg.StateDir, "disks", cid) }

// liveVM returns the running VM of an instance, or nil.
func (d *Deployer) liveVM(inst state.Instance) *vm.VM {
	if inst.VMCID == "" {
		return nil
	}
	d.vmMu.Lock()
	defer d.vmMu.Unlock()
	v := d.vms[inst.VMCID]
	if v == nil || !v.Alive() {
		return nil
	}
	return v
}

// createVM creates a fresh VM for the instance (a new cid and an empty ephemeral disk), creating or keeping its
// persistent disk per diskSize. dns are the nameservers of the instance's subnet (the VM's resolv.conf). It writes
// /var/vcap/instance/*.
func (d *Deployer) createVM(ctx context.Context, inst *state.Instance, deployment string, diskSize int, dns []netip.Addr) (*vm.VM, error) {
	if diskSize > 0 && inst.DiskCID == "" {
		inst.DiskCID = "disk-" + randomHex(8)
	}
	cid := d.cfg.VMPrefix + "-" + randomHex(4)
	spec, err := d.vmSpec(*inst, cid)
	if err != nil {
		return nil, err
	}
	spec.DNS = dns
	if vm.CheckBridgeGateway(ctx, d.cfg.Bridge, spec.Gateway) != nil {
		if err := vm.EnsureGateway(ctx, d.cfg.Bridge, netip.PrefixFrom(spec.Gateway, spec.Address.Bits())); err != nil {
			return nil, fmt.Errorf("creating VM for '%s': %w", instanceName(*inst), err)
		}
	}
	_ = os.RemoveAll(spec.DataDir)
	v, err := vm.Create(ctx, spec)
	if err != nil {
		_ = os.RemoveAll(spec.DataDir)
		return nil, fmt.Errorf("creating VM for '%s': %w", instanceName(*inst), err)
	}
	d.vmMu.Lock()
	d.vms[cid] = v
	d.vmMu.Unlock()
	inst.VMCID, inst.VMCreatedAt, inst.Applied = cid, time.Now().UTC(), nil
	for name, content := range map[string]string{"id": inst.ID, "az": inst.AZ, "name": inst.Group, "deployment": deployment} {
		p, _ := v.HostPath("/var/vcap/instance/" + name)
		_ = os.WriteFile(p, []byte(content), 0o644)
	}
	return v, nil
}

// deleteVM destroys the instance's VM (if any, also one the director lost track of) and its ephemeral disk.
func (d *Deployer) deleteVM(ctx context.Context, inst *state.Instance) error {
	if inst.VMCID == "" {
		return nil
	}
	d.vmMu.Lock()
	v := d.vms[inst.VMCID]
	delete(d.vms, inst.VMCID)
	d.vmMu.Unlock()
	var err error
	if v != nil {
		err = v.Destroy(ctx)
	} else {
		_, err = vm.Reap(ctx, inst.VMCID, d.log)
	}
	if err != nil {
		return fmt.Errorf("deleting VM %s of '%s': %w", inst.VMCID, instanceName(*inst), err)
	}
	_ = os.RemoveAll(filepath.Join(d.cfg.StateDir, "vms", inst.VMCID))
	inst.VMCID, inst.VMCreatedAt, inst.Applied = "", time.Time{}, nil
	return nil
}

// hookResult is one hook script's outcome on one job.
type hookResult struct {
	job      string
	exitCode int
	stdout   string
	stderr   string
}

// runHook runs bin/<hook> of every job that has one, in parallel, appending the output to
// /var/vcap/sys/log/<job>/<hook>.std{out,err}.log. A non-zero exit fails with the job and the output's tail.
func (d *Deployer) runHook(ctx context.Context, v *vm.VM, instName string, jobs []string, hook string, env []string) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, job := range jobs {
		script := fmt.Sprintf("/var/vcap/jobs/%s/bin/%s", job, hook)
		hp, err := v.HostPath(script)
		if err != nil {
			return err
		}
		if _, err := os.Stat(hp); err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stdout, stderr, code, err := v.Exec(ctx, []string{script}, env, nil)
			d.appendLog(v, job, hook, stdout, stderr)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("'%s': running %s of job '%s': %w", instName, hook, job, err))
			case code != 0:
				errs = append(errs, fmt.Errorf("'%s': %s script of job '%s' failed with exit code %d%s", instName, hook, job, code, outputTail(stdout, stderr)))
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func outputTail(stdout, stderr []byte) string {
	var parts []string
	if s := strings.TrimSpace(lastLines(string(stdout), 10)); s != "" {
		parts = append(parts, "stdout: "+s)
	}
	if s := strings.TrimSpace(lastLines(string(stderr), 10)); s != "" {
		parts = append(parts, "stderr: "+s)
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

func (d *Deployer) appendLog(v *vm.VM, job, hook string, stdout, stderr []byte) {
	dir, err := v.HostPath("/var/vcap/data/sys/log/" + job)
	if err != nil {
		return
	}
	_ = os.MkdirAll(dir, 0o770)
	for suffix, b := range map[string][]byte{"stdout": stdout, "stderr": stderr} {
		f, err := os.OpenFile(filepath.Join(dir, hook+"."+suffix+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			continue
		}
		_, _ = f.Write(b)
		f.Close()
	}
}

// drainArgs describes one drain: the arguments and the persistent disk sizes for BOSH_JOB_STATE/NEXT_STATE.
type drainArgs struct {
	args     []string
	diskNow  int
	diskNext int
}

// drain unmonitors every service and runs each job's bin/drain in parallel, as the agent does
// (cloudfoundry/bosh-agent agent/script/drain/*): stdout must be
// an integer; N >= 0 waits N seconds; N < 0 waits |N| seconds and runs it again with job_check_status
// hash_unchanged (without BOSH_JOB_NEXT_STATE) until it prints N >= 0.
func (d *Deployer) drain(ctx context.Context, v *vm.VM, instName string, jobs []string, da drainArgs) error {
	procs, err := v.Monit().Processes(ctx)
	if err != nil {
		return fmt.Errorf("'%s': before drain: %w", instName, err)
	}
	var monitored []string
	for _, p := range procs {
		if p.Monitor != 0 {
			monitored = append(monitored, p.Name)
		}
	}
	d.remonitorMu.Lock()
	d.remonitor[v.ID()] = monitored
	d.remonitorMu.Unlock()
	if err := v.Monit().UnmonitorAll(ctx); err != nil {
		return fmt.Errorf("'%s': unmonitoring services before drain: %w", instName, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, job := range jobs {
		script := fmt.Sprintf("/var/vcap/jobs/%s/bin/drain", job)
		hp, err := v.HostPath(script)
		if err != nil {
			return err
		}
		if _, err := os.Stat(hp); err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.drainJob(ctx, v, instName, job, script, da); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (d *Deployer) drainJob(ctx context.Context, v *vm.VM, instName, job, script string, da drainArgs) error {
	args := da.args
	env := []string{
		fmt.Sprintf(`BOSH_JOB_STATE={"persistent_disk":%d}`, da.diskNow),
		fmt.Sprintf(`BOSH_JOB_NEXT_STATE={"persistent_disk":%d}`, da.diskNext),
	}
	for {
		stdout, stderr, code, err := v.Exec(ctx, append([]string{script}, args...), env, nil)
		if err != nil {
			return fmt.Errorf("'%s': running drain of job '%s': %w", instName, job, err)
		}
		out := strings.TrimSpace(string(stdout))
		n, perr := strconv.Atoi(out)
		if perr != nil {
			return fmt.Errorf("'%s': drain script of job '%s' (exit code %d) printed %q, not an integer%s", instName, job, code, out, outputTail(nil, stderr))
		}
		d.log.Info("drain", zap.String("instance", instName), zap.String("job", job), zap.Strings("args", args), zap.Int("result", n),
			zap.String("reason", "drain script answered"))
		wait := time.Duration(n) * time.Second
		if n < 0 {
			wait = -wait
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return err
		}
		if n >= 0 {
			return nil
		}
		args = []string{"job_check_status", "hash_unchanged"}
		env = env[:1]
	}
}

// stop runs agent `stop`: monit stop of every vcap service, waiting until all are unmonitored (5 minutes).
//
// The services drain unmonitored are monitored again first: the agent's `monit stop` runs the stop program of an
// unmonitored service on a stemcell's monit, but monit 5.33 (Debian) answers it "done" without running it, which
// would leave the old process running through the update.
func (d *Deployer) stop(ctx context.Context, v *vm.VM, instName string) error {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	d.remonitorMu.Lock()
	services := d.remonitor[v.ID()]
	delete(d.remonitor, v.ID())
	d.remonitorMu.Unlock()
	for _, svc := range services {
		_, stderr, code, err := v.Exec(sctx, []string{vm.MonitWrapper, "monitor", svc}, nil, nil)
		if err != nil || code != 0 {
			return fmt.Errorf("'%s': monitoring %s again before stop: %v %s", instName, svc, err, strings.TrimSpace(string(stderr)))
		}
	}
	// The monitor action is queued; a stop sent before it is done would replace it and find the service still
	// unmonitored.
	if len(services) > 0 {
		err := retry.Poll(sctx, retry.Options{Interval: 50 * time.Millisecond}, func(ctx context.Context) error {
			procs, err := v.Monit().Processes(ctx)
			if err != nil {
				return retry.Stop(fmt.Errorf("'%s': %w", instName, err))
			}
			for _, p := range procs {
				if slices.Contains(services, p.Name) && (p.Monitor == 0 || p.PendingAction != 0) {
					return fmt.Errorf("%s is not monitored yet", p.Name)
				}
			}
			return nil
		})
		var gaveUp *retry.GaveUp
		if errors.As(err, &gaveUp) {
			return fmt.Errorf("'%s': waiting for monit to monitor %v again: %w", instName, services, gaveUp.Cause)
		} else if err != nil {
			return err
		}
	}
	if err := v.Monit().StopAll(sctx); err != nil {
		return fmt.Errorf("'%s': stopping jobs: %w", instName, err)
	}
	return nil
}

// apply installs the instance's jobs and packages into the VM's /var/vcap (the agent's agent/applier/* and
// jobs/owner_fix.go in cloudfoundry/bosh-agent) and writes the job monit files, then reloads monit. Rendered files
// get mode 0750 under bin/, 0640 otherwise; directories 0750.
func (d *Deployer) apply(ctx context.Context, v *vm.VM, ip *instancePlan, pkgs map[string]*compiledPackage) error {
	root := v.Spec().DataDir
	monitDir := filepath.Join(root, "monit", "job")
	old, _ := os.ReadDir(monitDir)
	for _, e := range old {
		_ = os.Remove(filepath.Join(monitDir, e.Name()))
	}
	if err := installPackages(ctx, root, directPackages(ip, pkgs)); err != nil {
		return err
	}
	wantJobs := map[string]bool{}
	for i, jp := range ip.group.jobs {
		wantJobs[jp.job.Name] = true
		// ConfigureJobs numbers the files in reverse: the last job gets 0000.
		monitName := fmt.Sprintf("%04d_%s.monitrc", len(ip.group.jobs)-1-i, jp.job.Name)
		if err := installJob(root, jp, ip.rendered[jp.job.Name], shortHash(jp.job.Version+ip.hash), filepath.Join(monitDir, monitName)); err != nil {
			return err
		}
	}
	jobsDir := filepath.Join(root, "jobs")
	if entries, err := os.ReadDir(jobsDir); err == nil {
		for _, e := range entries {
			if !wantJobs[e.Name()] {
				_ = os.Remove(filepath.Join(jobsDir, e.Name()))
				_ = os.RemoveAll(filepath.Join(root, "data", "jobs", e.Name()))
			}
		}
	}
	writeApplySpec(root, ip)
	var mk []string
	for _, jp := range ip.group.jobs {
		mk = append(mk, "/var/vcap/sys/run/"+jp.job.Name)
	}
	if len(mk) > 0 {
		if _, stderr, code, err := v.Exec(ctx, append([]string{"mkdir", "-p"}, mk...), nil, nil); err != nil || code != 0 {
			return fmt.Errorf("creating /var/vcap/sys/run dirs: %v %s", err, stderr)
		}
	}
	if err := v.Monit().Reload(ctx); err != nil {
		return fmt.Errorf("'%s': %w", ip.name(), err)
	}
	return nil
}

// directPackages are the compiled packages the instance's jobs list directly: an instance gets only those, not
// their compile-time dependencies (the director's instance_group.rb#package_spec).
func directPackages(ip *instancePlan, pkgs map[string]*compiledPackage) map[string]*compiledPackage {
	want := map[string]*compiledPackage{}
	for _, jp := range ip.group.jobs {
		for _, name := range jp.job.Spec.Packages {
			if cp := pkgs[jp.rel.Manifest.Name+"/"+name]; cp != nil {
				want[name] = cp
			}
		}
	}
	return want
}

// installPackages makes /var/vcap/packages hold exactly want: packages no longer wanted are removed, the others
// copied into data/packages/<name>/<digest> (once) and linked.
func installPackages(ctx context.Context, root string, want map[string]*compiledPackage) error {
	pkgLinks := filepath.Join(root, "packages")
	if entries, err := os.ReadDir(pkgLinks); err == nil {
		for _, e := range entries {
			if want[e.Name()] == nil {
				_ = os.Remove(filepath.Join(pkgLinks, e.Name()))
				_ = os.RemoveAll(filepath.Join(root, "data", "packages", e.Name()))
			}
		}
	}
	for name, cp := range want {
		digest := cacheKeyDigest(cp)
		dest := filepath.Join(root, "data", "packages", name, digest)
		if _, err := os.Stat(dest); err != nil {
			if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
				return err
			}
			if err := copyTree(ctx, cp.dir, dest); err != nil {
				return fmt.Errorf("installing package '%s': %w", name, err)
			}
		}
		if err := replaceSymlink(filepath.Join("..", "data", "packages", name, digest), filepath.Join(pkgLinks, name)); err != nil {
			return err
		}
	}
	return nil
}

// writeJobFiles writes rendered files at their destinations under dir through an os.Root, so that no
// destination (job.MF's templates, checked when the release is read) lands outside the job's directory.
func writeJobFiles(dir, job string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	for rel, content := range files {
		mode := os.FileMode(0o640)
		if strings.HasPrefix(rel, "bin/") {
			mode = 0o750
		}
		p := filepath.FromSlash(rel)
		if err := r.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return fmt.Errorf("job %s: template destination %s: %w", job, rel, err)
		}
		if err := r.WriteFile(p, content, mode); err != nil {
			return fmt.Errorf("job %s: template destination %s: %w", job, rel, err)
		}
		if err := r.Chmod(p, mode); err != nil {
			return err
		}
	}
	return nil
}

// installJob writes one job's rendered files into data/jobs/<job>/<digest>, links /var/vcap/jobs/<job> to it,
// prunes the job's older versions, makes its log and data directories and writes its monit file to monitPath.
func installJob(root string, jp *jobPlan, files map[string][]byte, digest, monitPath string) error {
	name := jp.job.Name
	dest := filepath.Join(root, "data", "jobs", name, digest)
	_ = os.RemoveAll(dest)
	if err := writeJobFiles(dest, name, files); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dest, "packages"), 0o750); err != nil {
		return err
	}
	for _, pkg := range jp.job.Spec.Packages {
		_ = os.Symlink("/var/vcap/packages/"+pkg, filepath.Join(dest, "packages", pkg))
	}
	if err := replaceSymlink(filepath.Join("..", "data", "jobs", name, digest), filepath.Join(root, "jobs", name)); err != nil {
		return err
	}
	if entries, err := os.ReadDir(filepath.Join(root, "data", "jobs", name)); err == nil {
		for _, e := range entries {
			if e.Name() != digest {
				_ = os.RemoveAll(filepath.Join(root, "data", "jobs", name, e.Name()))
			}
		}
	}
	for _, dir := range []string{filepath.Join(root, "data", "sys", "log", name), filepath.Join(root, "data", name)} {
		if err := os.MkdirAll(dir, 0o770); err != nil {
			return err
		}
	}
	return os.WriteFile(monitPath, files["monit"], 0o600)
}

// writeApplySpec writes bosh/spec.json, the agent's record of the current apply spec.
func writeApplySpec(root string, ip *instancePlan) {
	spec, _ := json.MarshalIndent(map[string]any{
		"deployment": ip.group.dep, "name": ip.inst.Group, "index": ip.inst.Index, "id": ip.inst.ID, "az": ip.inst.AZ,
		"bootstrap": ip.inst.Bootstrap, "address": ip.inst.IP, "configuration_hash": ip.hash, "persistent_disk": ip.group.diskSize,
		"job": map[string]any{"name": ip.inst.Group}, "jobs": ip.jobNames(),
	}, "", "  ")
	_ = os.WriteFile(filepath.Join(root, "bosh", "spec.json"), spec, 0o600)
}

func (ip *instancePlan) jobNames() []string {
	var out []string
	for _, jp := range ip.group.jobs {
		out = append(out, jp.job.Name)
	}
	return out
}

func cacheKeyDigest(cp *compiledPackage) string { return filepath.Base(cp.dir) }

func shortHash(s string) string {
	sum := sha1Hex(s)
	return sum[:16]
}

func replaceSymlink(target, link string) error {
	tmp := link + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if fi, err := os.Lstat(link); err == nil && fi.IsDir() && fi.Mode()&os.ModeSymlink == 0 {
		_ = os.RemoveAll(link)
	}
	return os.Rename(tmp, link)
}

// copyTree copies a compiled package into a VM's data dir, with hard links where possible (same file system),
// so installing a large package costs nothing.
func copyTree(ctx context.Context, src, dst string) error {
	tmp := dst + ".tmp"
	_ = os.RemoveAll(tmp)
	out, err := exec.CommandContext(ctx, "cp", "-al", src+"/.", tmp).CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return err
		}
		if out2, err2 := exec.CommandContext(ctx, "cp", "-a", src+"/.", tmp).CombinedOutput(); err2 != nil {
			return fmt.Errorf("cp: %v: %s %s", err2, out, out2)
		}
	}
	return os.Rename(tmp, dst)
}

// waitRunning is the director's wait after start (cloudfoundry/bosh src/bosh-director/lib/bosh/director/
// instance_updater/*): sleep the watch time's min, then poll job_state every clamp((max-min)/9, 1 s, 15 s) until
// running or about max has elapsed, timing from when start returned.
func (d *Deployer) waitRunning(ctx context.Context, v *vm.VM, instName string, minMS, maxMS int) error {
	start := time.Now()
	_ = retry.Sleep(ctx, time.Duration(minMS)*time.Millisecond) // a cancelled ctx is checked after the first poll
	interval := time.Duration(maxMS-minMS) * time.Millisecond / 9
	interval = min(max(interval, d.cfg.MinPollInterval), 15*time.Second)
	deadline := start.Add(time.Duration(maxMS) * time.Millisecond)
	for {
		st, procs := v.Monit().JobState(ctx)
		if st == vm.JobRunning {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().Add(interval).After(deadline) {
			var failed []string
			for _, p := range procs {
				if p.State != vm.ProcessRunning {
					failed = append(failed, p.Name)
				}
			}
			slices.Sort(failed)
			return fmt.Errorf("'%s' is not running after update. Review logs for failed jobs: %s", instName, strings.Join(failed, ", "))
		}
		_ = retry.Sleep(ctx, interval)
	}
}
