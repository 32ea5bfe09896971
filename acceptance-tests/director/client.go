// Package director is the acceptance suite's own client for the BOSH director API subset in
// docs/director-api.md. It uses nothing of the local director's code, so the suite runs unchanged
// against the local director or a real BOSH director (basic auth; UAA is not supported).
package director

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// Client talks to one director.
type Client struct {
	base     *url.URL
	user     string
	password string
	http     *http.Client
	// PollInterval is how often task state and output are polled (500 ms, as the bosh CLI).
	PollInterval time.Duration
}

// New returns a client for the director at rawURL whose certificate is signed by caPEM.
func New(rawURL string, caPEM []byte, user, password string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(rawURL, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("director URL %q: must be https://host[:port]", rawURL)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("director CA certificate: no PEM certificate found")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	hc := &http.Client{
		Transport: tr,
		// Long operations answer 302 to /tasks/N: keep the answer instead of following it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{base: u, user: user, password: password, http: hc, PollInterval: 500 * time.Millisecond}, nil
}

// HTTPError is a response with an unexpected status.
type HTTPError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

// IsNotFound reports whether err is a 404 from the director.
func IsNotFound(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == http.StatusNotFound
}

type request struct {
	method      string
	path        string
	query       url.Values
	body        io.Reader
	contentType string
	header      http.Header
	noAuth      bool
}

func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	u := *c.base
	u.Path = path.Join(c.base.Path, r.path)
	u.RawQuery = r.query.Encode()
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), r.body)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if !r.noAuth {
		req.SetBasicAuth(c.user, c.password)
	}
	return c.http.Do(req)
}

// call does r and decodes a 2xx JSON answer into out (when out is not nil).
func (c *Client) call(ctx context.Context, r request, out any) error {
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &HTTPError{Method: r.method, Path: r.path, Status: resp.StatusCode, Body: string(body)}
	}
	if out == nil || len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", r.method, r.path, err)
	}
	return nil
}

// startTask does r, which must answer exactly 302 with Location /tasks/N, and returns N.
func (c *Client) startTask(ctx context.Context, r request) (int, error) {
	resp, err := c.do(ctx, r)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusFound {
		return 0, &HTTPError{Method: r.method, Path: r.path, Status: resp.StatusCode, Body: string(body)}
	}
	return TaskIDFromLocation(resp.Header.Get("Location"))
}

// TaskIDFromLocation reads N from a Location header "/tasks/N" (absolute URLs too).
func TaskIDFromLocation(loc string) (int, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return 0, fmt.Errorf("task location %q: %w", loc, err)
	}
	dir, file := path.Split(strings.TrimRight(u.Path, "/"))
	id, err := strconv.Atoi(file)
	if err != nil || !strings.HasSuffix(dir, "/tasks/") || id <= 0 {
		return 0, fmt.Errorf("task location %q is not /tasks/N", loc)
	}
	return id, nil
}

// Info is GET /info.
type Info struct {
	Name               string  `json:"name"`
	UUID               string  `json:"uuid"`
	Version            string  `json:"version"`
	User               *string `json:"user"`
	CPI                string  `json:"cpi"`
	UserAuthentication struct {
		Type string `json:"type"`
	} `json:"user_authentication"`
}

// Info returns the director's info with the client's credentials (User is nil when they are not accepted).
func (c *Client) Info(ctx context.Context) (Info, error) {
	var i Info
	err := c.call(ctx, request{method: http.MethodGet, path: "/info"}, &i)
	return i, err
}

// CheckLogin fails unless the director uses basic auth and accepts the client's credentials.
func (c *Client) CheckLogin(ctx context.Context) (Info, error) {
	i, err := c.Info(ctx)
	if err != nil {
		return i, fmt.Errorf("reaching the director: %w", err)
	}
	if t := i.UserAuthentication.Type; t != "" && t != "basic" {
		return i, fmt.Errorf("director %s uses %q authentication; this suite supports basic auth only", i.Name, t)
	}
	if i.User == nil {
		return i, fmt.Errorf("director %s did not accept user %q (check director.client and director.client_secret)", i.Name, c.user)
	}
	return i, nil
}

