package vm

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"
)

// Process states as BOSH reports them (`bosh instances --ps`), mapped from monit's XML as the agent does in
// cloudfoundry/bosh-agent jobsupervisor/monit_job_supervisor.go: monitor 0 unknown, monitor 2 starting, status 0
// running, anything else failing.
const (
	ProcessRunning  = "running"
	ProcessStarting = "starting"
	ProcessFailing  = "failing"
	ProcessUnknown  = "unknown"
)

// Job states (the instance's "Process State"), decided as in the agent's jobsupervisor/monit_job_supervisor.go.
const (
	JobRunning  = "running"
	JobStarting = "starting"
	JobFailing  = "failing"
	JobStopped  = "stopped"
	JobUnknown  = "unknown"
)

// VcapGroup is the monit group whose services BOSH starts, stops and reports.
const VcapGroup = "vcap"

// ErrMonitUnreachable wraps every failure to talk to a VM's monit at all (as opposed to monit answering
// with an error).
var ErrMonitUnreachable = errors.New("monit unreachable")

// MonitError is monit answering an HTTP request with a non-success status.
type MonitError struct {
	Request string
	Status  int
	Body    string
}

func (e *MonitError) Error() string {
	return fmt.Sprintf("monit %s: HTTP %d: %s", e.Request, e.Status, strings.TrimSpace(e.Body))
}

// ProcessStatus is one monit service of group vcap.
type ProcessStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Monitor and Status are monit's raw values (monitor: 0 not, 1 yes, 2 initializing; status: 0 ok).
	Monitor int `json:"-"`
	Status  int `json:"-"`
	// PendingAction is monit's queued action (0 none, 1 start, 2 stop, 3 restart, 4 monitor, 5 unmonitor...).
	PendingAction int     `json:"-"`
	PID           int     `json:"-"`
	UptimeSecs    int64   `json:"uptime_secs"`
	MemKB         int64   `json:"mem_kb"`
	MemPercent    float64 `json:"mem_percent"`
	CPUPercent    float64 `json:"cpu_percent"`
}

// MonitStatus is one parsed answer of monit's `_status2?format=xml`.
type MonitStatus struct {
	Incarnation int64
	Processes   []ProcessStatus // group vcap only, sorted by name
}

// Monit talks to the monit inside one VM through its HTTP interface, reached from inside the VM's
// network namespace, the way the BOSH agent does (cloudfoundry/bosh-agent jobsupervisor/monit/*: basic auth from
// monit.user, POST /<service> action=..., GET /_status2?format=xml).
type Monit struct {
	vm       *VM
	password string
	client   *http.Client
	log      *zap.Logger
}

func newMonit(v *VM, password string) *Monit {
	ns := v.netnsPath()
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialInNetns(ctx, ns, network, addr)
		},
		DisableKeepAlives: true,
	}
	return &Monit{
		vm:       v,
		password: password,
		client: &http.Client{
			Transport: transport,
			Timeout:   10 * time.Second,
			// monit answers a POSTed action with a redirect to its HTML page; the action is what counts.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log: v.log.Named("monit"),
	}
}

func (m *Monit) baseURL() string { return fmt.Sprintf("http://127.0.0.1:%d", MonitPort) }

// Status fetches and parses monit's status.
func (m *Monit) Status(ctx context.Context) (*MonitStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.baseURL()+"/_status2?format=xml", nil)
	if err != nil {
		return nil, err
	}
	body, err := m.do(req, "status")
	if err != nil {
		return nil, err
	}
	return parseMonitStatus(body)
}

// Processes returns the state of every service in group vcap.
func (m *Monit) Processes(ctx context.Context) ([]ProcessStatus, error) {
	st, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	return st.Processes, nil
}

