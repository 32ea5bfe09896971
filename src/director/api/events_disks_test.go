package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

func TestFilterEvents(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var all []state.Event
	for i := 5; i >= 1; i-- { // newest first, as the store lists them
		e := state.Event{ID: i, Timestamp: t0.Add(time.Duration(i) * time.Minute), User: "admin", Action: "update", ObjectType: "instance",
			ObjectName: "etcd/" + strconv.Itoa(i), Task: 10 + i, Deployment: "etcd", Instance: "etcd/" + strconv.Itoa(i)}
		if i == 3 {
			e.Deployment, e.Action, e.ObjectType, e.ObjectName, e.User = "other", "delete", "deployment", "other", "ops"
		}
		all = append(all, e)
	}
	ids := func(es []state.Event) []int {
		out := []int{}
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	unix := func(m int) string { return strconv.FormatInt(t0.Add(time.Duration(m)*time.Minute).Unix(), 10) }
	for _, tc := range []struct {
		name  string
		query string
		want  []int
		err   string
	}{
		{"all, newest first", "", []int{5, 4, 3, 2, 1}, ""},
		{"before_id pages on", "before_id=4", []int{3, 2, 1}, ""},
		{"deployment", "deployment=etcd", []int{5, 4, 2, 1}, ""},
		{"task", "task=12", []int{2}, ""},
		{"instance", "instance=etcd/4", []int{4}, ""},
		{"user", "user=ops", []int{3}, ""},
		{"action", "action=delete", []int{3}, ""},
		{"object_type", "object_type=instance&deployment=etcd", []int{5, 4, 2, 1}, ""},
		{"object_name", "object_name=etcd/1", []int{1}, ""},
		{"before_time is exclusive", "before_time=" + unix(3), []int{2, 1}, ""},
		{"after_time is exclusive", "after_time=" + unix(3), []int{5, 4}, ""},
		{"after_time as a date", "after_time=" + url.QueryEscape(t0.Add(4*time.Minute).Format("2006-01-02 15:04:05 -0700")), []int{5}, ""},
		{"bad time", "before_time=yesterday", nil, "Invalid before parameter: 'yesterday'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			require.NoError(t, err)
			got, err := filterEvents(all, q)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(got))
		})
	}
}

func TestFilterEventsPage(t *testing.T) {
	var all []state.Event
	for i := 450; i >= 1; i-- {
		all = append(all, state.Event{ID: i, Timestamp: time.Unix(int64(i), 0)})
	}
	got, err := filterEvents(all, url.Values{})
	require.NoError(t, err)
	require.Len(t, got, eventPage)
	require.Equal(t, 450, got[0].ID)
	next, err := filterEvents(all, url.Values{"before_id": {strconv.Itoa(got[len(got)-1].ID)}})
	require.NoError(t, err)
	require.Equal(t, 250, next[0].ID)
}

// eventResp and orphanDiskResp are the fields the bosh CLI decodes (cloudfoundry/bosh-cli director/events.go
// EventResp, director/orphan_disks.go OrphanDiskResp): string ids, Unix timestamp, orphaned_at as Ruby prints it.
type eventResp struct {
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

func TestEventsEndpoint(t *testing.T) {
	f := newFixture(t)
	b, err := f.store.AddEvent(state.Event{User: "admin", Action: "create", ObjectType: "deployment", ObjectName: "etcd", Task: 7, Deployment: "etcd"})
	require.NoError(t, err)
	_, err = f.store.AddEvent(state.Event{ParentID: b.ID, User: "admin", Action: "create", ObjectType: "deployment", ObjectName: "etcd", Task: 7, Deployment: "etcd", Error: "boom"})
	require.NoError(t, err)

	resp, body := f.do("GET", "/events?deployment=etcd&task=7", nil, true, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var events []eventResp
	require.NoError(t, json.Unmarshal(body, &events), string(body))
	require.Len(t, events, 2)
	require.Equal(t, "2", events[0].ID)
	require.Equal(t, "1", events[0].ParentID)
	require.Equal(t, "boom", events[0].Error)
	require.Equal(t, "7", events[1].Task)
	require.NotNil(t, events[1].Context)
	require.InDelta(t, time.Now().Unix(), events[1].Timestamp, 60)

	resp, body = f.do("GET", "/events/1", nil, true, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	resp, _ = f.do("GET", "/events?before_time=soon", nil, true, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = f.do("GET", "/events", nil, false, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestOrphanDisksEndpoint(t *testing.T) {
	f := newFixture(t)
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	require.NoError(t, f.store.PutOrphanDisk(state.OrphanDisk{CID: "disk-abc", Size: 1024, Deployment: "etcd", Instance: "etcd/uuid-2", AZ: "z1", OrphanedAt: at}))
	resp, body := f.do("GET", "/disks", nil, true, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var disks []struct {
		CID            string `json:"disk_cid"`
		Size           uint64
		DeploymentName string `json:"deployment_name"`
		InstanceName   string `json:"instance_name"`
		AZ             string `json:"az"`
		OrphanedAt     string `json:"orphaned_at"`
	}
	require.NoError(t, json.Unmarshal(body, &disks), string(body))
	require.Len(t, disks, 1)
	require.Equal(t, "disk-abc", disks[0].CID)
	require.Equal(t, uint64(1024), disks[0].Size)
	require.Equal(t, "etcd", disks[0].DeploymentName)
	require.Equal(t, "etcd/uuid-2", disks[0].InstanceName)
	require.Equal(t, "z1", disks[0].AZ)
	parsed, err := time.Parse("2006-01-02 15:04:05 -0700", disks[0].OrphanedAt) // the CLI's first layout
	require.NoError(t, err)
	require.True(t, parsed.Equal(at))

	// Without a VM backend the disk operations answer 503, never half-done.
	resp, _ = f.do("DELETE", "/disks/disk-abc", nil, true, nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	resp, _ = f.do("PUT", "/disks/disk-abc/attachments?deployment=etcd&job=etcd&instance_id=uuid-2", nil, true, nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

func TestLocksEndpoint(t *testing.T) {
	f := newFixture(t)
	resp, body := f.do("GET", "/locks", nil, true, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, "[]", string(body))

	release := make(chan struct{})
	started := make(chan struct{})
	task, err := f.runner.Submit("create deployment", "admin", "etcd", func(context.Context, *tasks.Output) error {
		close(started)
		<-release
		return nil
	})
	require.NoError(t, err)
	<-started
	resp, body = f.do("GET", "/locks", nil, true, nil)
	close(release)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var locks []struct {
		Type     string
		Resource []string
		Timeout  string
		TaskID   string `json:"task_id"`
	}
	require.NoError(t, json.Unmarshal(body, &locks), string(body))
	require.Len(t, locks, 1)
	require.Equal(t, "deployment", locks[0].Type)
	require.Equal(t, []string{"etcd"}, locks[0].Resource)
	require.Equal(t, strconv.Itoa(task.ID), locks[0].TaskID)
	expires, err := strconv.ParseFloat(locks[0].Timeout, 64) // the CLI parses it as float seconds
	require.NoError(t, err)
	require.Greater(t, expires, float64(time.Now().Unix()))

	f.runner.Wait()
	_, body = f.do("GET", "/locks", nil, true, nil)
	require.JSONEq(t, "[]", string(body))
}
