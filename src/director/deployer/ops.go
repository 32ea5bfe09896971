package deployer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/etcd-release/etcd-release/src/director/manifest"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
	"github.com/etcd-release/etcd-release/src/director/vm"
)

// ErrNoDeployment is returned for an unknown deployment.
var ErrNoDeployment = errors.New("deployment doesn't exist")

// Delete deletes a deployment: every instance in parallel (no canaries) with a shutdown drain (next
// persistent_disk 0), then its VM and disk; force ignores errors (the director's jobs/delete_deployment.rb).
func (d *Deployer) Delete(ctx context.Context, out *tasks.Output, name string, force bool) error {
	dep, err := d.store.Deployment(name)
	if errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("Deployment '%s' doesn't exist: %w", name, ErrNoDeployment)
	}
	if err != nil {
		return err
	}
	end := d.begin(out, state.Event{Action: "delete", ObjectType: "deployment", ObjectName: name, Deployment: name})
	err = d.deleteAll(ctx, out, dep, force)
	end(err)
	return err
}

// deleteAll deletes every instance of a deployment (orphaning their disks), then its record.
func (d *Deployer) deleteAll(ctx context.Context, out *tasks.Output, dep state.Deployment, force bool) error {
	name := dep.Name
	ds := &depState{store: d.store, d: dep}
	if len(dep.Instances) > 0 {
		stage := out.Stage("Deleting instances", nil, len(dep.Instances))
		err := runPool(dep.Instances, len(dep.Instances), func(inst state.Instance) error {
			return stage.Step(instanceName(inst), func() error { return d.deleteInstance(ctx, out, inst, ds, force, "delete") })
		})
		if err != nil && !force {
			return err
		}
	}
	stage := out.Stage("Deleting properties", nil, 1)
	if err := stage.Step("Destroying deployment", func() error { return d.store.DeleteDeployment(name) }); err != nil {
		return err
	}
	out.SetSummary("/deployments/" + name)
	return nil
}

// InstanceInfo is one line of `instances`/`vms` with format=full.
type InstanceInfo struct {
	VMCID       *string       `json:"vm_cid"`
	Active      bool          `json:"active"`
	VMCreatedAt *string       `json:"vm_created_at"`
	DiskCIDs    []string      `json:"disk_cids"`
	IPs         []string      `json:"ips"`
	AgentID     *string       `json:"agent_id"`
	JobName     string        `json:"job_name"`
	Index       int           `json:"index"`
	JobState    *string       `json:"job_state"`
	State       string        `json:"state"`
	VMType      string        `json:"vm_type"`
	Vitals      any           `json:"vitals"`
	Processes   []ProcessInfo `json:"processes"`
	AZ          *string       `json:"az"`
	ID          string        `json:"id"`
	Bootstrap   bool          `json:"bootstrap"`
	Ignore      bool          `json:"ignore"`
}

// ProcessInfo is one monit service of an instance.
type ProcessInfo struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Uptime struct {
		Secs int64 `json:"secs"`
	} `json:"uptime"`
	Mem struct {
		KB      int64   `json:"kb"`
		Percent float64 `json:"percent"`
	} `json:"mem"`
	CPU struct {
		Total float64 `json:"total"`
	} `json:"cpu"`
}

