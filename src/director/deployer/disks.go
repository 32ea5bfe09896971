package deployer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

// DefaultOrphanRetention is how long an orphaned disk is kept before the director deletes it: the director's
// scheduled orphaned-disk cleanup (jobs/scheduled_orphaned_disk_cleanup.rb) keeps them 5 days by default.
const DefaultOrphanRetention = 5 * 24 * time.Hour

// event records one entry of the event log for the task out belongs to; a failure to record is logged, never
// fails the operation (the event log is a record, not a step).
func (d *Deployer) event(out *tasks.Output, e state.Event) state.Event {
	if out != nil {
		e.Task, e.User = out.TaskID(), out.User()
	}
	rec, err := d.store.AddEvent(e)
	if err != nil {
		d.log.Warn("recording an event failed", zap.String("action", e.Action), zap.String("object", e.ObjectName), zap.Error(err))
	}
	return rec
}

// orphanDisk keeps the persistent disk of an instance that goes away: its directory stays under disks/ and a
// record says where it came from. The data is never deleted here; only DeleteOrphanDisk and the retention
// cleanup delete it.
func (d *Deployer) orphanDisk(out *tasks.Output, deployment string, inst state.Instance) error {
	if inst.DiskCID == "" {
		return nil
	}
	o := state.OrphanDisk{CID: inst.DiskCID, Size: inst.DiskSize, Deployment: deployment, Instance: instanceSlug(inst), AZ: inst.AZ,
		OrphanedAt: time.Now().UTC()}
	if err := d.store.PutOrphanDisk(o); err != nil {
		return fmt.Errorf("orphaning disk %s of '%s': %w", inst.DiskCID, instanceName(inst), err)
	}
	d.event(out, state.Event{Action: "orphan", ObjectType: "disk", ObjectName: inst.DiskCID, Deployment: deployment, Instance: instanceSlug(inst)})
	d.log.Info("disk orphaned", zap.String("disk", inst.DiskCID), zap.String("instance", instanceName(inst)), zap.String("reason", "its instance was deleted"))
	return nil
}

// OrphanDisks lists the orphaned disks (GET /disks).
func (d *Deployer) OrphanDisks() ([]state.OrphanDisk, error) { return d.store.OrphanDisks() }

// ErrNoOrphanDisk is returned for a disk cid that is not an orphaned disk.
var ErrNoOrphanDisk = errors.New("orphaned disk not found")

// DeleteOrphanDisk deletes an orphaned disk and its data (`bosh delete-disk`).
func (d *Deployer) DeleteOrphanDisk(out *tasks.Output, cid string) error {
	if _, err := d.store.OrphanDisk(cid); err != nil {
		return fmt.Errorf("Disk '%s' is not an orphaned disk: %w", cid, ErrNoOrphanDisk)
	}
	stage := out.Stage("Deleting orphaned disks", nil, 1)
	return stage.Step(cid, func() error {
		if err := os.RemoveAll(d.diskDir(cid)); err != nil {
			return fmt.Errorf("deleting disk %s: %w", cid, err)
		}
		if err := d.store.ForgetOrphanDisk(cid); err != nil && !errors.Is(err, state.ErrNotFound) {
			return err
		}
		d.event(out, state.Event{Action: "delete", ObjectType: "disk", ObjectName: cid})
		return nil
	})
}

// expiredOrphans decides which orphaned disks the retention cleanup deletes: those orphaned longer than
// retention ago. A retention of zero or less keeps every disk.
func expiredOrphans(disks []state.OrphanDisk, now time.Time, retention time.Duration) []string {
	if retention <= 0 {
		return nil
	}
	var out []string
	for _, o := range disks {
		if now.Sub(o.OrphanedAt) > retention {
			out = append(out, o.CID)
		}
	}
	return out
}

// CleanupOrphans deletes the orphaned disks older than retention (the director calls it periodically).
func (d *Deployer) CleanupOrphans(now time.Time, retention time.Duration) error {
	disks, err := d.store.OrphanDisks()
	if err != nil {
		return err
	}
	for _, cid := range expiredOrphans(disks, now, retention) {
		if err := os.RemoveAll(d.diskDir(cid)); err != nil {
			return fmt.Errorf("deleting expired orphaned disk %s: %w", cid, err)
		}
		if err := d.store.ForgetOrphanDisk(cid); err != nil && !errors.Is(err, state.ErrNotFound) {
			return err
		}
		d.event(nil, state.Event{User: "scheduler", Action: "delete", ObjectType: "disk", ObjectName: cid, Context: map[string]any{"reason": "orphaned longer than the retention period"}})
		d.log.Info("orphaned disk deleted", zap.String("disk", cid), zap.String("reason", "orphaned longer than "+retention.String()))
	}
	return nil
}

// checkAttach decides whether an orphaned disk may be attached to an instance: it must exist and be stopped
// (`bosh stop` or `bosh stop --hard`), as the director's jobs/attach_disk.rb requires, so no job is using the
// disk it replaces.
func checkAttach(deployment, slug string, inst *state.Instance) error {
	if inst == nil {
		return fmt.Errorf("instance '%s' doesn't exist in deployment '%s'", slug, deployment)
	}
	if inst.State != "stopped" && inst.State != "detached" {
		return fmt.Errorf("instance '%s' in deployment '%s' must be stopped before a disk is attached: run `bosh -d %s stop %s` first",
			instanceName(*inst), deployment, deployment, instanceSlug(*inst))
	}
	return nil
}

// AttachDisk makes an orphaned disk the persistent disk of a stopped instance (`bosh attach-disk`): the disk it
// had, if any, is orphaned in its place (never deleted), and a stopped instance's VM is deleted so that the next
// `bosh start` creates one with the attached disk mounted at /var/vcap/store.
func (d *Deployer) AttachDisk(ctx context.Context, out *tasks.Output, deployment, group, indexOrID, cid string) error {
	dep, err := d.store.Deployment(deployment)
	if err != nil {
		return fmt.Errorf("Deployment '%s' doesn't exist: %w", deployment, ErrNoDeployment)
	}
	orphan, err := d.store.OrphanDisk(cid)
	if err != nil {
		return fmt.Errorf("Disk '%s' is not an orphaned disk (see `bosh disks --orphaned`): %w", cid, ErrNoOrphanDisk)
	}
	sel := Selector{Group: group, Instance: indexOrID}
	var inst *state.Instance
	for i := range dep.Instances {
		if sel.matches(dep.Instances[i]) && group != "" && indexOrID != "" {
			inst = &dep.Instances[i]
			break
		}
	}
	if err := checkAttach(deployment, group+"/"+indexOrID, inst); err != nil {
		return err
	}
	ds := &depState{store: d.store, d: dep}
	stage := out.Stage("Attaching disk", nil, 1)
	return stage.Step(fmt.Sprintf("%s to %s", cid, instanceName(*inst)), func() error {
		if err := d.deleteVM(ctx, inst); err != nil {
			return err
		}
		if err := d.orphanDisk(out, deployment, *inst); err != nil {
			return err
		}
		inst.DiskCID, inst.State = cid, "detached"
		if inst.DiskSize == 0 {
			inst.DiskSize = orphan.Size
		}
		if err := ds.put(*inst); err != nil {
			return err
		}
		if err := d.store.ForgetOrphanDisk(cid); err != nil {
			return err
		}
		d.event(out, state.Event{Action: "attach", ObjectType: "disk", ObjectName: cid, Deployment: deployment, Instance: instanceSlug(*inst)})
		return nil
	})
}
