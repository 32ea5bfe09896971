package api

import (
	"archive/tar"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

func (s *Server) routes() {
	s.handle("GET /info", s.info, false)
	s.handle("GET /tasks", s.listTasks, true)
	s.handle("GET /tasks/{id}", s.getTask, true)
	s.handle("GET /tasks/{id}/output", s.taskOutput, true)
	s.handle("POST /stemcell_uploads", s.stemcellUploadNeeded, true)
	s.handle("POST /stemcells", s.uploadStemcell, true)
	s.handle("GET /stemcells", s.listStemcells, true)
	s.handle("POST /packages/matches", s.packageMatches, true)
	s.handle("POST /packages/matches_compiled", s.packageMatches, true)
	s.handle("POST /releases", s.uploadRelease, true)
	s.handle("GET /releases", s.listReleases, true)
	s.handle("POST /cloud_configs/diff", s.cloudConfigDiff, true)
	s.handle("POST /cloud_configs", s.updateCloudConfig, true)
	s.handle("GET /cloud_configs", s.listCloudConfigs, true)
	s.handle("GET /configs", s.listConfigs, true)
	s.handle("GET /deployments", s.listDeployments, true)
	s.handle("GET /deployments/{name}", s.getDeployment, true)
	s.handle("POST /deployments", s.deploy, true)
	s.handle("POST /deployments/{name}/diff", s.deploymentDiff, true)
	s.handle("DELETE /deployments/{name}", s.deleteDeployment, true)
	s.handle("GET /deployments/{name}/instances", s.instances, true)
	s.handle("GET /deployments/{name}/vms", s.vms, true)
	s.handle("PUT /deployments/{name}/jobs/{rest...}", s.changeState, true)
	s.handle("GET /deployments/{name}/errands", s.listErrands, true)
	s.handle("POST /deployments/{name}/errands/{errand}/runs", s.runErrand, true)
	s.handle("GET /deployments/{name}/jobs/{job}/{index}/logs", s.fetchLogs, true)
	s.handle("GET /resources/{id}", s.getResource, true)
	s.handle("POST /deployments/{name}/ssh", s.ssh, true)
	s.handle("POST /deployments/{name}/scans", s.scanProblems, true)
	s.handle("GET /deployments/{name}/problems", s.listProblems, true)
	s.handle("PUT /deployments/{name}/problems", s.resolveProblems, true)
	s.handle("GET /disks", s.listDisks, true)
	s.handle("DELETE /disks/{cid}", s.deleteDisk, true)
	s.handle("PUT /disks/{cid}/attachments", s.attachDisk, true)
	s.handle("GET /locks", s.listLocks, true)
	s.handle("GET /events", s.listEvents, true)
	s.handle("GET /events/{id}", s.getEvent, true)
}

func (s *Server) info(r *http.Request) (any, error) {
	var user any
	if u := s.user(r); u != "" {
		user = u
	}
	return map[string]any{
		"name": s.Name, "uuid": s.UUID, "version": "0.0.0 (etcd-release local director)", "user": user, "cpi": "local-namespaces",
		"user_authentication": map[string]any{"type": "basic", "options": map[string]any{}},
		"features":            map[string]any{},
	}, nil
}

func taskJSON(t state.Task) map[string]any {
	var deployment any
	if t.Deployment != "" {
		deployment = t.Deployment
	}
	return map[string]any{"id": t.ID, "state": t.State, "description": t.Description, "timestamp": t.Timestamp, "started_at": t.StartedAt,
		"result": t.Result, "user": t.User, "deployment": deployment, "context_id": t.ContextID}
}

func (s *Server) listTasks(r *http.Request) (any, error) {
	all, err := s.Store.Tasks()
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	states := map[string]bool{}
	for _, st := range strings.Split(q.Get("state"), ",") {
		if st != "" {
			states[st] = true
		}
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	out := []map[string]any{}
	for _, t := range all {
		if len(states) > 0 && !states[t.State] {
			continue
		}
		if d := q.Get("deployment"); d != "" && t.Deployment != d {
			continue
		}
		out = append(out, taskJSON(t))
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

func (s *Server) task(r *http.Request) (state.Task, error) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		return state.Task{}, errorf(http.StatusNotFound, "Task %q not found", r.PathValue("id"))
	}
	t, err := s.Store.Task(id)
	if errors.Is(err, state.ErrNotFound) {
		return state.Task{}, errorf(http.StatusNotFound, "Task %d not found", id)
	}
	return t, err
}

func (s *Server) getTask(r *http.Request) (any, error) {
	t, err := s.task(r)
	if err != nil {
		return nil, err
	}
	return taskJSON(t), nil
}

// taskOutput serves event, result or debug output; `Range: bytes=N-` gives 206 with the bytes from N, 416 when
// there is nothing new, and a task without output answers 204.
func (s *Server) taskOutput(r *http.Request) (any, error) {
	t, err := s.task(r)
	if err != nil {
		return nil, err
	}
	kind := r.URL.Query().Get("type")
	switch kind {
	case tasks.Event, tasks.Result, tasks.Debug:
	case "":
		kind = tasks.Debug
	default:
		return nil, errorf(http.StatusBadRequest, "unknown output type %q; use event, result or debug", kind)
	}
	b, err := os.ReadFile(tasks.Path(s.Store.TaskDir(t.ID), kind))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	rng := r.Header.Get("Range")
	if rng == "" {
		if len(b) == 0 {
			return raw{status: http.StatusNoContent}, nil
		}
		return raw{status: http.StatusOK, contentType: "text/plain", body: b}, nil
	}
	spec, ok := strings.CutPrefix(rng, "bytes=")
	from, to, _ := strings.Cut(spec, "-")
	start, err := strconv.Atoi(from)
	if !ok || err != nil || start < 0 {
		return nil, errorf(http.StatusBadRequest, "unsupported Range %q; use bytes=N-", rng)
	}
	end := len(b) - 1
	if to != "" {
		if e, err := strconv.Atoi(to); err == nil && e < end {
			end = e
		}
	}
	if start >= len(b) || start > end {
		return raw{status: http.StatusRequestedRangeNotSatisfiable, header: map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", len(b))}}, nil
	}
	return raw{status: http.StatusPartialContent, contentType: "text/plain", body: b[start : end+1],
		header: map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/%d", start, end, len(b))}}, nil
}

func (s *Server) stemcellUploadNeeded(r *http.Request) (any, error) {
	var req struct {
		Stemcell struct{ Name, Version string } `json:"stemcell"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, errorf(http.StatusBadRequest, "stemcell upload request: %v", err)
	}
	all, err := s.Store.Stemcells()
	if err != nil {
		return nil, err
	}
	for _, sc := range all {
		if sc.Name == req.Stemcell.Name && sc.Version == req.Stemcell.Version {
			return map[string]any{"needed": false}, nil
		}
	}
	return map[string]any{"needed": true}, nil
}

// saveBody stores an uploaded tarball in the state dir's upload area.
func (s *Server) saveBody(r *http.Request) (string, error) {
	dir := filepath.Join(s.Store.Dir(), "uploads")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "upload-*.tgz")
	if err != nil {
		return "", err
	}
	defer f.Close()
	limit := cmp.Or(s.MaxUploadBytes, DefaultMaxUploadBytes)
	if _, err := io.Copy(f, http.MaxBytesReader(nil, r.Body, limit)); err != nil {
		os.Remove(f.Name())
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", errorf(http.StatusRequestEntityTooLarge, "upload refused: it is larger than the director's limit of %d bytes (local-director serve --max-upload-mb)", limit)
		}
		return "", errorf(http.StatusBadRequest, "reading upload: %v", err)
	}
	return f.Name(), nil
}

func (s *Server) uploadStemcell(r *http.Request) (any, error) {
	path, err := s.saveBody(r)
	if err != nil {
		return nil, err
	}
	t, err := s.Tasks.Submit("create stemcell", s.user(r), "", func(_ context.Context, out *tasks.Output) error {
		defer os.Remove(path)
		var sc state.Stemcell
		stage := out.Stage("Update stemcell", nil, 2)
		if err := stage.Step("Verifying manifest", func() error {
			mf, err := readTarEntry(path, "stemcell.MF")
			if err != nil {
				return err
			}
			var m struct {
				Name            string `yaml:"name"`
				Version         any    `yaml:"version"`
				OperatingSystem string `yaml:"operating_system"`
			}
			if err := yaml.Unmarshal(mf, &m); err != nil {
				return fmt.Errorf("stemcell.MF: %w", err)
			}
			if m.Name == "" || m.Version == nil {
				return errors.New("stemcell.MF: name and version are required")
			}
			sc = state.Stemcell{Name: m.Name, Version: fmt.Sprint(m.Version), OperatingSystem: m.OperatingSystem, CID: "local-" + m.Name + "-" + fmt.Sprint(m.Version)}
			return nil
		}); err != nil {
			return err
		}
		if err := stage.Step("Save stemcell "+sc.Name+"/"+sc.Version, func() error { return s.Store.PutStemcell(sc) }); err != nil {
			return err
		}
		out.SetSummary(fmt.Sprintf("/stemcells/%s/%s", sc.Name, sc.Version))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}

func (s *Server) listStemcells(*http.Request) (any, error) {
	all, err := s.Store.Stemcells()
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, sc := range all {
		out = append(out, map[string]any{"name": sc.Name, "version": sc.Version, "operating_system": sc.OperatingSystem, "cid": sc.CID, "cpi": "", "deployments": []any{}})
	}
	return out, nil
}

// packageMatches tells the CLI which packages it may leave out of an upload; this director always wants the
// whole release, so nothing matches.
func (s *Server) packageMatches(r *http.Request) (any, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	return []string{}, nil
}

func (s *Server) uploadRelease(r *http.Request) (any, error) {
	path, err := s.saveBody(r)
	if err != nil {
		return nil, err
	}
	t, err := s.Tasks.Submit("create release", s.user(r), "", func(_ context.Context, out *tasks.Output) error {
		defer os.Remove(path)
		var rel *release.Release
		stage := out.Stage("Extracting release", nil, 1)
		if err := stage.Step("Extracting release", func() error {
			var err error
			rel, err = release.Read(path)
			return err
		}); err != nil {
			return err
		}
		m := rel.Manifest
		existing, err := s.Store.Releases()
		if err != nil {
			return err
		}
		for _, rv := range existing {
			if rv.Name == m.Name && rv.Version == m.Version {
				out.SetSummary(fmt.Sprintf("release %s/%s already exists", m.Name, m.Version))
				return nil
			}
		}
		save := out.Stage("Creating new packages and jobs", nil, 1)
		return save.Step(fmt.Sprintf("%s/%s", m.Name, m.Version), func() error {
			dest := s.Store.ReleaseTarballPath(m.Name, m.Version)
			if err := os.Rename(path, dest); err != nil {
				return err
			}
			out.SetSummary(fmt.Sprintf("Created release '%s/%s'", m.Name, m.Version))
			return s.Store.PutRelease(state.ReleaseVersion{Name: m.Name, Version: m.Version, CommitHash: m.CommitHash, UncommittedChanges: m.UncommittedChanges, Tarball: dest, UploadedAt: time.Now().UTC()})
		})
	})
	if err != nil {
		return nil, err
	}
	return taskRedirect{t.ID}, nil
}

func (s *Server) listReleases(*http.Request) (any, error) {
	all, err := s.Store.Releases()
	if err != nil {
		return nil, err
	}
	deployed := map[string]bool{}
	deps, err := s.Store.Deployments()
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		for _, r := range d.Releases {
			deployed[r.Name+"/"+r.Version] = true
		}
	}
	byName := map[string][]map[string]any{}
	var names []string
	for _, rv := range all {
		if _, ok := byName[rv.Name]; !ok {
			names = append(names, rv.Name)
		}
		byName[rv.Name] = append(byName[rv.Name], map[string]any{"version": rv.Version, "commit_hash": rv.CommitHash,
			"uncommitted_changes": rv.UncommittedChanges, "currently_deployed": deployed[rv.Name+"/"+rv.Version], "job_names": []string{}})
	}
	out := []map[string]any{}
	for _, n := range names {
		out = append(out, map[string]any{"name": n, "release_versions": byName[n]})
	}
	return out, nil
}

func (s *Server) cloudConfigDiff(r *http.Request) (any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	old := ""
	if cc, err := s.Store.LatestCloudConfig(); err == nil {
		old = cc.Content
	} else if !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	return map[string]any{"diff": lineDiff(old, string(body))}, nil
}

func (s *Server) updateCloudConfig(r *http.Request) (any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	var probe map[string]any
	if err := yaml.Unmarshal(body, &probe); err != nil {
		return nil, errorf(http.StatusBadRequest, "cloud config is not valid YAML: %v", err)
	}
	if _, ok := probe["networks"]; !ok {
		return nil, errorf(http.StatusBadRequest, "cloud config: 'networks' is required")
	}
	if _, err := s.Store.PutCloudConfig(string(body)); err != nil {
		return nil, err
	}
	return raw{status: http.StatusCreated}, nil
}

func (s *Server) listCloudConfigs(*http.Request) (any, error) {
	cc, err := s.Store.LatestCloudConfig()
	if errors.Is(err, state.ErrNotFound) {
		return []any{}, nil
	}
	if err != nil {
		return nil, err
	}
	return []map[string]any{{"properties": cc.Content, "created_at": cc.CreatedAt.Format(time.RFC3339)}}, nil
}

// listConfigs serves the generic configs endpoint the CLI asks before a deploy; this director keeps no
// generic configs.
func (s *Server) listConfigs(*http.Request) (any, error) { return []any{}, nil }

func (s *Server) listDeployments(*http.Request) (any, error) {
	all, err := s.Store.Deployments()
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, d := range all {
		out = append(out, map[string]any{"name": d.Name, "releases": d.Releases, "stemcells": d.Stemcells, "teams": []any{}, "cloud_config": "latest"})
	}
	return out, nil
}

func (s *Server) getDeployment(r *http.Request) (any, error) {
	d, err := s.Store.Deployment(r.PathValue("name"))
	if errors.Is(err, state.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "Deployment '%s' doesn't exist", r.PathValue("name"))
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"manifest": d.Manifest}, nil
}

// lineDiff is the director's diff format: [[line, "added"|"removed"|null], ...], computed with a longest
// common subsequence over lines.
func lineDiff(old, new string) [][2]any {
	a, b := splitLines(old), splitLines(new)
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	out := [][2]any{}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out = append(out, [2]any{a[i], nil})
			i, j = i+1, j+1
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			out = append(out, [2]any{b[j], "added"})
			j++
		default:
			out = append(out, [2]any{a[i], "removed"})
			i++
		}
	}
	for _, l := range out {
		if l[1] != nil {
			return out
		}
	}
	return [][2]any{}
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func readTarEntry(tgz, name string) ([]byte, error) {
	f, err := os.Open(tgz)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("not a gzipped tarball: %w", err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s not found in the tarball", name)
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			return io.ReadAll(io.LimitReader(tr, 1<<20))
		}
	}
}