// Instances reports a deployment's instances with their live job and process states; vmsOnly leaves out
// instances without a VM (the /vms endpoint).
func (d *Deployer) Instances(ctx context.Context, name string, vmsOnly bool) ([]InstanceInfo, error) {
	dep, err := d.store.Deployment(name)
	if errors.Is(err, state.ErrNotFound) {
		return nil, fmt.Errorf("Deployment '%s' doesn't exist: %w", name, ErrNoDeployment)
	}
	if err != nil {
		return nil, err
	}
	insts := slices.Clone(dep.Instances)
	slices.SortFunc(insts, func(a, b state.Instance) int {
		if a.Group != b.Group {
			return compareStrings(a.Group, b.Group)
		}
		return a.Index - b.Index
	})
	// One CPU sample for all VMs (they share the host's kernel), 200 ms as a short agent interval.
	cpu, _ := vm.HostCPU(ctx, 200*time.Millisecond)
	out := []InstanceInfo{}
	for _, inst := range insts {
		if inst.VMCID == "" && (vmsOnly || inst.Lifecycle == manifest.LifecycleErrand) {
			continue
		}
		info := InstanceInfo{DiskCIDs: []string{}, IPs: []string{}, JobName: inst.Group, Index: inst.Index, State: inst.State,
			VMType: inst.VMType, Processes: []ProcessInfo{}, ID: inst.ID, Bootstrap: inst.Bootstrap}
		if inst.IP != "" {
			info.IPs = append(info.IPs, inst.IP)
		}
		if inst.DiskCID != "" {
			info.DiskCIDs = append(info.DiskCIDs, inst.DiskCID)
		}
		if inst.AZ != "" {
			info.AZ = &inst.AZ
		}
		if inst.VMCID != "" {
			cid := inst.VMCID
			created := inst.VMCreatedAt.Format(time.RFC3339)
			info.VMCID, info.AgentID, info.VMCreatedAt, info.Active = &cid, &cid, &created, true
			js := "unresponsive agent"
			if v := d.liveVM(inst); v != nil {
				if vit, err := v.Vitals(cpu); err == nil {
					info.Vitals = vit
				}
				st, procs := v.Monit().JobState(ctx)
				js = st
				for _, p := range procs {
					pi := ProcessInfo{Name: p.Name, State: p.State}
					pi.Uptime.Secs, pi.Mem.KB, pi.Mem.Percent, pi.CPU.Total = p.UptimeSecs, p.MemKB, p.MemPercent, p.CPUPercent
					info.Processes = append(info.Processes, pi)
				}
			}
			info.JobState = &js
		}
		out = append(out, info)
	}
	return out, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ErrandTarget selects instances for an errand run (the `instances` of the request).
type ErrandTarget struct {
	Group string `json:"group"`
	ID    string `json:"id"`
}

// ErrandResult is the task result line of one errand run.
type ErrandResult struct {
	Instance struct {
		Group string `json:"group"`
		ID    string `json:"id"`
	} `json:"instance"`
	ErrandName string `json:"errand_name"`
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	Logs       struct {
		BlobstoreID string `json:"blobstore_id"`
		SHA1        string `json:"sha1"`
	} `json:"logs"`
}

// RunErrand runs an errand as the director's errand/* and jobs/run_errand.rb do: by job name on every service
// instance that has the job (colocated) and on the first instance of every errand group that has it; or, when no
// job has that name, the errand group of that name. Errand-group VMs are created, updated, used and deleted
// (unless keepAlive); their persistent disks are kept. The task result gets one line per instance.
func (d *Deployer) RunErrand(ctx context.Context, out *tasks.Output, name, errand string, targets []ErrandTarget, keepAlive bool) error {
	dep, err := d.store.Deployment(name)
	if errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("Deployment '%s' doesn't exist: %w", name, ErrNoDeployment)
	}
	if err != nil {
		return err
	}
	var p *plan
	stage := out.Stage("Preparing deployment", nil, 1)
	if err := stage.Step("Preparing deployment", func() error {
		d.planMu.Lock()
		defer d.planMu.Unlock()
		others, err := d.otherIPs(name)
		if err != nil {
			return err
		}
		p, err = d.buildPlan(ctx, dep.Manifest, dep, others)
		return err
	}); err != nil {
		return err
	}
	saved := map[string]state.Instance{}
	for _, inst := range dep.Instances {
		saved[inst.ID] = inst
	}
	runs, err := selectErrandRuns(p, saved, name, errand, targets, func(i state.Instance) bool { return d.liveVM(i) != nil })
	if err != nil {
		return err
	}
	compiled, err := d.compileAll(ctx, p, out, d.cfg.CompileWorkers)
	if err != nil {
		return err
	}
	pkgs := flatten(compiled)
	ds := &depState{store: d.store, d: dep}
	var creates []errandRun
	for _, r := range runs {
		if r.create {
			if s, ok := saved[r.ip.inst.ID]; ok {
				r.ip.inst = s
			} else if err := ds.put(r.ip.inst); err != nil {
				return err
			}
			creates = append(creates, r)
		}
	}
	if err := d.prepareErrandVMs(ctx, out, creates, pkgs, ds); err != nil {
		return err
	}
	end := d.begin(out, state.Event{Action: "run", ObjectType: "errand", ObjectName: errand, Deployment: name})
	results, runErr := d.runErrands(ctx, out, runs, errand)
	end(runErr)
	if len(creates) > 0 && !keepAlive {
		d.deleteErrandVMs(ctx, out, creates, ds)
	}
	if runErr != nil {
		return runErr
	}
	for _, res := range results {
		if err := out.ResultLine(res); err != nil {
			return err
		}
	}
	return nil
}