// ReleaseVersion is one uploaded version of a release.
type ReleaseVersion struct {
	Version           string `json:"version"`
	CommitHash        string `json:"commit_hash"`
	CurrentlyDeployed bool   `json:"currently_deployed"`
}

// Release is one entry of GET /releases.
type Release struct {
	Name            string           `json:"name"`
	ReleaseVersions []ReleaseVersion `json:"release_versions"`
}

// Releases lists the uploaded releases.
func (c *Client) Releases(ctx context.Context) ([]Release, error) {
	var rs []Release
	err := c.call(ctx, request{method: http.MethodGet, path: "/releases"}, &rs)
	return rs, err
}

// Stemcell is one entry of GET /stemcells.
type Stemcell struct {
	Name            string `json:"name"`
	Version         string `json:"version"`
	OperatingSystem string `json:"operating_system"`
}

// Stemcells lists the uploaded stemcells.
func (c *Client) Stemcells(ctx context.Context) ([]Stemcell, error) {
	var ss []Stemcell
	err := c.call(ctx, request{method: http.MethodGet, path: "/stemcells"}, &ss)
	return ss, err
}

// UploadRelease uploads a release tarball (POST /releases) and returns the task.
func (c *Client) UploadRelease(ctx context.Context, tarball string) (int, error) {
	return c.uploadFile(ctx, "/releases", tarball)
}

// UploadStemcell uploads a stemcell tarball (POST /stemcells) and returns the task.
func (c *Client) UploadStemcell(ctx context.Context, tarball string) (int, error) {
	return c.uploadFile(ctx, "/stemcells", tarball)
}

func (c *Client) uploadFile(ctx context.Context, p, file string) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return c.startTask(ctx, request{method: http.MethodPost, path: p, body: f, contentType: "application/x-compressed"})
}

// UpdateCloudConfig replaces the default cloud config.
func (c *Client) UpdateCloudConfig(ctx context.Context, yaml []byte) error {
	return c.call(ctx, request{method: http.MethodPost, path: "/cloud_configs", query: url.Values{"name": {"default"}},
		body: bytes.NewReader(yaml), contentType: "text/yaml"}, nil)
}

// Deploy posts a manifest (POST /deployments) and returns the task.
func (c *Client) Deploy(ctx context.Context, manifest []byte) (int, error) {
	return c.startTask(ctx, request{method: http.MethodPost, path: "/deployments", body: bytes.NewReader(manifest), contentType: "text/yaml"})
}

