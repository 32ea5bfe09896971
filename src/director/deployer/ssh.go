package deployer

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

// `bosh ssh` (cloudfoundry/bosh-cli director/ssh.go): POST /deployments/D/ssh with command setup (params user,
// public_key) or cleanup (params user_regex) and a target {job, indexes, ids}; setup's task result is one JSON
// array with, per instance, status, job, index, id, ip and host_public_key (no gateway: the host reaches every
// VM on the bridge). The VM side is src/director/vm/ssh.go.

// SSHTarget selects instances as the CLI's target does: no job = every instance; no indexes or ids = the group.
type SSHTarget struct {
	Job     string   `json:"job"`
	Indexes []string `json:"indexes"`
	IDs     []string `json:"ids"`
}

func (t SSHTarget) matches(inst state.Instance) bool {
	if t.Job != "" && t.Job != inst.Group {
		return false
	}
	if len(t.Indexes) == 0 && len(t.IDs) == 0 {
		return true
	}
	return slices.Contains(t.IDs, inst.ID) || slices.Contains(t.Indexes, strconv.Itoa(inst.Index))
}

// SSHResult is one instance's line of the setup result.
type SSHResult struct {
	Status        string `json:"status"`
	Job           string `json:"job"`
	Index         int    `json:"index"`
	ID            string `json:"id"`
	IP            string `json:"ip"`
	HostPublicKey string `json:"host_public_key"`
	GatewayUser   string `json:"gateway_user"`
	GatewayHost   string `json:"gateway_host"`
}

func (d *Deployer) sshInstances(name string, target SSHTarget) ([]state.Instance, error) {
	dep, err := d.store.Deployment(name)
	if errors.Is(err, state.ErrNotFound) {
		return nil, fmt.Errorf("Deployment '%s' doesn't exist: %w", name, ErrNoDeployment)
	}
	if err != nil {
		return nil, err
	}
	var out []state.Instance
	for _, inst := range dep.Instances {
		if target.matches(inst) && d.liveVM(inst) != nil {
			out = append(out, inst)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no running VM of deployment '%s' matches the ssh target (group %q)", name, target.Job)
	}
	return out, nil
}

// SSHSetup starts sshd on the selected VMs (once) and creates the user with the public key on each.
func (d *Deployer) SSHSetup(ctx context.Context, out *tasks.Output, name string, target SSHTarget, user, publicKey string) ([]SSHResult, error) {
	insts, err := d.sshInstances(name, target)
	if err != nil {
		return nil, err
	}
	stage := out.Stage("Setting up ssh", nil, len(insts))
	var results []SSHResult
	for _, inst := range insts {
		err := stage.Step(instanceName(inst), func() error {
			v := d.liveVM(inst)
			if v == nil {
				return fmt.Errorf("'%s': the VM is not running", instanceName(inst))
			}
			key, err := v.EnsureSSHD(ctx)
			if err != nil {
				return err
			}
			if err := v.AddSSHUser(ctx, user, publicKey); err != nil {
				return fmt.Errorf("'%s': %w", instanceName(inst), err)
			}
			results = append(results, SSHResult{Status: "success", Job: inst.Group, Index: inst.Index, ID: inst.ID, IP: inst.IP, HostPublicKey: key})
			d.event(out, state.Event{Action: "setup ssh", ObjectType: "instance", ObjectName: instanceSlug(inst), Deployment: name,
				Instance: instanceSlug(inst), Context: map[string]any{"user": user}})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}

// SSHCleanup removes the users matching userRegex from the selected VMs.
func (d *Deployer) SSHCleanup(ctx context.Context, out *tasks.Output, name string, target SSHTarget, userRegex string) error {
	re, err := regexp.Compile(userRegex)
	if err != nil || userRegex == "" || userRegex == "^" {
		return fmt.Errorf("ssh cleanup: user_regex %q must name the session's users (e.g. ^bosh_abc)", userRegex)
	}
	insts, err := d.sshInstances(name, target)
	if err != nil {
		return err
	}
	stage := out.Stage("Cleaning up ssh", nil, len(insts))
	for _, inst := range insts {
		if err := stage.Step(instanceName(inst), func() error {
			v := d.liveVM(inst)
			if v == nil {
				return nil
			}
			names, err := v.RemoveSSHUsers(ctx, re)
			if err != nil {
				return err
			}
			d.event(out, state.Event{Action: "cleanup ssh", ObjectType: "instance", ObjectName: instanceSlug(inst), Deployment: name,
				Instance: instanceSlug(inst), Context: map[string]any{"user_regex": userRegex, "users": names}})
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
