package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/director/deployer"
	"github.com/etcd-release/etcd-release/src/director/manifest"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

// deployer returns the Deployer or a 503 when the director runs without VMs (API-only mode in tests).
func (s *Server) deployerOr503() (*deployer.Deployer, error) {
	if s.Deployer == nil {
		return nil, errorf(http.StatusServiceUnavailable, "this director runs without a VM backend (no bridge): it cannot deploy")
	}
	return s.Deployer, nil
}

// deploymentDeployer is the preamble of every handler that acts on the deployment named in the path: the
// deployer (503 without a VM backend) and the deployment's name, which must exist (404 otherwise).
func (s *Server) deploymentDeployer(r *http.Request) (*deployer.Deployer, string, error) {
	dep, err := s.deployerOr503()
	if err != nil {
		return nil, "", err
	}
	name := r.PathValue("name")
	if _, err := s.existingDeployment(name); err != nil {
		return nil, "", err
	}
	return dep, name, nil
}

func (s *Server) existingDeployment(name string) (state.Deployment, error) {
	d, err := s.Store.Deployment(name)
	if errors.Is(err, state.ErrNotFound) {
		return d, errorf(http.StatusNotFound, "Deployment '%s' doesn't exist", name)
	}
	return d, err
}

func (s *Server) deploy(r *http.Request) (any, error) {
	dep, err := s.deployerOr503()
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(body, &probe); err != nil {
		return nil, errorf(http.StatusBadRequest, "deployment manifest is not valid YAML: %v", err)
	}
	if probe.Name == "" {
		return nil, errorf(http.StatusBadRequest, "deployment manifest: 'name' is required")
	}
	if _, err := manifest.ParseDeployment(body); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	t, err := s.Tasks.Submit("create deployment", s.user(r), probe.Name, func(ctx context.Context, out *tasks.Output) error {
		return dep.Deploy(ctx, out, string(body))
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}

func (s *Server) deploymentDiff(r *http.Request) (any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	old := ""
	if d, err := s.Store.Deployment(r.PathValue("name")); err == nil {
		old = d.Manifest
	} else if !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	ctx := map[string]any{"cloud_config_id": nil, "runtime_config_ids": []any{}}
	if cc, err := s.Store.LatestCloudConfig(); err == nil {
		ctx["cloud_config_id"] = cc.ID
	}
	return map[string]any{"context": ctx, "diff": lineDiff(old, string(body))}, nil
}

func (s *Server) deleteDeployment(r *http.Request) (any, error) {
	dep, name, err := s.deploymentDeployer(r)
	if err != nil {
		return nil, err
	}
	force := r.URL.Query().Get("force") == "true"
	t, err := s.Tasks.Submit("delete deployment "+name, s.user(r), name, func(ctx context.Context, out *tasks.Output) error {
		return dep.Delete(ctx, out, name, force)
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}

func (s *Server) instances(r *http.Request) (any, error) { return s.listInstances(r, false) }
func (s *Server) vms(r *http.Request) (any, error)       { return s.listInstances(r, true) }

// listInstances: with format=full a task whose result has one JSON line per instance; otherwise the plain list.
func (s *Server) listInstances(r *http.Request, vmsOnly bool) (any, error) {
	dep, name, err := s.deploymentDeployer(r)
	if err != nil {
		return nil, err
	}
	if r.URL.Query().Get("format") != "full" {
		infos, err := dep.Instances(r.Context(), name, vmsOnly)
		if err != nil {
			return nil, err
		}
		out := []map[string]any{}
		for _, i := range infos {
			out = append(out, map[string]any{"agent_id": i.AgentID, "cid": i.VMCID, "job": i.JobName, "index": i.Index, "id": i.ID,
				"az": i.AZ, "ips": i.IPs, "vm_created_at": i.VMCreatedAt, "expects_vm": i.State != "detached"})
		}
		return out, nil
	}
	t, err := s.Tasks.SubmitReadOnly("retrieve vm-stats", s.user(r), name, func(ctx context.Context, out *tasks.Output) error {
		infos, err := dep.Instances(ctx, name, vmsOnly)
		if err != nil {
			return err
		}
		for _, i := range infos {
			if err := out.ResultLine(i); err != nil {
				return err
			}
		}
		out.SetSummary(fmt.Sprintf("%d instances", len(infos)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}

// changeState serves PUT /deployments/D/jobs/{*|group|group/index-or-id}?state=...
func (s *Server) changeState(r *http.Request) (any, error) {
	dep, err := s.deployerOr503()
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	d, err := s.existingDeployment(name)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, r.Body)
	rest := r.PathValue("rest")
	group, inst, _ := strings.Cut(rest, "/")
	sel := deployer.Selector{Group: group, Instance: inst}
	if group == "*" {
		sel = deployer.Selector{}
	}
	matched := false
	for _, i := range d.Instances {
		matched = matched || (sel.Group == "" || i.Group == sel.Group) && (sel.Instance == "" || sel.Instance == i.ID || sel.Instance == fmt.Sprint(i.Index))
	}
	if !matched {
		return nil, errorf(http.StatusNotFound, "Instance group or instance '%s' doesn't exist in deployment '%s'", rest, name)
	}
	q := r.URL.Query()
	target := q.Get("state")
	desc := map[string]string{"started": "start instance", "stopped": "stop instance", "detached": "stop instance",
		"restart": "restart instance", "recreate": "recreate instance"}[target]
	if desc == "" {
		return nil, errorf(http.StatusBadRequest, "state %q: use started, stopped, detached, restart or recreate", target)
	}
	opts := deployer.ChangeStateOptions{SkipDrain: q.Get("skip_drain") != "" && q.Get("skip_drain") != "false", Force: q.Get("force") == "true"}
	t, err := s.Tasks.Submit(desc, s.user(r), name, func(ctx context.Context, out *tasks.Output) error {
		return dep.ChangeState(ctx, out, name, sel, target, opts)
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}

func (s *Server) listErrands(r *http.Request) (any, error) {
	d, err := s.existingDeployment(r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	m, err := manifest.ParseDeployment([]byte(d.Manifest))
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, g := range m.InstanceGroups {
		if g.Lifecycle == manifest.LifecycleErrand {
			out = append(out, map[string]any{"name": g.Name})
		}
	}
	return out, nil
}

func (s *Server) runErrand(r *http.Request) (any, error) {
	dep, err := s.deployerOr503()
	if err != nil {
		return nil, err
	}
	name, errand := r.PathValue("name"), r.PathValue("errand")
	if _, err := s.existingDeployment(name); err != nil {
		return nil, err
	}
	var req struct {
		Instances []deployer.ErrandTarget `json:"instances"`
		KeepAlive bool                    `json:"keep-alive"`
	}
	if b, _ := io.ReadAll(r.Body); len(strings.TrimSpace(string(b))) > 0 {
		if err := json.Unmarshal(b, &req); err != nil {
			return nil, errorf(http.StatusBadRequest, "errand run request: %v", err)
		}
	}
	t, err := s.Tasks.Submit(fmt.Sprintf("run errand %s from deployment %s", errand, name), s.user(r), name, func(ctx context.Context, out *tasks.Output) error {
		return dep.RunErrand(ctx, out, name, errand, req.Instances, req.KeepAlive)
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}
