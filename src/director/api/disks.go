package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

// Disks and locks as the bosh CLI reads them (cloudfoundry/bosh-cli director/orphan_disks.go, director/locks.go,
// director/deployment.go AttachDisk) and the director serves them (api/controllers/disks_controller.rb,
// locks_controller.rb).

// orphanedAtLayout is how the director prints orphaned_at (Ruby's Time#to_s); the CLI's director/time_parser.go
// reads it.
const orphanedAtLayout = "2006-01-02 15:04:05 -0700"

// listDisks serves GET /disks: the orphaned disks (the only disks the endpoint lists; the CLI's `bosh disks`
// needs --orphaned).
func (s *Server) listDisks(*http.Request) (any, error) {
	all, err := s.Store.OrphanDisks()
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, o := range all {
		var az any
		if o.AZ != "" {
			az = o.AZ
		}
		out = append(out, map[string]any{"disk_cid": o.CID, "size": o.Size, "az": az, "deployment_name": o.Deployment,
			"instance_name": o.Instance, "cloud_properties": map[string]any{}, "orphaned_at": o.OrphanedAt.UTC().Format(orphanedAtLayout)})
	}
	return out, nil
}

// deleteDisk serves DELETE /disks/:cid (`bosh delete-disk`). `?orphan=true` (`bosh orphan-disk`, orphaning an
// attached disk) is not supported: stop the instance with --hard and delete it from the manifest instead.
func (s *Server) deleteDisk(r *http.Request) (any, error) {
	dep, err := s.deployerOr503()
	if err != nil {
		return nil, err
	}
	cid := r.PathValue("cid")
	if o := r.URL.Query().Get("orphan"); o != "" && o != "false" {
		return nil, errorf(http.StatusBadRequest, "orphaning an attached disk is not supported by the local director; scale the instance away (its disk is orphaned) instead")
	}
	if _, err := s.Store.OrphanDisk(cid); errors.Is(err, state.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "Orphan disk '%s' not found", cid)
	}
	t, err := s.Tasks.Submit("delete orphan disks", s.user(r), "", func(_ context.Context, out *tasks.Output) error {
		return dep.DeleteOrphanDisk(out, cid)
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}

// attachDisk serves PUT /disks/:cid/attachments?deployment=&job=&instance_id= (`bosh attach-disk`); it holds the
// deployment's lock like any task that changes the deployment.
func (s *Server) attachDisk(r *http.Request) (any, error) {
	dep, err := s.deployerOr503()
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, r.Body)
	q := r.URL.Query()
	cid, name, job, id := r.PathValue("cid"), q.Get("deployment"), q.Get("job"), q.Get("instance_id")
	if job == "" || id == "" {
		return nil, errorf(http.StatusBadRequest, "attach disk: job and instance_id are required (bosh attach-disk GROUP/ID DISK_CID)")
	}
	if _, err := s.existingDeployment(name); err != nil {
		return nil, err
	}
	t, err := s.Tasks.Submit(fmt.Sprintf("attach disk '%s' to '%s/%s'", cid, job, id), s.user(r), name, func(ctx context.Context, out *tasks.Output) error {
		return dep.AttachDisk(ctx, out, name, job, id, cid)
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}

// lockTimeout is how far ahead a held lock's expiry is reported: the director renews its locks while the task
// runs and prints the expiry as seconds with a fraction.
const lockTimeout = 60 * time.Second

// listLocks serves GET /locks: one deployment lock per deployment a task is changing.
func (s *Server) listLocks(*http.Request) (any, error) {
	out := []map[string]any{}
	for _, l := range s.Tasks.Locks() {
		out = append(out, map[string]any{"type": "deployment", "resource": []string{l.Deployment},
			"timeout": fmt.Sprintf("%.6f", float64(time.Now().Add(lockTimeout).UnixMicro())/1e6), "task_id": strconv.Itoa(l.TaskID)})
	}
	return out, nil
}
