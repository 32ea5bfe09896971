// Package tasks runs the local director's long operations asynchronously as BOSH tasks: queued → processing →
// done|error, with event output in the director's JSON event format, result output and debug output, each an
// append-only file that the API serves with Range support.
package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/state"
)

// Output kinds, as in GET /tasks/N/output?type=...
const (
	Event  = "event"
	Result = "result"
	Debug  = "debug"
)

// Func is the work of one task. A returned error ends the task in state error with the error as its result.
type Func func(ctx context.Context, out *Output) error

// Runner starts tasks; tasks of the same deployment run one at a time, in submission order.
type Runner struct {
	store *state.Store
	lg    *zap.Logger
	mu    sync.Mutex
	locks map[string]*sync.Mutex
	// held maps a deployment to the task holding its lock (GET /locks).
	held map[string]int
	wg   sync.WaitGroup
}

// Lock is a deployment lock a running task holds.
type Lock struct {
	Deployment string
	TaskID     int
}

// Locks lists the deployment locks held right now, by deployment name.
func (r *Runner) Locks() []Lock {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Lock, 0, len(r.held))
	for dep, id := range r.held {
		out = append(out, Lock{Deployment: dep, TaskID: id})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Deployment < out[j].Deployment })
	return out
}

// NewRunner returns a Runner recording tasks in store. Tasks left queued or processing by a previous director
// process are marked as errored: their work was interrupted.
func NewRunner(store *state.Store, lg *zap.Logger) (*Runner, error) {
	all, err := store.Tasks()
	if err != nil {
		return nil, err
	}
	for _, t := range all {
		if t.State == state.TaskQueued || t.State == state.TaskProcessing {
			t.State, t.Result = state.TaskError, "the director restarted while this task was running"
			if err := store.PutTask(t); err != nil {
				return nil, err
			}
		}
	}
	return &Runner{store: store, lg: lg.Named("tasks"), locks: map[string]*sync.Mutex{}, held: map[string]int{}}, nil
}

// Submit records a queued task and runs fn in the background. Tasks naming the same deployment run one at a
// time, in submission order: they change the deployment.
func (r *Runner) Submit(description, user, deployment string, fn Func) (state.Task, error) {
	return r.submit(description, user, deployment, true, fn)
}

// SubmitReadOnly is Submit for a task that only reads a deployment (instances, vms): it is recorded with the
// deployment but does not wait for the deployment's running task.
func (r *Runner) SubmitReadOnly(description, user, deployment string, fn Func) (state.Task, error) {
	return r.submit(description, user, deployment, false, fn)
}

func (r *Runner) submit(description, user, deployment string, lock bool, fn Func) (state.Task, error) {
	t, err := r.store.NewTask(description, user, deployment, "")
	if err != nil {
		return state.Task{}, err
	}
	r.wg.Add(1)
	go r.run(t, lock, fn)
	return t, nil
}

// Wait blocks until every submitted task has finished (for tests and shutdown).
func (r *Runner) Wait() { r.wg.Wait() }

func (r *Runner) lock(deployment string, task int) func() {
	if deployment == "" {
		return func() {}
	}
	r.mu.Lock()
	l, ok := r.locks[deployment]
	if !ok {
		l = &sync.Mutex{}
		r.locks[deployment] = l
	}
	r.mu.Unlock()
	l.Lock()
	r.mu.Lock()
	r.held[deployment] = task
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.held, deployment)
		r.mu.Unlock()
		l.Unlock()
	}
}

func (r *Runner) run(t state.Task, lock bool, fn Func) {
	defer r.wg.Done()
	if lock {
		unlock := r.lock(t.Deployment, t.ID)
		defer unlock()
	}
	out := &Output{dir: r.store.TaskDir(t.ID), task: t.ID, user: t.User}
	t.State, t.StartedAt = state.TaskProcessing, time.Now().Unix()
	if err := r.store.PutTask(t); err != nil {
		r.lg.Error("recording task", zap.Int("task", t.ID), zap.Error(err))
	}
	err := fn(context.Background(), out)
	if err != nil {
		t.State, t.Result = state.TaskError, err.Error()
		out.TaskError(err)
		r.lg.Warn("task failed", zap.Int("task", t.ID), zap.String("description", t.Description), zap.Error(err))
	} else {
		t.State = state.TaskDone
		if t.Result == "" {
			t.Result = out.summary()
		}
	}
	if err := r.store.PutTask(t); err != nil {
		r.lg.Error("recording task", zap.Int("task", t.ID), zap.Error(err))
	}
}

