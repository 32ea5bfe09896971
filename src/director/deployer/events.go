package deployer

import (
	"errors"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

// The event log records what `bosh events` shows: a begin event when a deployment, instance or errand operation
// starts and an end event naming it as parent (with the error, if it failed), as the director's
// api/event_manager.rb and jobs/*.rb do.

// instanceSlug is how events and orphaned disks name an instance: group/id.
func instanceSlug(i state.Instance) string { return i.Group + "/" + i.ID }

// instanceAction is the event action of one instance update: what the override asks for, else create for an
// instance that had no saved record and update otherwise.
func instanceAction(o override, desired string, hadPrev bool) string {
	switch {
	case o.recreate:
		return "recreate"
	case o.restart:
		return "restart"
	case desired == "stopped" || desired == "detached":
		return "stop"
	case o.state == "started":
		return "start"
	case !hadPrev:
		return "create"
	}
	return "update"
}

// begin records the begin event of an operation and returns a function that records its end event.
func (d *Deployer) begin(out *tasks.Output, e state.Event) func(error) {
	b := d.event(out, e)
	return func(err error) {
		end := e
		end.ParentID, end.Context = b.ID, nil
		if err != nil {
			end.Error = err.Error()
		}
		d.event(out, end)
	}
}

// deploymentAction is create for a deployment the director does not know yet, update otherwise.
func (d *Deployer) deploymentAction(name string) string {
	if _, err := d.store.Deployment(name); errors.Is(err, state.ErrNotFound) {
		return "create"
	}
	return "update"
}
