package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/etcd-release/etcd-release/src/director/tasks"
)

// scanProblems serves POST /deployments/D/scans (`bosh cck` first step): a task holding the deployment's lock.
func (s *Server) scanProblems(r *http.Request) (any, error) {
	dep, name, err := s.deploymentDeployer(r)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, r.Body)
	t, err := s.Tasks.Submit("scan cloud", s.user(r), name, func(ctx context.Context, out *tasks.Output) error {
		return dep.Scan(ctx, out, name)
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}

// listProblems serves GET /deployments/D/problems: the open problems of the last scan, as the CLI's
// director/problems.go Problem reads them.
func (s *Server) listProblems(r *http.Request) (any, error) {
	dep, name, err := s.deploymentDeployer(r)
	if err != nil {
		return nil, err
	}
	probs := dep.ListProblems(name)
	if probs == nil {
		return []any{}, nil
	}
	return probs, nil
}

// resolveProblems serves PUT /deployments/D/problems with {"resolutions":{"<id>":"<name>"|null}} (null is
// --auto's: each type's automatic resolution); max_in_flight_overrides is accepted and ignored (the
// resolutions run one after the other).
func (s *Server) resolveProblems(r *http.Request) (any, error) {
	dep, name, err := s.deploymentDeployer(r)
	if err != nil {
		return nil, err
	}
	var req struct {
		Resolutions map[string]*string `json:"resolutions"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &req); err != nil || strings.TrimSpace(string(b)) == "" {
		return nil, errorf(http.StatusBadRequest, `problem resolutions: expected {"resolutions":{"<problem id>":"<resolution>"}}`)
	}
	t, err := s.Tasks.Submit("apply resolutions", s.user(r), name, func(ctx context.Context, out *tasks.Output) error {
		return dep.Resolve(ctx, out, name, req.Resolutions)
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}