// JobState is the instance's job_state: stopped (marker), starting, failing, running (also with no
// services) or unknown when monit cannot be reached. It returns the processes it based that on.
func (m *Monit) JobState(ctx context.Context) (string, []ProcessStatus) {
	procs, err := m.Processes(ctx)
	if err != nil {
		m.log.Debug("job state unknown", zap.String("vm", m.vm.ID()), zap.String("reason", err.Error()))
		return JobUnknown, nil
	}
	return jobState(m.stoppedMarkerExists(), procs), procs
}

// jobState decides the instance's job_state from a reachable monit, in the agent's order: stopped if the marker
// exists, else starting if any service starts, else failing if any is unmonitored or not running, else running
// (which includes no services at all).
func jobState(stopped bool, procs []ProcessStatus) string {
	if stopped {
		return JobStopped
	}
	for _, p := range procs {
		if p.State == ProcessStarting {
			return JobStarting
		}
	}
	for _, p := range procs {
		if p.State != ProcessRunning {
			return JobFailing
		}
	}
	return JobRunning
}

// Start asks monit to start (and monitor) one service.
func (m *Monit) Start(ctx context.Context, service string) error {
	return m.action(ctx, service, "start")
}

// Stop asks monit to stop (and unmonitor) one service.
func (m *Monit) Stop(ctx context.Context, service string) error {
	return m.action(ctx, service, "stop")
}

// Restart asks monit to restart one service.
func (m *Monit) Restart(ctx context.Context, service string) error {
	return m.action(ctx, service, "restart")
}

// Unmonitor asks monit to stop watching one service, leaving its process alone (what the agent does to
// every vcap service before drain).
func (m *Monit) Unmonitor(ctx context.Context, service string) error {
	return m.action(ctx, service, "unmonitor")
}

// StartAll starts every vcap service and removes the stopped marker (agent `start`). It does not wait for
// the services to be running; poll JobState for that, as the director does with the watch times.
func (m *Monit) StartAll(ctx context.Context) error {
	procs, err := m.Processes(ctx)
	if err != nil {
		return err
	}
	for _, p := range procs {
		if err := m.Start(ctx, p.Name); err != nil {
			return err
		}
	}
	if err := os.Remove(m.markerHostPath()); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing stopped marker: %w", err)
	}
	return nil
}

// UnmonitorAll unmonitors every vcap service (the agent's first step of a drain).
func (m *Monit) UnmonitorAll(ctx context.Context) error {
	procs, err := m.Processes(ctx)
	if err != nil {
		return err
	}
	for _, p := range procs {
		if err := m.Unmonitor(ctx, p.Name); err != nil {
			return err
		}
	}
	return m.waitUnmonitored(ctx)
}

// StopAll stops every vcap service, waits until monit reports them all unmonitored (bounded by ctx) and
// writes the stopped marker (agent `stop`, `monit stop -g vcap`).
func (m *Monit) StopAll(ctx context.Context) error {
	procs, err := m.Processes(ctx)
	if err != nil {
		return err
	}
	for _, p := range procs {
		if err := m.Stop(ctx, p.Name); err != nil {
			return err
		}
	}
	if err := m.waitUnmonitored(ctx); err != nil {
		return err
	}
	if err := os.WriteFile(m.markerHostPath(), nil, 0o644); err != nil {
		return fmt.Errorf("writing stopped marker: %w", err)
	}
	return nil
}

