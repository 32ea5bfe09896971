package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/etcd-release/etcd-release/src/director/deployer"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

// ssh serves POST /deployments/D/ssh as the bosh CLI sends it (cloudfoundry/bosh-cli director/ssh.go): command
// setup with params user and public_key, or cleanup with params user_regex; both are tasks holding the
// deployment's lock; setup's result output is one JSON array.
func (s *Server) ssh(r *http.Request) (any, error) {
	dep, name, err := s.deploymentDeployer(r)
	if err != nil {
		return nil, err
	}
	var req struct {
		Command string             `json:"command"`
		Target  deployer.SSHTarget `json:"target"`
		Params  map[string]string  `json:"params"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, errorf(http.StatusBadRequest, "ssh request: %v", err)
	}
	var fn tasks.Func
	switch req.Command {
	case "setup":
		user, key := req.Params["user"], req.Params["public_key"]
		if user == "" || key == "" {
			return nil, errorf(http.StatusBadRequest, "ssh setup: params user and public_key are required")
		}
		fn = func(ctx context.Context, out *tasks.Output) error {
			res, err := dep.SSHSetup(ctx, out, name, req.Target, user, key)
			if err != nil {
				return err
			}
			return out.ResultLine(res)
		}
	case "cleanup":
		fn = func(ctx context.Context, out *tasks.Output) error {
			return dep.SSHCleanup(ctx, out, name, req.Target, req.Params["user_regex"])
		}
	default:
		return nil, errorf(http.StatusBadRequest, "ssh command %q: use setup or cleanup", req.Command)
	}
	t, err := s.Tasks.Submit("ssh: "+req.Command, s.user(r), name, fn)
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}
