package api

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/etcd-release/etcd-release/src/director/deployer"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

// fetchLogs serves GET /deployments/D/jobs/G/I/logs?type=job[,agent]&filters=a,b as the bosh CLI sends it
// (cloudfoundry/bosh-cli director/deployment.go FetchLogs; "*" for all groups or instances): a task whose result
// field is the blob id of the tarball, served by GET /resources/ID.
func (s *Server) fetchLogs(r *http.Request) (any, error) {
	dep, name, err := s.deploymentDeployer(r)
	if err != nil {
		return nil, err
	}
	sel := deployer.Selector{Group: r.PathValue("job"), Instance: r.PathValue("index")}
	if sel.Group == "*" {
		sel = deployer.Selector{}
	}
	if sel.Instance == "*" {
		sel.Instance = ""
	}
	q := r.URL.Query()
	types, filters := splitList(q.Get("type")), splitList(q.Get("filters"))
	t, err := s.Tasks.SubmitReadOnly("fetch logs", s.user(r), name, func(ctx context.Context, out *tasks.Output) error {
		id, err := dep.FetchLogs(ctx, out, name, sel, types, filters)
		if err != nil {
			return err
		}
		out.SetSummary(id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var blobID = regexp.MustCompile(`^[0-9a-f-]{36}$`)

// getResource serves GET /resources/ID: a blob a task produced, deleted once it has been sent (the director's
// resources controller sends such files once).
func (s *Server) getResource(r *http.Request) (any, error) {
	dep, err := s.deployerOr503()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if !blobID.MatchString(id) {
		return nil, errorf(http.StatusNotFound, "Resource '%s' not found", id)
	}
	p := filepath.Join(dep.BlobDir(), id)
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil, errorf(http.StatusNotFound, "Resource '%s' not found", id)
	}
	if err != nil {
		return nil, err
	}
	_ = os.Remove(p)
	return raw{status: http.StatusOK, contentType: "application/x-compressed", body: b}, nil
}