// errandRun is one run of an errand job on one instance; create marks the first instance of a `lifecycle:
// errand` group, whose VM exists only for the run.
type errandRun struct {
	ip     *instancePlan
	job    *jobPlan
	create bool
}

// selectErrandRuns decides where an errand runs. By job name first: on every service instance with the job that
// has a VM (hasVM) and is selected by targets (it must be started), and on the first instance of each errand
// group with the job (only without targets). When no job has the name, the errand group of that name runs its
// first errand job (targets are then an error). Service instances get their saved state.
func selectErrandRuns(p *plan, saved map[string]state.Instance, deployment, errand string, targets []ErrandTarget, hasVM func(state.Instance) bool) ([]errandRun, error) {
	var runs []errandRun
	for _, gp := range p.groups {
		for _, jp := range gp.jobs {
			if jp.job.Name != errand || !jp.hasRun {
				continue
			}
			if gp.g.Lifecycle == manifest.LifecycleErrand {
				if len(gp.instances) > 0 && len(targets) == 0 {
					runs = append(runs, errandRun{ip: gp.instances[0], job: jp, create: true})
				}
				continue
			}
			for _, ip := range gp.instances {
				if s, ok := saved[ip.inst.ID]; ok {
					ip.inst = s
				}
				if !hasVM(ip.inst) || !selected(targets, ip) {
					continue
				}
				if ip.inst.State != "started" {
					return nil, fmt.Errorf("Instance '%s' is stopped: errands run only on started instances", ip.name())
				}
				runs = append(runs, errandRun{ip: ip, job: jp})
			}
		}
	}
	if len(runs) > 0 {
		return runs, nil
	}
	for _, gp := range p.groups {
		if gp.g.Name != errand || gp.g.Lifecycle != manifest.LifecycleErrand {
			continue
		}
		if len(targets) > 0 {
			return nil, fmt.Errorf("errand '%s' is an errand instance group: instances cannot be selected", errand)
		}
		for _, jp := range gp.jobs {
			if jp.hasRun && len(gp.instances) > 0 {
				runs = append(runs, errandRun{ip: gp.instances[0], job: jp, create: true})
				break
			}
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("Errand '%s' doesn't exist in deployment '%s'", errand, deployment)
	}
	return runs, nil
}

// prepareErrandVMs creates the errand groups' VMs (replacing one that is gone) and brings them up to date with
// a normal instance update, all in parallel.
func (d *Deployer) prepareErrandVMs(ctx context.Context, out *tasks.Output, creates []errandRun, pkgs map[string]*compiledPackage, ds *depState) error {
	if len(creates) == 0 {
		return nil
	}
	cstage := out.Stage("Creating missing vms", nil, len(creates))
	if err := runPool(creates, len(creates), func(r errandRun) error {
		return cstage.Step(r.ip.name(), func() error {
			if d.liveVM(r.ip.inst) != nil {
				return nil
			}
			if r.ip.inst.VMCID != "" {
				if err := d.deleteVM(ctx, &r.ip.inst); err != nil {
					return err
				}
			}
			if _, err := d.createVMFor(ctx, r.ip); err != nil {
				return err
			}
			return ds.put(r.ip.inst)
		})
	}); err != nil {
		return err
	}
	ustage := out.Stage("Updating instance", []string{creates[0].ip.group.g.Name}, len(creates))
	return runPool(creates, len(creates), func(r errandRun) error {
		return ustage.Step(r.ip.name(), func() error {
			if sameApplied(r.ip.inst.Applied, r.ip.desiredApplied(pkgs)) && !r.ip.inst.Dirty {
				return nil
			}
			r.ip.inst.State = "started"
			return d.updateInstance(ctx, r.ip, map[string]state.Instance{}, pkgs, ds, false)
		})
	})
}

// runErrands runs bin/run of every run in parallel, with no timeout, and collects the results in run order.
func (d *Deployer) runErrands(ctx context.Context, out *tasks.Output, runs []errandRun, errand string) ([]ErrandResult, error) {
	rstage := out.Stage("Running errand", nil, len(runs))
	results := make([]ErrandResult, len(runs))
	idx := make([]int, len(runs))
	for i := range idx {
		idx[i] = i
	}
	err := runPool(idx, len(idx), func(i int) error {
		r := runs[i]
		return rstage.Step(r.ip.name(), func() error {
			v := d.liveVM(r.ip.inst)
			if v == nil {
				return fmt.Errorf("'%s': the VM is not running", r.ip.name())
			}
			script := fmt.Sprintf("/var/vcap/jobs/%s/bin/run", r.job.job.Name)
			stdout, stderr, code, err := v.Exec(ctx, []string{script}, nil, nil)
			if err != nil {
				return fmt.Errorf("'%s': running errand '%s': %w", r.ip.name(), errand, err)
			}
			d.appendLog(v, r.job.job.Name, "run", stdout, stderr)
			res := ErrandResult{ErrandName: r.job.job.Name, ExitCode: code, Stdout: string(stdout), Stderr: string(stderr)}
			res.Instance.Group, res.Instance.ID = r.ip.inst.Group, r.ip.inst.ID
			results[i] = res
			return nil
		})
	})
	return results, err
}

// deleteErrandVMs stops and deletes the errand groups' VMs after the run; their disks are kept. Errors show in
// the task's events but do not change the errand's result.
func (d *Deployer) deleteErrandVMs(ctx context.Context, out *tasks.Output, creates []errandRun, ds *depState) {
	dstage := out.Stage("Deleting errand instances", nil, len(creates))
	_ = runPool(creates, len(creates), func(r errandRun) error {
		return dstage.Step(r.ip.name(), func() error {
			if v := d.liveVM(r.ip.inst); v != nil {
				if err := d.stop(ctx, v, r.ip.name()); err != nil {
					return err
				}
			}
			if err := d.deleteVM(ctx, &r.ip.inst); err != nil {
				return err
			}
			return ds.put(r.ip.inst)
		})
	})
}

func selected(targets []ErrandTarget, ip *instancePlan) bool {
	if len(targets) == 0 {
		return true
	}
	for _, t := range targets {
		if t.Group == ip.inst.Group && (t.ID == "" || t.ID == ip.inst.ID || t.ID == "first" && ip.inst.Index == 0) {
			return true
		}
	}
	return false
}

// VMDataDir is the host directory backing an instance VM's /var/vcap (for tests and debugging).
func (d *Deployer) VMDataDir(cid string) string { return filepath.Join(d.cfg.StateDir, "vms", cid) }

// DiskDir is the host directory backing a persistent disk.
func (d *Deployer) DiskDir(cid string) string { return d.diskDir(cid) }

// VM returns the live VM with the given cid, or nil.
func (d *Deployer) VM(cid string) *vm.VM {
	return d.liveVM(state.Instance{VMCID: cid})
}
