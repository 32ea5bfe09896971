// Package client is a small client of the BOSH director API subset (docs/director-api.md) for the
// local-director command and the director's own tests. It speaks exactly what the bosh CLI speaks — basic auth
// over HTTPS, 302 to /tasks/N, Range polling of task output — so it works against the local director and, for
// these calls, against a real one. The acceptance suite keeps its own client in acceptance-tests/.
package client

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
	"strconv"
	"strings"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"
)

// Client talks to one director.
type Client struct {
	URL      string
	User     string
	Password string
	HTTP     *http.Client
	// PollInterval is how often task output is polled (default 500 ms, as the bosh CLI).
	PollInterval time.Duration
}

// New returns a client for url that trusts caPEM (the director's CA certificate).
func New(url string, caPEM []byte, user, password string) (*Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("director CA certificate: no PEM certificate found")
	}
	return &Client{
		URL: strings.TrimRight(url, "/"), User: user, Password: password, PollInterval: 500 * time.Millisecond,
		HTTP: &http.Client{
			Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// APIError is a director answer with an unexpected status.
type APIError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: director answered %d: %s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

// Do sends one request with basic auth and returns the response (body read and closed).
func (c *Client) Do(ctx context.Context, method, path string, header map[string]string, body io.Reader) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return nil, nil, err
	}
	if c.User != "" {
		req.SetBasicAuth(c.User, c.Password)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func (c *Client) expect(ctx context.Context, method, path string, header map[string]string, body io.Reader, status int, out any) error {
	resp, b, err := c.Do(ctx, method, path, header, body)
	if err != nil {
		return err
	}
	if resp.StatusCode != status {
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Body: string(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// taskRequest sends a request the director answers with 302 to /tasks/N and returns N.
func (c *Client) taskRequest(ctx context.Context, method, path string, header map[string]string, body io.Reader) (int, error) {
	resp, b, err := c.Do(ctx, method, path, header, body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusFound {
		return 0, &APIError{Method: method, Path: path, Status: resp.StatusCode, Body: string(b)}
	}
	loc := resp.Header.Get("Location")
	id, err := strconv.Atoi(strings.TrimPrefix(loc, "/tasks/"))
	if err != nil || !strings.HasPrefix(loc, "/tasks/") {
		return 0, fmt.Errorf("%s %s: unexpected Location %q", method, path, loc)
	}
	return id, nil
}

// Info is GET /info.
type Info struct {
	Name    string  `json:"name"`
	UUID    string  `json:"uuid"`
	Version string  `json:"version"`
	User    *string `json:"user"`
	CPI     string  `json:"cpi"`
}

// Info fetches /info.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var i Info
	return i, c.expect(ctx, http.MethodGet, "/info", nil, nil, http.StatusOK, &i)
}

// UploadStemcell uploads a stemcell tarball and returns the task id.
func (c *Client) UploadStemcell(ctx context.Context, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return c.taskRequest(ctx, http.MethodPost, "/stemcells", map[string]string{"Content-Type": "application/x-compressed"}, f)
}

// UploadRelease uploads a release tarball and returns the task id.
func (c *Client) UploadRelease(ctx context.Context, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return c.taskRequest(ctx, http.MethodPost, "/releases", map[string]string{"Content-Type": "application/x-compressed"}, f)
}

// UpdateCloudConfig replaces the cloud config.
func (c *Client) UpdateCloudConfig(ctx context.Context, yml []byte) error {
	return c.expect(ctx, http.MethodPost, "/cloud_configs?name=default", map[string]string{"Content-Type": "text/yaml"}, bytes.NewReader(yml), http.StatusCreated, nil)
}

// Deploy posts a manifest and returns the task id.
func (c *Client) Deploy(ctx context.Context, manifest []byte) (int, error) {
	return c.taskRequest(ctx, http.MethodPost, "/deployments", map[string]string{"Content-Type": "text/yaml"}, bytes.NewReader(manifest))
}

// DeleteDeployment deletes a deployment and returns the task id.
func (c *Client) DeleteDeployment(ctx context.Context, name string, force bool) (int, error) {
	q := ""
	if force {
		q = "?force=true"
	}
	return c.taskRequest(ctx, http.MethodDelete, "/deployments/"+url.PathEscape(name)+q, nil, nil)
}

// ChangeState sends PUT /deployments/D/jobs/<target>?state=<state> (target "*", "group" or "group/index-or-id").
func (c *Client) ChangeState(ctx context.Context, deployment, target, state string) (int, error) {
	return c.taskRequest(ctx, http.MethodPut, "/deployments/"+url.PathEscape(deployment)+"/jobs/"+target+"?state="+url.QueryEscape(state),
		map[string]string{"Content-Type": "text/yaml"}, nil)
}

// RunErrand starts an errand run and returns the task id.
func (c *Client) RunErrand(ctx context.Context, deployment, errand string, keepAlive bool) (int, error) {
	body, _ := json.Marshal(map[string]any{"instances": []any{}, "keep-alive": keepAlive, "when-changed": false})
	return c.taskRequest(ctx, http.MethodPost, "/deployments/"+url.PathEscape(deployment)+"/errands/"+url.PathEscape(errand)+"/runs",
		map[string]string{"Content-Type": "application/json"}, bytes.NewReader(body))
}

// Instances starts the instances (format=full) task and returns its id.
func (c *Client) Instances(ctx context.Context, deployment string) (int, error) {
	return c.taskRequest(ctx, http.MethodGet, "/deployments/"+url.PathEscape(deployment)+"/instances?format=full", nil, nil)
}

// Task is a director task.
type Task struct {
	ID          int    `json:"id"`
	State       string `json:"state"`
	Description string `json:"description"`
	Result      string `json:"result"`
	Deployment  string `json:"deployment"`
}

// Finished reports whether the task is in a final state.
func (t Task) Finished() bool {
	return t.State != "queued" && t.State != "processing" && t.State != "cancelling"
}

// Task fetches one task.
func (c *Client) Task(ctx context.Context, id int) (Task, error) {
	var t Task
	return t, c.expect(ctx, http.MethodGet, fmt.Sprintf("/tasks/%d", id), nil, nil, http.StatusOK, &t)
}

// TaskOutput fetches a task's whole output of one type (event, result, debug).
func (c *Client) TaskOutput(ctx context.Context, id int, typ string) ([]byte, error) {
	resp, b, err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/tasks/%d/output?type=%s", id, typ), nil, nil)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return b, nil
	case http.StatusNoContent:
		return nil, nil
	}
	return nil, &APIError{Method: "GET", Path: fmt.Sprintf("/tasks/%d/output", id), Status: resp.StatusCode, Body: string(b)}
}

// TaskFailedError is a task that ended in another state than done.
type TaskFailedError struct{ Task Task }

func (e *TaskFailedError) Error() string {
	return fmt.Sprintf("task %d (%s) ended in state %s: %s", e.Task.ID, e.Task.Description, e.Task.State, e.Task.Result)
}

// Wait polls the task's event output with Range requests until the task finishes, writing each new event
// line to events (formatted by FormatEvent; nil = discard). A task that does not end done returns
// *TaskFailedError.
func (c *Client) Wait(ctx context.Context, id int, events io.Writer) (Task, error) {
	offset := 0
	var partial []byte
	poll := func() error {
		resp, b, err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/tasks/%d/output?type=event", id), map[string]string{"Range": fmt.Sprintf("bytes=%d-", offset)}, nil)
		if err != nil {
			return err
		}
		switch resp.StatusCode {
		case http.StatusPartialContent, http.StatusOK:
			offset += len(b)
			partial = append(partial, b...)
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				if events != nil {
					if line := FormatEvent(partial[:i]); line != "" {
						fmt.Fprintln(events, line)
					}
				}
				partial = partial[i+1:]
			}
		case http.StatusRequestedRangeNotSatisfiable, http.StatusNoContent:
		default:
			return &APIError{Method: "GET", Path: fmt.Sprintf("/tasks/%d/output", id), Status: resp.StatusCode, Body: string(b)}
		}
		return nil
	}
	var t Task
	err := retry.Poll(ctx, retry.Options{Interval: c.PollInterval}, func(ctx context.Context) error {
		var err error
		if t, err = c.Task(ctx, id); err != nil {
			return retry.Stop(err)
		}
		if err := poll(); err != nil {
			return retry.Stop(err)
		}
		if !t.Finished() {
			return errTaskRunning
		}
		// The task may have written its last events between the two requests above.
		return retry.Stop(poll())
	})
	var gaveUp *retry.GaveUp
	switch {
	case errors.As(err, &gaveUp):
		return t, gaveUp.Cause
	case err != nil:
		return t, err
	case t.State != "done":
		return t, &TaskFailedError{Task: t}
	}
	return t, nil
}

var errTaskRunning = errors.New("task still running")

// Event is one line of event output.
type Event struct {
	Time     int64          `json:"time"`
	Stage    string         `json:"stage"`
	Tags     []string       `json:"tags"`
	Total    int            `json:"total"`
	Task     string         `json:"task"`
	Index    int            `json:"index"`
	State    string         `json:"state"`
	Progress int            `json:"progress"`
	Data     map[string]any `json:"data"`
	Error    *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// FormatEvent renders an event line for people: "15:04:05 | Updating instance etcd: etcd/<id> (0) (canary)
// (started)".
func FormatEvent(line []byte) string {
	var e Event
	if err := json.Unmarshal(line, &e); err != nil {
		return string(line)
	}
	ts := time.Unix(e.Time, 0).Format("15:04:05")
	if e.Error != nil {
		return fmt.Sprintf("%s | Error: %s", ts, e.Error.Message)
	}
	s := fmt.Sprintf("%s | %s: %s (%s)", ts, e.Stage, e.Task, e.State)
	if e.State == "failed" && e.Data != nil {
		s += fmt.Sprintf(": %v", e.Data["error"])
	}
	return s
}
