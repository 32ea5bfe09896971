package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-release/etcd-release/src/director/state"
)

// Events as the bosh CLI asks for them (cloudfoundry/bosh-cli director/events.go: before_id, before_time,
// after_time, deployment, task, instance, user, action, object_type, object_name) and the director answers
// (api/controllers/events_controller.rb: newest first, at most 200 per page, page on with before_id; ids, parent
// ids and task ids are strings, the timestamp is Unix seconds).

// eventPage is the most events one GET /events returns.
const eventPage = 200

// filterEvents applies the query's filters to events (newest first) and returns one page. A time that is not
// Unix seconds or a date the director accepts is an error naming the parameter.
func filterEvents(all []state.Event, q url.Values) ([]state.Event, error) {
	var before, after time.Time
	var err error
	if v := q.Get("before_time"); v != "" {
		if before, err = parseEventTime(v); err != nil {
			return nil, errorf(http.StatusBadRequest, "Invalid before parameter: '%s' (use Unix seconds or e.g. 2026-01-02 15:04:05 UTC)", v)
		}
	}
	if v := q.Get("after_time"); v != "" {
		if after, err = parseEventTime(v); err != nil {
			return nil, errorf(http.StatusBadRequest, "Invalid after parameter: '%s' (use Unix seconds or e.g. 2026-01-02 15:04:05 UTC)", v)
		}
	}
	beforeID, _ := strconv.Atoi(q.Get("before_id"))
	objectName := q.Get("object_name")
	if objectName == "" {
		objectName = q.Get("object_id") // the director's own parameter name for it
	}
	match := func(want, got string) bool { return want == "" || want == got }
	out := []state.Event{}
	for _, e := range all {
		ts := e.Timestamp.Truncate(time.Second)
		switch {
		case beforeID > 0 && e.ID >= beforeID,
			!before.IsZero() && !ts.Before(before),
			!after.IsZero() && ts.Before(after.Add(time.Second)),
			!match(q.Get("task"), taskString(e.Task)),
			!match(q.Get("deployment"), e.Deployment),
			!match(q.Get("instance"), e.Instance),
			!match(q.Get("user"), e.User),
			!match(q.Get("action"), e.Action),
			!match(q.Get("object_type"), e.ObjectType),
			!match(objectName, e.ObjectName):
			continue
		}
		out = append(out, e)
		if len(out) == eventPage {
			break
		}
	}
	return out, nil
}

func parseEventTime(v string) (time.Time, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	var err error
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05 -0700", "2006-01-02 15:04:05 MST", "2006-01-02 15:04:05", "2006-01-02"} {
		var t time.Time
		if t, err = time.Parse(layout, strings.TrimSpace(v)); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, err
}

func taskString(id int) string {
	if id == 0 {
		return ""
	}
	return strconv.Itoa(id)
}

func eventJSON(e state.Event) map[string]any {
	m := map[string]any{"id": strconv.Itoa(e.ID), "timestamp": e.Timestamp.Unix(), "user": e.User, "action": e.Action,
		"object_type": e.ObjectType, "object_name": e.ObjectName, "task": taskString(e.Task), "deployment": e.Deployment,
		"instance": e.Instance, "context": e.Context, "error": e.Error}
	if e.ParentID != 0 {
		m["parent_id"] = strconv.Itoa(e.ParentID)
	}
	if e.Context == nil {
		m["context"] = map[string]any{}
	}
	return m
}

func (s *Server) listEvents(r *http.Request) (any, error) {
	all, err := s.Store.Events()
	if err != nil {
		return nil, err
	}
	page, err := filterEvents(all, r.URL.Query())
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, e := range page {
		out = append(out, eventJSON(e))
	}
	return out, nil
}

func (s *Server) getEvent(r *http.Request) (any, error) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	all, err := s.Store.Events()
	if err != nil {
		return nil, err
	}
	for _, e := range all {
		if e.ID == id {
			return eventJSON(e), nil
		}
	}
	return nil, errorf(http.StatusNotFound, "Event '%s' not found", r.PathValue("id"))
}
