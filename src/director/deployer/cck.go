package deployer

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
	"github.com/etcd-release/etcd-release/src/director/vm"
)

// `bosh cck` (cloudfoundry/bosh-cli cmd/cloud_check.go, director/problems.go): POST /deployments/D/scans is a
// task that scans; GET /deployments/D/problems lists what it found with the resolutions on offer; PUT
// /deployments/D/problems {"resolutions":{"<id>":"<name>"|null}} applies them, null (what --auto sends) meaning
// the problem type's automatic resolution. The problem types, descriptions and resolutions are those of the
// director's problem_handlers/missing_vm.rb, unresponsive_agent.rb and missing_disk.rb.

// Problem is one scan finding.
type Problem struct {
	ID            int            `json:"id"`
	Type          string         `json:"type"`
	Description   string         `json:"description"`
	InstanceGroup string         `json:"instance_group"`
	ResourceID    string         `json:"resource_id"`
	Data          map[string]any `json:"data"`
	Resolutions   []Resolution   `json:"resolutions"`
	instanceID    string
}

// Resolution is one way to resolve a problem: name is what the CLI sends back, plan what it shows.
type Resolution struct {
	Name string `json:"name"`
	Plan string `json:"plan"`
}

// Problem types, resolutions and each type's automatic resolution (--auto).
var (
	resIgnore          = Resolution{"ignore", "Skip for now"}
	resReboot          = Resolution{"reboot_vm", "Reboot VM"}
	resRecreate        = Resolution{"recreate_vm", "Recreate VM without waiting for processes to start"}
	resRecreateWait    = Resolution{"recreate_vm_and_wait_for_processes", "Recreate VM and wait for processes to start"}
	resDeleteVM        = Resolution{"delete_vm", "Delete VM"}
	resDeleteVMRef     = Resolution{"delete_vm_reference", "Delete VM reference"}
	resDeleteDiskRef   = Resolution{"delete_disk_reference", "Delete disk reference (DANGEROUS!)"}
	problemResolutions = map[string][]Resolution{
		"missing_vm":         {resIgnore, resRecreate, resRecreateWait, resDeleteVMRef},
		"unresponsive_agent": {resIgnore, resReboot, resRecreate, resRecreateWait, resDeleteVM, resDeleteVMRef},
		"missing_disk":       {resIgnore, resDeleteDiskRef},
	}
	autoResolution = map[string]string{"missing_vm": "recreate_vm", "unresponsive_agent": "recreate_vm", "missing_disk": "delete_disk_reference"}
)

// observation is what a scan sees of one instance.
type observation struct {
	vmAlive     bool // the VM's init (and so its namespaces) exists
	agentAnswer bool // its monit answers
	diskExists  bool // its persistent disk directory exists
}

// detectProblems decides the problems of a deployment's instances from what the scan observed: a VM the
// director references that is gone (missing_vm), one whose monit does not answer (unresponsive_agent), a
// referenced disk whose directory is gone (missing_disk). Instances without a VM are fine (stopped --hard,
// errand groups).
func detectProblems(insts []state.Instance, observe func(state.Instance) observation) []Problem {
	var out []Problem
	add := func(typ, desc string, inst state.Instance, resource string, data map[string]any) {
		out = append(out, Problem{ID: len(out) + 1, Type: typ, Description: desc, InstanceGroup: inst.Group, ResourceID: resource,
			Data: data, Resolutions: problemResolutions[typ], instanceID: inst.ID})
	}
	for _, inst := range insts {
		o := observe(inst)
		name := instanceName(inst)
		switch {
		case inst.VMCID != "" && !o.vmAlive:
			add("missing_vm", fmt.Sprintf("VM for '%s' with cloud ID '%s' missing.", name, inst.VMCID), inst, inst.VMCID, map[string]any{"vm_cid": inst.VMCID})
		case inst.VMCID != "" && !o.agentAnswer:
			add("unresponsive_agent", fmt.Sprintf("%s (%s) is not responding", name, inst.VMCID), inst, inst.VMCID, map[string]any{"vm_cid": inst.VMCID})
		}
		if inst.DiskCID != "" && !o.diskExists {
			add("missing_disk", fmt.Sprintf("Disk '%s' (%s, %dM) is missing", inst.DiskCID, name, inst.DiskSize), inst, inst.DiskCID,
				map[string]any{"disk_cid": inst.DiskCID, "size": inst.DiskSize})
		}
	}
	return out
}

