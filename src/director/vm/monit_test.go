package vm

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// installTestJob writes a BOSH-style job (ctl script + monit file) into the VM's data dir: a TCP server on
// port that answers with the VM id, started in the background by its ctl script as BOSH jobs do.
func installTestJob(t *testing.T, v *VM, job string, port int) {
	t.Helper()
	ctl := fmt.Sprintf(`#!/bin/bash
set -e
RUN=/var/vcap/sys/run/%[1]s
LOG=/var/vcap/sys/log/%[1]s
case "$1" in
  start)
    mkdir -p "$RUN" "$LOG"
    nohup %[2]s vmtest-serve %[3]d >>"$LOG/%[1]s.log" 2>&1 &
    echo $! > "$RUN/%[1]s.pid"
    ;;
  stop)
    kill "$(cat "$RUN/%[1]s.pid")" || true
    rm -f "$RUN/%[1]s.pid"
    ;;
esac
`, job, testExe(t), port)
	monitFile := fmt.Sprintf(`check process %[1]s
  with pidfile /var/vcap/sys/run/%[1]s/%[1]s.pid
  start program "/var/vcap/jobs/%[1]s/bin/ctl start"
  stop program "/var/vcap/jobs/%[1]s/bin/ctl stop"
  group vcap
`, job)
	bin, err := v.HostPath("/var/vcap/jobs/" + job + "/bin")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(bin, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "ctl"), []byte(ctl), 0o750))
	mf, err := v.HostPath("/var/vcap/monit/job/0000_" + job + ".monitrc")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(mf, []byte(monitFile), 0o640))
}

func procByName(t *testing.T, m *Monit, name string) ProcessStatus {
	t.Helper()
	procs, err := m.Processes(context.Background())
	require.NoError(t, err)
	for _, p := range procs {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no process %q in %+v", name, procs)
	return ProcessStatus{}
}

func TestMonitManagesJob(t *testing.T) {
	tn := newTestNet(t)
	v := tn.create(tn.spec("monit", 8))
	m := v.Monit()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	eventually := func(cond func() bool, msg string) {
		t.Helper()
		require.Eventually(t, cond, 20*time.Second, 100*time.Millisecond, msg)
	}
	jobState := func() string { s, _ := m.JobState(ctx); return s }

	// A VM with no services is running: the agent's job state has no services to fail.
	require.Equal(t, JobRunning, jobState())

	// A new job appears through Reload, unmonitored and not started.
	installTestJob(t, v, "testjob", 9090)
	require.NoError(t, m.Reload(ctx))
	p := procByName(t, m, "testjob")
	require.Equal(t, ProcessUnknown, p.State)
	require.Equal(t, JobFailing, jobState())
	time.Sleep(2 * time.Second) // two monit cycles: still not started
	require.Equal(t, ProcessUnknown, procByName(t, m, "testjob").State)
	_, _, code, err := v.Exec(ctx, []string{"test", "-e", "/var/vcap/sys/run/testjob/testjob.pid"}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 1, code, "the job must not start before it is asked to")

	// Start: running and serving on the VM address.
	require.NoError(t, m.Start(ctx, "testjob"))
	eventually(func() bool { return procByName(t, m, "testjob").State == ProcessRunning }, "testjob running")
	require.Equal(t, JobRunning, jobState())
	require.NoError(t, Reachable(ctx, v.IP(), 9090))
	require.Equal(t, v.ID(), readLine(t, fmt.Sprintf("%s:9090", v.IP())))
	p = procByName(t, m, "testjob")
	require.NotZero(t, p.PID)
	require.NotZero(t, p.MemKB)

	// kill -9: monit notices within a cycle or two and starts it again.
	mustExec(t, v, nil, "/bin/sh", "-c", "kill -9 $(cat /var/vcap/sys/run/testjob/testjob.pid)")
	eventually(func() bool {
		q := procByName(t, m, "testjob")
		return q.State == ProcessRunning && q.PID != 0 && q.PID != p.PID
	}, "testjob restarted by monit with a new pid")
	require.NoError(t, Reachable(ctx, v.IP(), 9090))

	// Stop: not running any more, port closed.
	require.NoError(t, m.Stop(ctx, "testjob"))
	eventually(func() bool {
		q := procByName(t, m, "testjob")
		return q.State == ProcessUnknown && q.PendingAction == 0
	}, "testjob stopped")
	out := mustExec(t, v, nil, "/bin/sh", "-c", "grep -l vmtest-[s]erve /proc/[0-9]*/cmdline 2>/dev/null | wc -l")
	require.Equal(t, "0", strings.TrimSpace(out))
	require.Equal(t, JobFailing, jobState(), "an unmonitored service counts as failing")

	// StartAll / StopAll as the agent does them, with the stopped marker.
	require.NoError(t, m.StartAll(ctx))
	eventually(func() bool { return jobState() == JobRunning }, "job_state running after StartAll")
	require.NoError(t, m.StopAll(ctx))
	require.Equal(t, JobStopped, jobState())
	marker, err := v.HostPath(StoppedMarker)
	require.NoError(t, err)
	require.FileExists(t, marker)
	require.NoError(t, m.StartAll(ctx))
	require.NoFileExists(t, marker)
	eventually(func() bool { return jobState() == JobRunning }, "job_state running again")

	// A reload keeps running services running and monitored.
	before := procByName(t, m, "testjob")
	require.NoError(t, m.Reload(ctx))
	after := procByName(t, m, "testjob")
	require.Equal(t, before.PID, after.PID)
	require.Equal(t, 1, after.Monitor)

	// The stemcell's monit wrapper works for scripts inside the VM (the test helper job uses it).
	out = mustExec(t, v, nil, MonitWrapper, "summary")
	require.Contains(t, out, "testjob")

	// A broken monit file is reported by Reload and leaves monit answering.
	bad, err := v.HostPath("/var/vcap/monit/job/0001_bad.monitrc")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, []byte("check process bad with nonsense\n"), 0o640))
	err = m.Reload(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "invalid")
	require.NoError(t, os.Remove(bad))
	require.Equal(t, JobRunning, jobState())

	// Unknown services are monit errors, not transport errors.
	err = m.Start(ctx, "nope")
	var me *MonitError
	require.ErrorAs(t, err, &me)

	// Monit itself dying is survived: the VM init restarts it and the job keeps its state (monit saves
	// its state file once per cycle, so let a couple of cycles pass first).
	time.Sleep(2500 * time.Millisecond)
	monitPID, err := v.monitPID()
	require.NoError(t, err)
	mustExec(t, v, nil, "/bin/sh", "-c", "kill -9 $(cat /var/vcap/data/sys/run/monit.pid)")
	eventually(func() bool {
		pid, err := v.monitPID()
		return err == nil && pid != monitPID
	}, "monit restarted by the VM init")
	eventually(func() bool { return jobState() == JobRunning }, "job still running and monitored after monit restart")
	require.Equal(t, strconv.Itoa(after.PID), strings.TrimSpace(mustExec(t, v, nil, "cat", "/var/vcap/sys/run/testjob/testjob.pid")))
}

