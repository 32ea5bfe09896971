package deployer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/director/manifest"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
	"github.com/etcd-release/etcd-release/src/director/vm"
)

func yamlUnmarshal(b []byte, v any) error { return yaml.Unmarshal(b, v) }

// converge is a deploy: plan, compile, delete obsolete instances, create missing VMs, update groups in order,
// post-deploy.
func (d *Deployer) converge(ctx context.Context, out *tasks.Output, manifestText, name string, overrides func(*instancePlan) override) error {
	p, ds, prev, err := d.prepare(ctx, out, manifestText, name, overrides)
	if err != nil {
		return err
	}
	pkgs, err := d.compileAll(ctx, p, out, d.cfg.CompileWorkers)
	if err != nil {
		return err
	}
	flat := flatten(pkgs)
	if err := d.deleteObsolete(ctx, out, p, ds); err != nil {
		return err
	}
	if err := d.createMissing(ctx, out, p, ds); err != nil {
		return err
	}
	changed, err := d.updateGroups(ctx, out, p, ds, prev, flat)
	if err != nil {
		return err
	}
	if changed {
		d.postDeploy(ctx, p)
	}
	out.SetSummary("/deployments/" + p.name)
	return nil
}

func flatten(pkgs map[string]map[string]*compiledPackage) map[string]*compiledPackage {
	out := map[string]*compiledPackage{}
	for rel, m := range pkgs {
		for name, cp := range m {
			out[rel+"/"+name] = cp
		}
	}
	return out
}

// deleteObsolete deletes instances of removed groups and scaled-down instances: pre-stop with every next state
// `delete` but the deployment's, a shutdown drain with next persistent_disk 0, stop, post-stop, VM and disk gone.
func (d *Deployer) deleteObsolete(ctx context.Context, out *tasks.Output, p *plan, ds *depState) error {
	if len(p.obsolete) == 0 {
		return nil
	}
	stage := out.Stage("Deleting unneeded instances", nil, len(p.obsolete))
	width := 1
	for _, gp := range p.groups {
		width = max(width, gp.g.Update.MaxInFlight.Of(len(p.obsolete)))
	}
	return runPool(p.obsolete, width, func(inst state.Instance) error {
		return stage.Step(instanceName(inst), func() error {
			return d.deleteInstance(ctx, out, inst, ds, false, "keep")
		})
	})
}

// deleteInstance runs the shutdown of an instance that goes away — pre-stop (VM and instance deleted), drain
// job_shutdown with next persistent_disk 0, monit stop, post-stop — then deletes its VM and orphans its
// persistent disk (kept for `bosh attach-disk` until deleted or the retention period ends, as BOSH does).
func (d *Deployer) deleteInstance(ctx context.Context, out *tasks.Output, inst state.Instance, ds *depState, force bool, deploymentNext string) error {
	name := instanceName(inst)
	if v := d.liveVM(inst); v != nil && inst.Applied != nil {
		err := d.shutdown(ctx, v, name, jobNamesOf(inst.Applied), inst.DiskSize, 0, false,
			nextState("delete", "delete", deploymentNext))
		if err != nil && !force {
			return err
		}
	}
	if err := d.deleteVM(ctx, &inst); err != nil && !force {
		return err
	}
	if err := d.orphanDisk(out, ds.d.Name, inst); err != nil && !force {
		return err
	}
	d.event(out, state.Event{Action: "delete", ObjectType: "instance", ObjectName: instanceSlug(inst), Deployment: ds.d.Name, Instance: instanceSlug(inst)})
	d.log.Info("instance deleted", zap.String("instance", name), zap.String("reason", "no longer desired"))
	return ds.remove(inst.ID)
}

// shutdown is the stop phase of a shutdown: pre-stop, drain job_shutdown hash_unchanged, monit stop, post-stop.
func (d *Deployer) shutdown(ctx context.Context, v *vm.VM, name string, jobs []string, diskNow, diskNext int, skipDrain bool, preStopEnv []string) error {
	if !skipDrain {
		if err := d.runHook(ctx, v, name, jobs, "pre-stop", preStopEnv); err != nil {
			return err
		}
		if err := d.drain(ctx, v, name, jobs, drainArgs{args: []string{"job_shutdown", "hash_unchanged"}, diskNow: diskNow, diskNext: diskNext}); err != nil {
			return err
		}
	}
	if err := d.stop(ctx, v, name); err != nil {
		return err
	}
	return d.runHook(ctx, v, name, jobs, "post-stop", nil)
}

