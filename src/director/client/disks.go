package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// OrphanDisk is one line of GET /disks.
type OrphanDisk struct {
	CID            string  `json:"disk_cid"`
	Size           int     `json:"size"`
	DeploymentName string  `json:"deployment_name"`
	InstanceName   string  `json:"instance_name"`
	AZ             *string `json:"az"`
	OrphanedAt     string  `json:"orphaned_at"`
}

// OrphanDisks lists the orphaned disks (`bosh disks --orphaned`).
func (c *Client) OrphanDisks(ctx context.Context) ([]OrphanDisk, error) {
	var out []OrphanDisk
	return out, c.expect(ctx, http.MethodGet, "/disks", nil, nil, http.StatusOK, &out)
}

// DeleteOrphanDisk starts the deletion of an orphaned disk (`bosh delete-disk`) and returns the task id.
func (c *Client) DeleteOrphanDisk(ctx context.Context, cid string) (int, error) {
	return c.taskRequest(ctx, http.MethodDelete, "/disks/"+url.PathEscape(cid), nil, nil)
}

// AttachDisk attaches an orphaned disk to a stopped instance (`bosh attach-disk group/id cid`).
func (c *Client) AttachDisk(ctx context.Context, deployment, group, id, cid string) (int, error) {
	q := url.Values{"deployment": {deployment}, "job": {group}, "instance_id": {id}}
	return c.taskRequest(ctx, http.MethodPut, "/disks/"+url.PathEscape(cid)+"/attachments?"+q.Encode(), nil, nil)
}

// DirectorEvent is one line of GET /events.
type DirectorEvent struct {
	ID         string         `json:"id"`
	ParentID   string         `json:"parent_id"`
	Timestamp  int64          `json:"timestamp"`
	User       string         `json:"user"`
	Action     string         `json:"action"`
	ObjectType string         `json:"object_type"`
	ObjectName string         `json:"object_name"`
	Task       string         `json:"task"`
	Deployment string         `json:"deployment"`
	Instance   string         `json:"instance"`
	Context    map[string]any `json:"context"`
	Error      string         `json:"error"`
}

// Events lists events, newest first, with the filters of `bosh events` (e.g. deployment, task, before_id).
func (c *Client) Events(ctx context.Context, filters url.Values) ([]DirectorEvent, error) {
	var out []DirectorEvent
	return out, c.expect(ctx, http.MethodGet, "/events?"+filters.Encode(), nil, nil, http.StatusOK, &out)
}

// FetchLogs starts `bosh logs` for group/indexOrID ("*" for all) with the log types (job, agent) and returns the
// task id; the finished task's result is the blob id for Resource.
func (c *Client) FetchLogs(ctx context.Context, deployment, group, indexOrID string, types []string) (int, error) {
	q := url.Values{"type": {strings.Join(types, ",")}}
	return c.taskRequest(ctx, http.MethodGet, "/deployments/"+url.PathEscape(deployment)+"/jobs/"+group+"/"+indexOrID+"/logs?"+q.Encode(), nil, nil)
}

// Resource downloads a blob a task produced (GET /resources/ID).
func (c *Client) Resource(ctx context.Context, id string) ([]byte, error) {
	resp, b, err := c.Do(ctx, http.MethodGet, "/resources/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Method: http.MethodGet, Path: "/resources/" + id, Status: resp.StatusCode, Body: string(b)}
	}
	return b, nil
}

// Problem is one line of GET /deployments/D/problems.
type Problem struct {
	ID            int            `json:"id"`
	Type          string         `json:"type"`
	Description   string         `json:"description"`
	InstanceGroup string         `json:"instance_group"`
	Data          map[string]any `json:"data"`
	Resolutions   []struct {
		Name *string `json:"name"`
		Plan string  `json:"plan"`
	} `json:"resolutions"`
}

// ScanForProblems starts `bosh cck`'s scan and returns the task id.
func (c *Client) ScanForProblems(ctx context.Context, deployment string) (int, error) {
	return c.taskRequest(ctx, http.MethodPost, "/deployments/"+url.PathEscape(deployment)+"/scans",
		map[string]string{"Content-Type": "application/json"}, nil)
}

// Problems lists the open problems of the last scan.
func (c *Client) Problems(ctx context.Context, deployment string) ([]Problem, error) {
	var out []Problem
	return out, c.expect(ctx, http.MethodGet, "/deployments/"+url.PathEscape(deployment)+"/problems", nil, nil, http.StatusOK, &out)
}

// ResolveProblems applies resolutions by problem id (nil: the automatic one, as `bosh cck --auto` sends).
func (c *Client) ResolveProblems(ctx context.Context, deployment string, resolutions map[string]*string) (int, error) {
	body, _ := json.Marshal(map[string]any{"resolutions": resolutions})
	return c.taskRequest(ctx, http.MethodPut, "/deployments/"+url.PathEscape(deployment)+"/problems",
		map[string]string{"Content-Type": "application/json"}, bytes.NewReader(body))
}

// SSH sends POST /deployments/D/ssh (command setup or cleanup, target {job, indexes, ids}, params) and returns the
// task id; setup's result output is a JSON array of per-instance results.
func (c *Client) SSH(ctx context.Context, deployment, command string, target map[string]any, params map[string]string) (int, error) {
	body, _ := json.Marshal(map[string]any{"command": command, "deployment_name": deployment, "target": target, "params": params})
	return c.taskRequest(ctx, http.MethodPost, "/deployments/"+url.PathEscape(deployment)+"/ssh",
		map[string]string{"Content-Type": "application/json"}, bytes.NewReader(body))
}