func TestParseMonitStatus(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "status2.xml"))
	require.NoError(t, err)
	st, err := parseMonitStatus(body)
	require.NoError(t, err)
	require.Equal(t, int64(1795345113), st.Incarnation)
	// Only group vcap, sorted; "vm" (system) and "other" (no group) are left out.
	names := []string{}
	for _, p := range st.Processes {
		names = append(names, p.Name+"="+p.State)
	}
	require.Equal(t, []string{"etcd=running", "failing=failing", "initializing=starting", "unmonitored=unknown"}, names)
	etcd := st.Processes[0]
	require.Equal(t, 9188, etcd.PID)
	require.Equal(t, int64(3), etcd.UptimeSecs)
	require.Equal(t, int64(1676), etcd.MemKB)
	require.InDelta(t, 1.5, etcd.MemPercent, 0.001)
	require.InDelta(t, 2.5, etcd.CPUPercent, 0.001)

	_, err = parseMonitStatus([]byte("<html>not xml"))
	require.Error(t, err)
}

func TestJobState(t *testing.T) {
	ps := func(states ...string) []ProcessStatus {
		out := []ProcessStatus{}
		for i, s := range states {
			out = append(out, ProcessStatus{Name: strconv.Itoa(i), State: s})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		stopped bool
		procs   []ProcessStatus
		want    string
	}{
		{"no services is running", false, ps(), JobRunning},
		{"all running", false, ps(ProcessRunning, ProcessRunning), JobRunning},
		{"marker wins", true, ps(ProcessRunning), JobStopped},
		{"starting beats failing", false, ps(ProcessFailing, ProcessStarting), JobStarting},
		{"one failing", false, ps(ProcessRunning, ProcessFailing), JobFailing},
		{"unmonitored is failing", false, ps(ProcessRunning, ProcessUnknown), JobFailing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, jobState(tc.stopped, tc.procs))
		})
	}
}