// chooseResolution decides what to apply to a problem: the named resolution when the problem offers it, the
// type's automatic one for null; anything else is an error naming the ones on offer.
func chooseResolution(p Problem, name *string) (string, error) {
	if name == nil {
		return autoResolution[p.Type], nil
	}
	for _, r := range p.Resolutions {
		if r.Name == *name {
			return r.Name, nil
		}
	}
	var names []string
	for _, r := range p.Resolutions {
		names = append(names, r.Name)
	}
	return "", fmt.Errorf("problem %d (%s) has no resolution '%s': use one of %v", p.ID, p.Type, *name, names)
}

func (d *Deployer) observe(ctx context.Context, inst state.Instance) observation {
	var o observation
	if inst.DiskCID != "" {
		_, err := os.Stat(d.diskDir(inst.DiskCID))
		o.diskExists = err == nil
	}
	v := d.liveVM(inst)
	if v == nil {
		return o
	}
	o.vmAlive = true
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := v.Monit().Status(sctx)
	o.agentAnswer = err == nil
	return o
}

// Scan looks for problems in a deployment and keeps them for ListProblems and Resolve.
func (d *Deployer) Scan(ctx context.Context, out *tasks.Output, name string) error {
	dep, err := d.store.Deployment(name)
	if err != nil {
		return fmt.Errorf("Deployment '%s' doesn't exist: %w", name, ErrNoDeployment)
	}
	var found []Problem
	stage := out.Stage("Scanning "+strconv.Itoa(len(dep.Instances))+" VMs", nil, 1)
	if err := stage.Step("Checking VM states and disks", func() error {
		found = detectProblems(dep.Instances, func(i state.Instance) observation { return d.observe(ctx, i) })
		return nil
	}); err != nil {
		return err
	}
	d.problemMu.Lock()
	d.problems[name] = found
	d.problemMu.Unlock()
	out.SetSummary(fmt.Sprintf("%d problems", len(found)))
	return nil
}

// ListProblems returns the problems of the deployment's last scan that are not resolved yet.
func (d *Deployer) ListProblems(name string) []Problem {
	d.problemMu.Lock()
	defer d.problemMu.Unlock()
	return slices.Clone(d.problems[name])
}

// Resolve applies the chosen resolutions (by problem id) of the last scan; a problem without an answer stays.
func (d *Deployer) Resolve(ctx context.Context, out *tasks.Output, name string, answers map[string]*string) error {
	probs := d.ListProblems(name)
	type step struct {
		p   Problem
		res string
	}
	var steps []step
	for idStr, ans := range answers {
		id, _ := strconv.Atoi(idStr)
		i := slices.IndexFunc(probs, func(p Problem) bool { return p.ID == id })
		if i < 0 {
			return fmt.Errorf("problem %s is not an open problem of deployment '%s': run `bosh cck` again", idStr, name)
		}
		res, err := chooseResolution(probs[i], ans)
		if err != nil {
			return err
		}
		steps = append(steps, step{probs[i], res})
	}
	slices.SortFunc(steps, func(a, b step) int { return a.p.ID - b.p.ID })
	stage := out.Stage("Applying problem resolutions", nil, len(steps))
	recreate := false
	for _, s := range steps {
		err := stage.Step(fmt.Sprintf("%s: %s (%s)", s.p.Type, s.p.Description, s.res), func() error {
			again, err := d.applyResolution(ctx, out, name, s.p, s.res)
			recreate = recreate || again
			return err
		})
		if err != nil {
			return err
		}
		d.event(out, state.Event{Action: s.res, ObjectType: "problem", ObjectName: strconv.Itoa(s.p.ID), Deployment: name,
			Instance: s.p.InstanceGroup + "/" + s.p.instanceID, Context: map[string]any{"type": s.p.Type}})
		d.problemMu.Lock()
		d.problems[name] = slices.DeleteFunc(d.problems[name], func(p Problem) bool { return p.ID == s.p.ID })
		d.problemMu.Unlock()
	}
	if recreate {
		// Instances left without a VM get one, with their disk, through a deploy of the saved manifest: the
		// director's recreate runs the same create, apply and start steps.
		dep, err := d.store.Deployment(name)
		if err != nil {
			return err
		}
		return d.converge(ctx, out, dep.Manifest, name, nil)
	}
	return nil
}