// Output appends to a task's output files.
type Output struct {
	dir  string
	task int
	user string
	mu   sync.Mutex
	sum  string
}

// TaskID is the id of the task this output belongs to (0 outside a task); events name it.
func (o *Output) TaskID() int { return o.task }

// User is the user who started the task.
func (o *Output) User() string { return o.user }

// Path of one output kind.
func Path(taskDir, kind string) string { return filepath.Join(taskDir, kind) }

func (o *Output) appendLine(kind string, line []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f, err := os.OpenFile(Path(o.dir, kind), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(line, '\n'))
}

// EventLine is one line of event output.
type EventLine struct {
	Time     int64          `json:"time"`
	Stage    string         `json:"stage"`
	Tags     []string       `json:"tags"`
	Total    int            `json:"total"`
	Task     string         `json:"task"`
	Index    int            `json:"index"`
	State    string         `json:"state"`
	Progress int            `json:"progress"`
	Data     map[string]any `json:"data,omitempty"`
}

// Stage reports the steps of one stage: each step emits started, then finished or failed.
type Stage struct {
	out   *Output
	name  string
	tags  []string
	total int
	mu    sync.Mutex
	index int
}

// Stage starts a stage with total steps.
func (o *Output) Stage(name string, tags []string, total int) *Stage {
	if tags == nil {
		tags = []string{}
	}
	return &Stage{out: o, name: name, tags: tags, total: total}
}

// Step runs fn as the next step of the stage, emitting its events.
func (s *Stage) Step(task string, fn func() error) error {
	s.mu.Lock()
	s.index++
	idx := s.index
	s.mu.Unlock()
	s.emit(task, idx, "started", 0, nil)
	if err := fn(); err != nil {
		s.emit(task, idx, "failed", 100, map[string]any{"error": err.Error()})
		return err
	}
	s.emit(task, idx, "finished", 100, nil)
	return nil
}

func (s *Stage) emit(task string, index int, st string, progress int, data map[string]any) {
	b, _ := json.Marshal(EventLine{Time: time.Now().Unix(), Stage: s.name, Tags: s.tags, Total: s.total, Task: task, Index: index, State: st, Progress: progress, Data: data})
	s.out.appendLine(Event, b)
	// The debug output (bosh task N --debug) is the full story: every event too, with its error.
	if e, ok := data["error"]; ok {
		s.out.Debugf("%s: %s (%d/%d) %s: %v", s.name, task, index, s.total, st, e)
	} else {
		s.out.Debugf("%s: %s (%d/%d) %s", s.name, task, index, s.total, st)
	}
}

// TaskError writes the task-level error event.
func (o *Output) TaskError(err error) {
	b, _ := json.Marshal(map[string]any{"time": time.Now().Unix(), "error": map[string]any{"code": 100, "message": err.Error()}})
	o.appendLine(Event, b)
	o.Debugf("task failed: %v", err)
}

// ResultLine appends one line (typically JSON) to the result output.
func (o *Output) ResultLine(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	o.appendLine(Result, b)
	return nil
}

// Debugf appends a line to the debug output.
func (o *Output) Debugf(format string, a ...any) {
	o.appendLine(Debug, []byte(time.Now().UTC().Format(time.RFC3339Nano)+" "+fmt.Sprintf(format, a...)))
}

// SetSummary sets the task's result field (a short sentence) for a successful task.
func (o *Output) SetSummary(s string) {
	o.mu.Lock()
	o.sum = s
	o.mu.Unlock()
}

func (o *Output) summary() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sum
}