// Deployment is one entry of GET /deployments.
type Deployment struct {
	Name     string `json:"name"`
	Releases []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"releases"`
}

// Deployments lists the deployments.
func (c *Client) Deployments(ctx context.Context) ([]Deployment, error) {
	var ds []Deployment
	err := c.call(ctx, request{method: http.MethodGet, path: "/deployments", query: url.Values{"exclude_configs": {"true"}}}, &ds)
	return ds, err
}

// DeleteDeployment starts deleting a deployment. A deployment that does not exist gives an error for which
// IsNotFound is true.
func (c *Client) DeleteDeployment(ctx context.Context, name string, force bool) (int, error) {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return c.startTask(ctx, request{method: http.MethodDelete, path: "/deployments/" + url.PathEscape(name), query: q})
}

// OrphanedDisk is one entry of GET /disks: a persistent disk the director kept when its deployment or instance
// was deleted.
type OrphanedDisk struct {
	CID        string `json:"disk_cid"`
	Deployment string `json:"deployment_name"`
	Instance   string `json:"instance_name"`
}

// OrphanedDisks lists the orphaned disks (`bosh disks --orphaned`).
func (c *Client) OrphanedDisks(ctx context.Context) ([]OrphanedDisk, error) {
	var ds []OrphanedDisk
	err := c.call(ctx, request{method: http.MethodGet, path: "/disks"}, &ds)
	return ds, err
}

// DeleteOrphanedDisk starts deleting one orphaned disk (`bosh delete-disk`).
func (c *Client) DeleteOrphanedDisk(ctx context.Context, cid string) (int, error) {
	return c.startTask(ctx, request{method: http.MethodDelete, path: "/disks/" + url.PathEscape(cid)})
}

// States of PUT /deployments/D/jobs/... .
const (
	StateStarted  = "started"
	StateStopped  = "stopped"
	StateDetached = "detached" // stop --hard: VM deleted, persistent disk kept
	StateRestart  = "restart"
	StateRecreate = "recreate"
)

// ChangeState starts a state change of target ("group/id", "group/index", "group" or "*").
func (c *Client) ChangeState(ctx context.Context, deployment, target, state string) (int, error) {
	p := "/deployments/" + url.PathEscape(deployment) + "/jobs/" + target
	return c.startTask(ctx, request{method: http.MethodPut, path: p, query: url.Values{"state": {state}}, contentType: "text/yaml"})
}

// RunErrand starts an errand on every instance that has it.
func (c *Client) RunErrand(ctx context.Context, deployment, errand string) (int, error) {
	body, _ := json.Marshal(map[string]any{"instances": []any{}, "keep-alive": false, "when-changed": false})
	p := "/deployments/" + url.PathEscape(deployment) + "/errands/" + url.PathEscape(errand) + "/runs"
	return c.startTask(ctx, request{method: http.MethodPost, path: p, body: bytes.NewReader(body), contentType: "application/json"})
}

// Process is one monit service of an instance.
type Process struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Uptime struct {
		Secs *int64 `json:"secs"`
	} `json:"uptime"`
}

// Instance is one line of the format=full instances task result.
type Instance struct {
	VMCID     *string   `json:"vm_cid"`
	IPs       []string  `json:"ips"`
	JobName   string    `json:"job_name"`
	Index     *int      `json:"index"`
	ID        string    `json:"id"`
	AZ        *string   `json:"az"`
	JobState  *string   `json:"job_state"`
	State     string    `json:"state"`
	Bootstrap bool      `json:"bootstrap"`
	Processes []Process `json:"processes"`
	Ignore    bool      `json:"ignore"`
}

// Name is group/id (index).
func (i Instance) Name() string {
	idx := "?"
	if i.Index != nil {
		idx = strconv.Itoa(*i.Index)
	}
	return fmt.Sprintf("%s/%s (%s)", i.JobName, i.ID, idx)
}

// IP is the instance's first IP ("" when it has none).
func (i Instance) IP() string {
	if len(i.IPs) == 0 {
		return ""
	}
	return i.IPs[0]
}

// ErrandResult is one line of an errand task's result.
type ErrandResult struct {
	Instance struct {
		Group string `json:"group"`
		ID    string `json:"id"`
	} `json:"instance"`
	ErrandName string `json:"errand_name"`
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
}

// Instances lists a deployment's instances (GET /deployments/D/instances?format=full, a task).
func (c *Client) Instances(ctx context.Context, deployment string, timeout time.Duration) ([]Instance, error) {
	id, err := c.startTask(ctx, request{method: http.MethodGet, path: "/deployments/" + url.PathEscape(deployment) + "/instances",
		query: url.Values{"format": {"full"}}})
	if err != nil {
		return nil, err
	}
	if _, err := c.WaitTask(ctx, id, timeout, nil); err != nil {
		return nil, err
	}
	out, err := c.TaskOutput(ctx, id, "result")
	if err != nil {
		return nil, err
	}
	var is []Instance
	if err := decodeLines(out, func(line []byte) error {
		var i Instance
		if err := json.Unmarshal(line, &i); err != nil {
			return err
		}
		is = append(is, i)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("task %d result: %w", id, err)
	}
	return is, nil
}

// ErrandResults decodes an errand task's result.
func ErrandResults(out []byte) ([]ErrandResult, error) {
	var rs []ErrandResult
	err := decodeLines(out, func(line []byte) error {
		var r ErrandResult
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		rs = append(rs, r)
		return nil
	})
	return rs, err
}

func decodeLines(b []byte, f func([]byte) error) error {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := f(line); err != nil {
			return err
		}
	}
	return nil
}