// waitUnmonitored polls until every vcap service is unmonitored with no pending action.
func (m *Monit) waitUnmonitored(ctx context.Context) error {
	err := retry.Poll(ctx, retry.Options{Interval: 200 * time.Millisecond}, func(ctx context.Context) error {
		procs, err := m.Processes(ctx)
		if err != nil {
			return err
		}
		busy := []string{}
		for _, p := range procs {
			if p.Monitor != 0 || p.PendingAction != 0 {
				busy = append(busy, p.Name)
			}
		}
		if len(busy) > 0 {
			return fmt.Errorf("still monitored: %s", strings.Join(busy, ", "))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("waiting for monit services to stop: %w", err)
	}
	return nil
}

// WaitReady waits until monit answers.
func (m *Monit) WaitReady(ctx context.Context) error {
	err := retry.Poll(ctx, retry.Options{Interval: 100 * time.Millisecond}, func(ctx context.Context) error {
		_, err := m.Status(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("waiting for monit in VM %s: %w", m.vm.ID(), err)
	}
	return nil
}

// reloadTimeout bounds Reload; reloadResignal is how long to wait before repeating the SIGHUP.
var (
	reloadTimeout  = 30 * time.Second
	reloadResignal = 5 * time.Second
)

// Reload makes monit re-read its control file and the job monit files (after they changed) and waits
// until it answers again with a new incarnation. The control files are syntax-checked first, inside the
// VM, so a broken job monit file is reported instead of leaving monit down. Services that are new after
// the reload stay unmonitored until started; existing services keep their state.
func (m *Monit) Reload(ctx context.Context) error {
	stdout, stderr, code, err := m.vm.Exec(ctx, []string{"monit", "-t", "-c", MonitRC}, nil, nil)
	if err != nil {
		return fmt.Errorf("checking monit configuration: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("monit configuration of VM %s is invalid: %s", m.vm.ID(),
			strings.TrimSpace(string(stdout)+" "+string(stderr)))
	}
	before, err := m.Status(ctx)
	if err != nil {
		return fmt.Errorf("reloading monit: %w", err)
	}
	// The incarnation has a resolution of one second; reload only in a later second than the current
	// incarnation so that the change is visible.
	if wait := time.Until(time.Unix(before.Incarnation+1, 0)); wait > 0 {
		if err := retry.Sleep(ctx, wait+50*time.Millisecond); err != nil {
			return err
		}
	}
	pid, err := m.vm.monitPID()
	if err != nil {
		return fmt.Errorf("reloading monit: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signalling monit (pid %d): %w", pid, err)
	}
	// A SIGHUP that reaches monit while it is still starting up or in the middle of a cycle can be dropped,
	// and then the incarnation never changes: signal again every reloadResignal, give up after reloadTimeout
	// with an error naming the VM instead of hanging the deploy.
	resignal := retry.Throttle{Every: reloadResignal}
	resignal.Due(time.Now()) // the SIGHUP above was the first signal
	err = retry.Poll(ctx, retry.Options{Interval: 100 * time.Millisecond, Timeout: reloadTimeout,
		Waiting: func(retry.Progress) {
			if !resignal.Due(time.Now()) {
				return
			}
			m.log.Warn("monit has not reloaded yet; signalling it again", zap.String("vm", m.vm.ID()))
			if pid, err := m.vm.monitPID(); err == nil {
				_ = syscall.Kill(pid, syscall.SIGHUP)
			}
		}}, func(ctx context.Context) error {
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		if st.Incarnation == before.Incarnation {
			return fmt.Errorf("incarnation still %d", before.Incarnation)
		}
		m.log.Info("monit reloaded", zap.String("vm", m.vm.ID()), zap.Int64("incarnation", st.Incarnation),
			zap.String("reason", "job monit files changed"))
		return nil
	})
	switch {
	case errors.Is(err, retry.ErrTimeout):
		return fmt.Errorf("monit in VM %s did not reload within %s of SIGHUP (incarnation still %d); see the VM's %s", m.vm.ID(), reloadTimeout, before.Incarnation, MonitLog)
	case err != nil:
		return fmt.Errorf("waiting for monit to reload in VM %s: %w", m.vm.ID(), err)
	}
	return nil
}

// action POSTs a service action. Monit 5.x protects actions with a double-submit CSRF token: the same
// value as cookie and form field.
func (m *Monit) action(ctx context.Context, service, action string) error {
	if service == "" || strings.ContainsAny(service, "/?#") {
		return fmt.Errorf("monit %s: invalid service name %q", action, service)
	}
	token, err := randomPassword(16)
	if err != nil {
		return err
	}
	form := url.Values{"action": {action}, "securitytoken": {token}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.baseURL()+"/"+url.PathEscape(service),
		strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "securitytoken", Value: token})
	if _, err := m.do(req, action+" "+service); err != nil {
		return err
	}
	m.log.Info("monit action", zap.String("vm", m.vm.ID()), zap.String("service", service),
		zap.String("action", action), zap.String("reason", "requested by director"))
	return nil
}

func (m *Monit) do(req *http.Request, what string) ([]byte, error) {
	req.SetBasicAuth(MonitUser, m.password)
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s in VM %s: %v", ErrMonitUnreachable, what, m.vm.ID(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %s in VM %s: reading answer: %v", ErrMonitUnreachable, what, m.vm.ID(), err)
	}
	if resp.StatusCode >= 400 {
		return nil, &MonitError{Request: what, Status: resp.StatusCode, Body: string(body)}
	}
	return body, nil
}

func (m *Monit) markerHostPath() string {
	return hostPathIn(m.vm.spec.DataDir, StoppedMarker)
}

func (m *Monit) stoppedMarkerExists() bool {
	_, err := os.Stat(m.markerHostPath())
	return err == nil
}

// monitXML is the part of `_status2?format=xml` this package reads.
type monitXML struct {
	XMLName     xml.Name `xml:"monit"`
	Incarnation int64    `xml:"incarnation,attr"`
	Services    []struct {
		Name          string `xml:"name,attr"`
		Type          int    `xml:"type"`
		Status        int    `xml:"status"`
		Monitor       int    `xml:"monitor"`
		PendingAction int    `xml:"pendingaction"`
		PID           int    `xml:"pid"`
		Uptime        int64  `xml:"uptime"`
		Memory        struct {
			PercentTotal  float64 `xml:"percenttotal"`
			KilobyteTotal int64   `xml:"kilobytetotal"`
		} `xml:"memory"`
		CPU struct {
			PercentTotal float64 `xml:"percenttotal"`
		} `xml:"cpu"`
	} `xml:"services>service"`
	Groups []struct {
		Name     string   `xml:"name,attr"`
		Services []string `xml:"service"`
	} `xml:"servicegroups>servicegroup"`
}

// parseMonitStatus maps monit's XML onto BOSH process states, keeping only group vcap.
func parseMonitStatus(body []byte) (*MonitStatus, error) {
	var doc monitXML
	dec := xml.NewDecoder(strings.NewReader(string(body)))
	dec.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		// monit declares ISO-8859-1; names and numbers are ASCII.
		return input, nil
	}
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parsing monit status: %w", err)
	}
	vcap := map[string]bool{}
	for _, g := range doc.Groups {
		if g.Name == VcapGroup {
			for _, s := range g.Services {
				vcap[s] = true
			}
		}
	}
	st := &MonitStatus{Incarnation: doc.Incarnation, Processes: []ProcessStatus{}}
	for _, s := range doc.Services {
		if !vcap[s.Name] {
			continue
		}
		p := ProcessStatus{
			Name: s.Name, Monitor: s.Monitor, Status: s.Status, PendingAction: s.PendingAction, PID: s.PID,
			UptimeSecs: s.Uptime, MemKB: s.Memory.KilobyteTotal, MemPercent: s.Memory.PercentTotal,
			CPUPercent: s.CPU.PercentTotal,
		}
		switch {
		case s.Monitor == 0:
			p.State = ProcessUnknown
		case s.Monitor&2 != 0:
			p.State = ProcessStarting
		case s.Status == 0:
			p.State = ProcessRunning
		default:
			p.State = ProcessFailing
		}
		st.Processes = append(st.Processes, p)
	}
	sort.Slice(st.Processes, func(i, j int) bool { return st.Processes[i].Name < st.Processes[j].Name })
	return st, nil
}