// createMissing creates the VMs of service instances that should have one, all groups in parallel, before any
// group is updated (the director's deployment_plan/stages/create_vm_stage.rb).
func (d *Deployer) createMissing(ctx context.Context, out *tasks.Output, p *plan, ds *depState) error {
	var missing []*instancePlan
	for _, gp := range p.groups {
		if gp.g.Lifecycle == manifest.LifecycleErrand {
			continue
		}
		for _, ip := range gp.instances {
			if ip.inst.State != "detached" && d.liveVM(ip.inst) == nil {
				missing = append(missing, ip)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	stage := out.Stage("Creating missing vms", nil, len(missing))
	return runPool(missing, len(missing), func(ip *instancePlan) error {
		return stage.Step(ip.name(), func() error {
			if ip.inst.VMCID != "" { // a VM the director lost (unresponsive agent): clear what is left of it
				if err := d.deleteVM(ctx, &ip.inst); err != nil {
					return err
				}
			}
			if _, err := d.createVMFor(ctx, ip); err != nil {
				return err
			}
			return ds.put(ip.inst)
		})
	})
}

func (d *Deployer) createVMFor(ctx context.Context, ip *instancePlan) (*vm.VM, error) {
	if ip.subnet != nil {
		ip.inst.Gateway, ip.inst.PrefixLen = ip.subnet.Gateway.String(), ip.subnet.Range.Bits()
	}
	v, err := d.createVM(ctx, &ip.inst, ip.group.dep, ip.group.diskSize, ip.nameservers())
	if err != nil {
		return nil, err
	}
	ip.inst.VMType = ip.group.g.VMType
	ip.inst.Stemcell = ip.stemcellCID()
	ip.inst.DiskSize = ip.group.diskSize
	ip.inst.DNS = addrStrings(ip.nameservers())
	return v, nil
}

func addrStrings(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func (ip *instancePlan) stemcellCID() string { return ip.group.stemcell }

// updateGroups updates the service groups in the batches of updateBatches, one batch after another, the groups of
// a batch in parallel. It reports whether any instance changed.
func (d *Deployer) updateGroups(ctx context.Context, out *tasks.Output, p *plan, ds *depState, prev map[string]state.Instance, pkgs map[string]*compiledPackage) (bool, error) {
	var changedAny bool
	var mu sync.Mutex
	for _, batch := range updateBatches(p.groups) {
		err := runPool(batch, len(batch), func(gp *groupPlan) error {
			changed, err := d.updateGroup(ctx, out, gp, ds, prev, pkgs)
			mu.Lock()
			changedAny = changedAny || changed
			mu.Unlock()
			return err
		})
		if err != nil {
			return changedAny, err
		}
	}
	return changedAny, nil
}

// updateGroup updates the group's changed instances in the waves of updateWaves: AZ by AZ, canaries first.
func (d *Deployer) updateGroup(ctx context.Context, out *tasks.Output, gp *groupPlan, ds *depState, prev map[string]state.Instance, pkgs map[string]*compiledPackage) (bool, error) {
	var changed []*instancePlan
	for _, ip := range gp.instances {
		p, had := prev[ip.inst.ID]
		var prevPtr *state.Instance
		if had {
			prevPtr = &p
		}
		if d.needsUpdate(ip, prevPtr, pkgs) {
			changed = append(changed, ip)
		}
	}
	if len(changed) == 0 {
		return false, nil
	}
	stage := out.Stage("Updating instance", []string{gp.g.Name}, len(changed))
	for _, w := range updateWaves(changed, bootstrapAZ(gp.instances), gp.g.Update) {
		err := runPool(w.instances, w.width, func(ip *instancePlan) error {
			name := ip.name()
			if w.canary {
				name += " (canary)"
			}
			return stage.Step(name, func() error {
				_, had := prev[ip.inst.ID]
				slug := instanceSlug(ip.inst)
				end := d.begin(out, state.Event{Action: instanceAction(ip.override, ip.inst.State, had), ObjectType: "instance",
					ObjectName: slug, Deployment: ds.d.Name, Instance: slug})
				err := d.updateInstance(ctx, ip, prev, pkgs, ds, w.canary)
				end(err)
				return err
			})
		})
		if err != nil {
			return true, err
		}
	}
	return true, nil
}

// desiredApplied is what the instance will have applied after its update.
func (ip *instancePlan) desiredApplied(pkgs map[string]*compiledPackage) *state.Applied {
	a := &state.Applied{Packages: map[string]string{}, ConfigHash: ip.hash}
	for _, jp := range ip.group.jobs {
		a.Jobs = append(a.Jobs, jp.job.Name+"/"+jp.job.Version)
		for _, name := range jp.job.Spec.Packages {
			if cp := pkgs[jp.rel.Manifest.Name+"/"+name]; cp != nil {
				a.Packages[name] = cp.Version
			}
		}
	}
	return a
}

func sameApplied(a, b *state.Applied) bool {
	return a != nil && b != nil && slices.Equal(a.Jobs, b.Jobs) && maps.Equal(a.Packages, b.Packages) && a.ConfigHash == b.ConfigHash
}

// needsRecreate reports whether the instance needs a new VM: stemcell, vm_type, IP, the subnet's dns (the VM's
// resolv.conf is written when it is created, as a stemcell's network settings are), a persistent disk that
// appears or disappears (disks are mounted when a VM boots), or an explicit recreate.
func (d *Deployer) needsRecreate(ip *instancePlan) bool {
	v := d.liveVM(ip.inst)
	if v == nil {
		return false
	}
	return ip.override.recreate || v.IP().String() != ip.inst.IP || ip.inst.VMType != ip.group.g.VMType ||
		ip.inst.Stemcell != ip.stemcellCID() || (ip.inst.DiskSize == 0) != (ip.group.diskSize == 0) ||
		!slices.Equal(ip.inst.DNS, addrStrings(ip.nameservers())) || d.subnetChanged(ip)
}

// subnetChanged reports whether the VM was created with another gateway or netmask than its subnet has now (a
// VM's network is set when it is created, so BOSH recreates it). A VM recorded without them was created on the
// bridge's own gateway and prefix.
func (d *Deployer) subnetChanged(ip *instancePlan) bool {
	if ip.subnet == nil {
		return false
	}
	gw, bits := ip.inst.Gateway, ip.inst.PrefixLen
	if gw == "" || bits == 0 {
		gw, bits = d.cfg.BridgeCIDR.Addr().String(), d.cfg.BridgeCIDR.Bits()
	}
	return gw != ip.subnet.Gateway.String() || bits != ip.subnet.Range.Bits()
}

func (d *Deployer) needsUpdate(ip *instancePlan, prev *state.Instance, pkgs map[string]*compiledPackage) bool {
	hasVM := d.liveVM(ip.inst) != nil
	switch ip.inst.State {
	case "detached":
		return hasVM
	case "stopped":
		return hasVM && (prev == nil || prev.State != "stopped" || ip.inst.Applied == nil)
	}
	return !hasVM || ip.inst.Applied == nil || ip.inst.Dirty || ip.override.restart || d.needsRecreate(ip) ||
		!sameApplied(ip.inst.Applied, ip.desiredApplied(pkgs)) || ip.inst.DiskSize != ip.group.diskSize ||
		prev == nil || prev.State != "started"
}

// instanceUpdate is what updating one instance knows before it starts: its name, the jobs it runs now (their
// hooks run before the stop) and whether they are running (only then are they shut down first).
type instanceUpdate struct {
	name       string
	oldJobs    []string
	wasRunning bool
	skipDrain  bool
}

// nextState is the pre-stop environment: what happens to the VM, the instance and the deployment ("keep" or
// "delete" each).
func nextState(vmNext, instanceNext, deploymentNext string) []string {
	return []string{"BOSH_VM_NEXT_STATE=" + vmNext, "BOSH_INSTANCE_NEXT_STATE=" + instanceNext, "BOSH_DEPLOYMENT_NEXT_STATE=" + deploymentNext}
}

// updateInstance brings one instance to its desired state in the director's per-instance order
// (instance_updater.rb, stopper.rb, starter.rb): pre-stop, drain, stop, post-stop, VM and disk, apply, pre-start,
// start, wait for running, post-start. A detached or stopped instance only goes down.
func (d *Deployer) updateInstance(ctx context.Context, ip *instancePlan, prevAll map[string]state.Instance, pkgs map[string]*compiledPackage, ds *depState, canary bool) error {
	prev, hadPrev := prevAll[ip.inst.ID]
	u := instanceUpdate{name: ip.name(), wasRunning: hadPrev && prev.State == "started" && ip.inst.Applied != nil, skipDrain: ip.override.skipDrain}
	if ip.inst.Applied != nil {
		u.oldJobs = jobNamesOf(ip.inst.Applied)
	}
	ip.inst.Dirty = true
	if err := ds.put(ip.inst); err != nil {
		return err
	}
	v := d.liveVM(ip.inst)
	switch ip.inst.State {
	case "detached":
		return d.detachInstance(ctx, ip, v, u, ds)
	case "stopped":
		return d.stopInstance(ctx, ip, v, u, ds, pkgs)
	}
	v, err := d.ensureVM(ctx, ip, v, &u, ds)
	if err != nil {
		return err
	}
	want := ip.desiredApplied(pkgs)
	if u.wasRunning {
		if err := d.stopForUpdate(ctx, v, ip, u, want); err != nil {
			return err
		}
	}
	if err := d.apply(ctx, v, ip, pkgs); err != nil {
		return err
	}
	ip.inst.Applied = want
	ip.inst.DiskSize = ip.group.diskSize
	if err := ds.put(ip.inst); err != nil {
		return err
	}
	if err := d.startInstance(ctx, v, ip, canary); err != nil {
		return err
	}
	ip.inst.Dirty = false
	d.log.Info("instance updated", zap.String("instance", u.name), zap.Bool("canary", canary), zap.String("reason", "instance changed"))
	return ds.put(ip.inst)
}

// detachInstance is `stop --hard`: a running instance is shut down, then its VM deleted; the disk is kept.
func (d *Deployer) detachInstance(ctx context.Context, ip *instancePlan, v *vm.VM, u instanceUpdate, ds *depState) error {
	if v != nil {
		if u.wasRunning {
			if err := d.shutdown(ctx, v, u.name, u.oldJobs, ip.inst.DiskSize, ip.group.diskSize, u.skipDrain, nextState("delete", "keep", "keep")); err != nil {
				return err
			}
		}
		if err := d.deleteVM(ctx, &ip.inst); err != nil {
			return err
		}
	}
	ip.inst.Dirty = false
	return ds.put(ip.inst)
}

// stopInstance is `stop`: a running instance is shut down and keeps its VM. An instance that never had its jobs
// applied gets them (so a later start has them) and is stopped at once.
func (d *Deployer) stopInstance(ctx context.Context, ip *instancePlan, v *vm.VM, u instanceUpdate, ds *depState, pkgs map[string]*compiledPackage) error {
	if v == nil {
		ip.inst.Dirty = false
		return ds.put(ip.inst)
	}
	if u.wasRunning {
		if err := d.shutdown(ctx, v, u.name, u.oldJobs, ip.inst.DiskSize, ip.group.diskSize, u.skipDrain, nextState("keep", "keep", "keep")); err != nil {
			return err
		}
	} else if ip.inst.Applied == nil {
		if err := d.apply(ctx, v, ip, pkgs); err != nil {
			return err
		}
		ip.inst.Applied = ip.desiredApplied(pkgs)
		if err := d.stop(ctx, v, u.name); err != nil {
			return err
		}
	}
	ip.inst.Dirty = false
	return ds.put(ip.inst)
}

// ensureVM returns the VM to apply to: a new one when the instance has none, a replacement (after shutting the
// old one down) when it must be recreated. A new VM runs nothing, so u.wasRunning is cleared.
func (d *Deployer) ensureVM(ctx context.Context, ip *instancePlan, v *vm.VM, u *instanceUpdate, ds *depState) (*vm.VM, error) {
	if v == nil {
		var err error
		if v, err = d.createVMFor(ctx, ip); err != nil {
			return nil, err
		}
		if err := ds.put(ip.inst); err != nil {
			return nil, err
		}
		u.wasRunning = false
	}
	if !d.needsRecreate(ip) {
		return v, nil
	}
	if u.wasRunning {
		if err := d.shutdown(ctx, v, u.name, u.oldJobs, ip.inst.DiskSize, ip.group.diskSize, u.skipDrain, nextState("delete", "keep", "keep")); err != nil {
			return nil, err
		}
	}
	if err := d.deleteVM(ctx, &ip.inst); err != nil {
		return nil, err
	}
	if ip.group.diskSize == 0 && ip.inst.DiskCID != "" {
		// The manifest no longer gives this group a disk: BOSH orphans it rather than deleting data.
		if err := d.orphanDisk(nil, ds.d.Name, ip.inst); err != nil {
			return nil, err
		}
		ip.inst.DiskCID = ""
	}
	v, err := d.createVMFor(ctx, ip)
	if err != nil {
		return nil, err
	}
	if err := ds.put(ip.inst); err != nil {
		return nil, err
	}
	u.wasRunning = false
	return v, nil
}

// stopForUpdate takes a running instance down for an update in place: pre-stop and drain (unless skip_drain),
// monit stop, post-stop.
func (d *Deployer) stopForUpdate(ctx context.Context, v *vm.VM, ip *instancePlan, u instanceUpdate, want *state.Applied) error {
	if !u.skipDrain {
		if err := d.runHook(ctx, v, u.name, u.oldJobs, "pre-stop", nextState("keep", "keep", "keep")); err != nil {
			return err
		}
		if err := d.drain(ctx, v, u.name, u.oldJobs, updateDrainArgs(ip.inst.Applied, want, ip.inst.DiskSize, ip.group.diskSize)); err != nil {
			return err
		}
	}
	if err := d.stop(ctx, v, u.name); err != nil {
		return err
	}
	return d.runHook(ctx, v, u.name, u.oldJobs, "post-stop", nil)
}

// updateDrainArgs decides the drain of an update in place, as the agent does: a persistent disk change makes it
// a shutdown drain (`job_shutdown hash_unchanged`); otherwise `job_changed`, hash_changed or hash_unchanged
// (comparing configuration hashes), then the sorted names of added or changed packages. The agent never sends
// job_unchanged. BOSH_JOB_STATE / BOSH_JOB_NEXT_STATE carry the current and the next disk size.
func updateDrainArgs(applied, want *state.Applied, diskNow, diskNext int) drainArgs {
	da := drainArgs{diskNow: diskNow, diskNext: diskNext}
	if diskNow != diskNext {
		da.args = []string{"job_shutdown", "hash_unchanged"}
		return da
	}
	hash := "hash_unchanged"
	if applied.ConfigHash != want.ConfigHash {
		hash = "hash_changed"
	}
	da.args = append([]string{"job_changed", hash}, changedPackages(applied, want)...)
	return da
}

// startInstance runs pre-start, starts the jobs, waits for running within the canary or update watch time and
// runs post-start.
func (d *Deployer) startInstance(ctx context.Context, v *vm.VM, ip *instancePlan, canary bool) error {
	name, jobs := ip.name(), ip.jobNames()
	if err := d.runHook(ctx, v, name, jobs, "pre-start", nil); err != nil {
		return err
	}
	if err := v.Monit().StartAll(ctx); err != nil {
		return fmt.Errorf("'%s': starting jobs: %w", name, err)
	}
	watch := ip.group.g.Update.UpdateWatch
	if canary {
		watch = ip.group.g.Update.CanaryWatch
	}
	if err := d.waitRunning(ctx, v, name, watch.Min, watch.Max); err != nil {
		return err
	}
	return d.runHook(ctx, v, name, jobs, "post-start", nil)
}

func jobNamesOf(a *state.Applied) []string {
	var out []string
	for _, j := range a.Jobs {
		name, _, _ := cutLast(j, "/")
		out = append(out, name)
	}
	return out
}

func cutLast(s, sep string) (string, string, bool) {
	for i := len(s) - len(sep); i >= 0; i-- {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// changedPackages are the sorted names of packages that are new or have another version.
func changedPackages(old, new *state.Applied) []string {
	var out []string
	for name, v := range new.Packages {
		if old == nil || old.Packages[name] != v {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// postDeploy runs bin/post-deploy on every started instance with a VM (errors are logged, as they do not fail a
// BOSH deploy unless the director is configured to).
func (d *Deployer) postDeploy(ctx context.Context, p *plan) {
	for _, gp := range p.groups {
		for _, ip := range gp.instances {
			if v := d.liveVM(ip.inst); v != nil && ip.inst.State == "started" {
				if err := d.runHook(ctx, v, ip.name(), ip.jobNames(), "post-deploy", nil); err != nil {
					d.log.Warn("post-deploy failed", zap.String("instance", ip.name()), zap.Error(err))
				}
			}
		}
	}
}

// runPool runs fn over items with at most width at a time, as a sliding window. After the first failure no new
// item starts; running ones finish. It returns the errors of all failed items.
func runPool[T any](items []T, width int, fn func(T) error) error {
	if len(items) == 0 {
		return nil
	}
	width = max(width, 1)
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, it := range items {
		sem <- struct{}{}
		mu.Lock()
		failed := len(errs) > 0
		mu.Unlock()
		if failed {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