// applyResolution applies one resolution to the saved instance; it reports whether a converge must follow
// (a recreate).
func (d *Deployer) applyResolution(ctx context.Context, out *tasks.Output, name string, p Problem, res string) (bool, error) {
	dep, err := d.store.Deployment(name)
	if err != nil {
		return false, err
	}
	i := slices.IndexFunc(dep.Instances, func(x state.Instance) bool { return x.ID == p.instanceID })
	if i < 0 {
		return false, fmt.Errorf("instance %s/%s is gone", p.InstanceGroup, p.instanceID)
	}
	inst := dep.Instances[i]
	ds := &depState{store: d.store, d: dep}
	switch res {
	case "ignore":
		return false, nil
	case "recreate_vm", "recreate_vm_and_wait_for_processes", "delete_vm":
		if err := d.deleteVM(ctx, &inst); err != nil {
			return false, err
		}
		return res != "delete_vm", ds.put(inst)
	case "delete_vm_reference":
		d.vmMu.Lock()
		delete(d.vms, inst.VMCID)
		d.vmMu.Unlock()
		inst.VMCID, inst.VMCreatedAt, inst.Applied = "", time.Time{}, nil
		return false, ds.put(inst)
	case "delete_disk_reference":
		d.log.Info("disk reference deleted", zap.String("disk", inst.DiskCID), zap.String("instance", instanceName(inst)),
			zap.String("reason", "cck: the disk directory is missing"))
		inst.DiskCID = ""
		return false, ds.put(inst)
	case "reboot_vm":
		return false, d.rebootVM(ctx, inst)
	}
	return false, fmt.Errorf("unknown resolution '%s'", res)
}

// rebootVM is a reboot of a namespace VM: every process of the VM is killed, its namespaces rebuilt with the
// same id, address, data and disk directories, its jobs' monit files loaded again and, for a started instance,
// its jobs started (what monit does when a real VM boots).
func (d *Deployer) rebootVM(ctx context.Context, inst state.Instance) error {
	d.vmMu.Lock()
	old := d.vms[inst.VMCID]
	delete(d.vms, inst.VMCID)
	d.vmMu.Unlock()
	if old != nil {
		if err := old.Destroy(ctx); err != nil {
			return err
		}
	} else if _, err := vm.Reap(ctx, inst.VMCID, d.log); err != nil {
		return err
	}
	spec, err := d.vmSpec(inst, inst.VMCID)
	if err != nil {
		return err
	}
	for _, s := range inst.DNS {
		if a, err := netip.ParseAddr(s); err == nil {
			spec.DNS = append(spec.DNS, a)
		}
	}
	v, err := vm.Create(ctx, spec)
	if err != nil {
		return fmt.Errorf("rebooting VM %s of '%s': %w", inst.VMCID, instanceName(inst), err)
	}
	d.vmMu.Lock()
	d.vms[inst.VMCID] = v
	d.vmMu.Unlock()
	if inst.State != "started" {
		return nil
	}
	if err := v.Monit().StartAll(ctx); err != nil {
		return fmt.Errorf("'%s': starting jobs after the reboot: %w", instanceName(inst), err)
	}
	return d.waitRunning(ctx, v, instanceName(inst), 1000, 60000)
}