func TestMonitRCAvoidsReservedWordsAndStartsNothing(t *testing.T) {
	rc := renderMonitRC(1500*time.Millisecond, true)
	require.Contains(t, rc, "set daemon 2\n")
	require.Contains(t, rc, "set onreboot nostart\n")
	require.Contains(t, rc, "use address 127.0.0.1")
	require.Contains(t, rc, "allow cleartext "+MonitUserFile)
	require.Contains(t, rc, "include /var/vcap/monit/job/*.monitrc\n")
	require.NotContains(t, strings.ToLower(rc), "secret")
	require.NotContains(t, renderMonitRC(time.Second, false), "include")
	for i := 0; i < 50; i++ {
		pw, err := randomPassword(24)
		require.NoError(t, err)
		require.Len(t, pw, 24)
		require.Regexp(t, `^[A-Za-z][A-Za-z0-9]+$`, pw)
	}
}

func TestSpecValidate(t *testing.T) {
	good := Spec{ID: "lbosh-vm-1", Bridge: "lbosh0", DataDir: "/tmp/x"}
	good.Address = netip.MustParsePrefix("10.244.0.2/16")
	good.Gateway = netip.MustParseAddr("10.244.0.1")
	require.NoError(t, good.Validate())

	bad := Spec{ID: "../x", Bridge: "a-bridge-name-too-long", DataDir: "rel", DiskDir: "rel"}
	bad.Address = netip.MustParsePrefix("10.244.0.1/16")
	bad.Gateway = netip.MustParseAddr("10.245.0.1")
	err := bad.Validate()
	require.Error(t, err)
	for _, want := range []string{"id", "gateway 10.245.0.1: not inside 10.244.0.0/16", "bridge", "data dir", "disk dir"} {
		require.Contains(t, err.Error(), want)
	}
	bcast := good
	bcast.Address = netip.MustParsePrefix("10.244.255.255/16")
	require.ErrorContains(t, bcast.Validate(), "broadcast")

	require.LessOrEqual(t, len(vethName("lbosh-"+strings.Repeat("x", 90))), MaxIfNameLen)
}

func TestHostPath(t *testing.T) {
	v := &VM{spec: Spec{ID: "x", DataDir: "/d/data", DiskDir: "/d/disk"}}
	for in, want := range map[string]string{
		"/var/vcap":                          "/d/data",
		"/var/vcap/jobs/etcd/bin/ctl":        "/d/data/jobs/etcd/bin/ctl",
		"/var/vcap/store":                    "/d/disk",
		"/var/vcap/store/etcd/member":        "/d/disk/etcd/member",
		"/var/vcap/sys/log/etcd/etcd.log":    "/d/data/sys/log/etcd/etcd.log",
		"/var/vcap/monit/job/0000_x.monitrc": "/d/data/monit/job/0000_x.monitrc",
	} {
		got, err := v.HostPath(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"/etc/passwd", "/var/vcap/../etc", "/var/vcap/sys/run/etcd/etcd.pid", "relative"} {
		_, err := v.HostPath(in)
		require.Error(t, err, in)
	}
	v.spec.DiskDir = ""
	_, err := v.HostPath("/var/vcap/store/x")
	require.Error(t, err)
}

func TestNewVMOnUsedDataDirStartsNothing(t *testing.T) {
	tn := newTestNet(t)
	spec := tn.spec("reuse", 9)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v1, err := Create(ctx, spec)
	require.NoError(t, err)
	installTestJob(t, v1, "testjob", 9191)
	require.NoError(t, v1.Monit().Reload(ctx))
	require.NoError(t, v1.Monit().StartAll(ctx))
	require.NoError(t, Reachable(ctx, v1.IP(), 9191))

	// The director dies; its VM is reaped without any monit stop.
	_, err = Reap(ctx, tn.prefix(), tn.log)
	require.NoError(t, err)

	// A new VM on the same data dir finds the job's monit file but does not start it.
	v2 := tn.create(spec)
	m := v2.Monit()
	require.Equal(t, ProcessUnknown, procByName(t, m, "testjob").State)
	time.Sleep(2 * time.Second)
	require.Equal(t, ProcessUnknown, procByName(t, m, "testjob").State)
	state, _ := m.JobState(ctx)
	require.Equal(t, JobFailing, state)
	rc, err := os.ReadFile(hostPathIn(spec.DataDir, MonitRC))
	require.NoError(t, err)
	require.Contains(t, string(rc), "include "+MonitJobDir)

	require.NoError(t, m.StartAll(ctx))
	require.Eventually(t, func() bool { s, _ := m.JobState(ctx); return s == JobRunning }, 20*time.Second, 100*time.Millisecond)
	require.NoError(t, Reachable(ctx, v2.IP(), 9191))
}
