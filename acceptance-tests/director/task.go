package director

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Task is GET /tasks/N.
type Task struct {
	ID          int    `json:"id"`
	State       string `json:"state"`
	Description string `json:"description"`
	Result      string `json:"result"`
	Deployment  string `json:"deployment"`
}

// Running reports whether the task has not ended yet.
func (t Task) Running() bool {
	switch t.State {
	case "queued", "processing", "cancelling":
		return true
	}
	return false
}

// TaskFailedError is a task that ended in any state but done.
type TaskFailedError struct {
	Task Task
	// Errors are the failed stages and the task error from the event output.
	Errors []string
}

func (e *TaskFailedError) Error() string {
	msg := fmt.Sprintf("task %d (%s) ended %s: %s", e.Task.ID, e.Task.Description, e.Task.State, e.Task.Result)
	if len(e.Errors) > 0 {
		msg += "; " + strings.Join(e.Errors, "; ")
	}
	return msg
}

// GetTask is GET /tasks/N.
func (c *Client) GetTask(ctx context.Context, id int) (Task, error) {
	var t Task
	err := c.call(ctx, request{method: http.MethodGet, path: "/tasks/" + strconv.Itoa(id)}, &t)
	return t, err
}

// TaskOutput returns all of a task's output of one type (event, result or debug).
func (c *Client) TaskOutput(ctx context.Context, id int, typ string) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/tasks/" + strconv.Itoa(id) + "/output", query: url.Values{"type": {typ}}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusNoContent:
		return nil, nil
	}
	return nil, &HTTPError{Method: http.MethodGet, Path: fmt.Sprintf("/tasks/%d/output?type=%s", id, typ), Status: resp.StatusCode, Body: string(body)}
}

// OutputStream reads a task's output incrementally with Range requests, as the bosh CLI does: each Poll asks for
// the bytes after those already read (206 with new bytes, 416 when there is nothing new, 204 when the task has
// no output of that type) and returns the complete lines that arrived.
type OutputStream struct {
	c       *Client
	id      int
	typ     string
	offset  int64
	partial []byte
}

// Stream returns an OutputStream over task id's output of type typ.
func (c *Client) Stream(id int, typ string) *OutputStream {
	return &OutputStream{c: c, id: id, typ: typ}
}

// Poll fetches what is new and returns the complete lines (without their newline).
func (s *OutputStream) Poll(ctx context.Context) ([][]byte, error) {
	resp, err := s.c.do(ctx, request{method: http.MethodGet, path: "/tasks/" + strconv.Itoa(s.id) + "/output",
		query: url.Values{"type": {s.typ}}, header: http.Header{"Range": {fmt.Sprintf("bytes=%d-", s.offset)}}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var fresh []byte
	switch resp.StatusCode {
	case http.StatusPartialContent:
		fresh = body
	case http.StatusOK: // a server that ignores Range sends everything: keep what is past the offset
		if int64(len(body)) > s.offset {
			fresh = body[s.offset:]
		}
	case http.StatusRequestedRangeNotSatisfiable, http.StatusNoContent:
		return nil, nil
	default:
		return nil, &HTTPError{Method: http.MethodGet, Path: fmt.Sprintf("/tasks/%d/output?type=%s", s.id, s.typ), Status: resp.StatusCode, Body: string(body)}
	}
	s.offset += int64(len(fresh))
	s.partial = append(s.partial, fresh...)
	var lines [][]byte
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, append([]byte(nil), s.partial[:i]...))
		s.partial = s.partial[i+1:]
	}
	return lines, nil
}

// Rest returns an unterminated last line, if any (call after the task ended and a last Poll).
func (s *OutputStream) Rest() []byte {
	r := s.partial
	s.partial = nil
	return r
}

// Event is one line of a task's event output.
type Event struct {
	Time     int64    `json:"time"`
	Stage    string   `json:"stage"`
	Tags     []string `json:"tags"`
	Total    int      `json:"total"`
	Task     string   `json:"task"`
	Index    int      `json:"index"`
	State    string   `json:"state"`
	Progress int      `json:"progress"`
	Data     struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"data"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// String renders an event as one human line.
func (e Event) String() string {
	ts := time.Unix(e.Time, 0).UTC().Format("15:04:05")
	if e.Error != nil {
		return fmt.Sprintf("%s | Error: %s", ts, e.Error.Message)
	}
	s := fmt.Sprintf("%s | %s", ts, e.Stage)
	if e.Task != "" {
		s += ": " + e.Task
	}
	if e.Total > 0 {
		s += fmt.Sprintf(" (%d/%d)", e.Index, e.Total)
	}
	s += " " + e.State
	if e.Data.Status != "" {
		s += " (" + e.Data.Status + ")"
	}
	if e.Data.Error != "" {
		s += ": " + e.Data.Error
	}
	return s
}

// WaitTask polls task id until it ends (or timeout), writing its events to w (when not nil) as they arrive. A
// task that ends in any state but done is a *TaskFailedError carrying the failed stages' errors.
func (c *Client) WaitTask(ctx context.Context, id int, timeout time.Duration, w io.Writer) (Task, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	events := c.Stream(id, "event")
	var errs []string
	handle := func(lines [][]byte) {
		for _, l := range lines {
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			var e Event
			if err := json.Unmarshal(l, &e); err != nil {
				if w != nil {
					fmt.Fprintf(w, "task %d: undecodable event line %q: %v\n", id, l, err)
				}
				continue
			}
			if e.Error != nil {
				errs = append(errs, e.Error.Message)
			} else if e.State == "failed" {
				errs = append(errs, fmt.Sprintf("%s %s: %s", e.Stage, e.Task, e.Data.Error))
			}
			if w != nil {
				fmt.Fprintf(w, "task %d: %s\n", id, e)
			}
		}
	}
	tick := time.NewTicker(c.PollInterval)
	defer tick.Stop()
	for {
		t, err := c.GetTask(ctx, id)
		if err != nil {
			return t, fmt.Errorf("task %d: %w", id, err)
		}
		lines, err := events.Poll(ctx)
		if err != nil {
			return t, fmt.Errorf("task %d events: %w", id, err)
		}
		handle(lines)
		if !t.Running() {
			// A last poll: the output may have grown between the two requests above.
			if lines, err := events.Poll(ctx); err == nil {
				handle(lines)
			}
			if rest := events.Rest(); len(rest) > 0 {
				handle([][]byte{rest})
			}
			if t.State != "done" {
				return t, &TaskFailedError{Task: t, Errors: errs}
			}
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, fmt.Errorf("task %d (%s) still %s: %w", id, t.Description, t.State, ctx.Err())
		case <-tick.C:
		}
	}
}
