package backup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// childEnv makes this test binary act as a child process instead of running tests: "seal" is RunSealChild
// (what `etcd_ctl seal-snapshot` runs), "idle" reports the scheduling policy of its threads after
// IdleScheduling, including a thread started afterwards.
const childEnv = "BACKUP_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "seal":
		if err := RunSealChild(context.Background(), os.Stdin, os.Stdout, zap.NewNop()); err != nil {
			fmt.Fprintln(os.Stderr, "seal child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "idle":
		os.Exit(reportIdle())
	}
	os.Exit(m.Run())
}

func testChild(mode string) ChildSealer {
	return ChildSealer{Path: os.Args[0], Args: []string{"-test.run=^$"}, Env: append(os.Environ(), childEnv+"="+mode), Stderr: os.Stderr}
}

func reportIdle() int {
	if err := IdleScheduling(); err != nil {
		fmt.Println("IdleScheduling:", err)
		return 1
	}
	done := make(chan int)
	go func() {
		runtime.LockOSThread() // a thread of its own, which the runtime may have to start now
		a, err := unix.SchedGetAttr(unix.Gettid(), 0)
		if err != nil {
			done <- -1
			return
		}
		done <- int(a.Policy)
	}()
	policies := []string{"late:" + strconv.Itoa(<-done)}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue
		}
		policies = append(policies, strconv.Itoa(int(a.Policy)))
	}
	fmt.Println(strings.Join(policies, " "))
	return 0
}

// Every thread of the seal child, including threads the runtime starts after IdleScheduling, runs under
// SCHED_IDLE.
func TestIdleSchedulingCoversEveryThread(t *testing.T) {
	c := testChild("idle")
	cmd := execCommand(c)
	out, err := cmd.Output()
	require.NoError(t, err, "%s", out)
	fields := strings.Fields(strings.TrimSpace(string(out)))
	require.GreaterOrEqual(t, len(fields), 3, "a late thread and the process's threads: %s", out)
	require.Equal(t, fmt.Sprintf("late:%d", unix.SCHED_IDLE), fields[0])
	for _, f := range fields[1:] {
		require.Equal(t, strconv.Itoa(unix.SCHED_IDLE), f, "every thread: %s", out)
	}
}

// A child that cannot seal (here: the part file is gone) fails the snapshot with its reason, and nothing
// is put in place.
func TestChildSealerReportsTheChildsFailure(t *testing.T) {
	dir := t.TempDir()
	_, err := testChild("seal").Seal(context.Background(), Part{Path: dir + "/.etcd-snapshot-gone.part"}, &Meta{}, Options{Dir: dir})
	require.ErrorContains(t, err, "no such file")
	entries, _ := os.ReadDir(dir)
	require.Empty(t, entries)
}

func execCommand(c ChildSealer) *exec.Cmd {
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = c.Env
	return cmd
}

// A child that has not copied the data pages within CopyTimeout is stopped, so that the member's read
// transaction does not stay open, and the snapshot fails without a file in place.
func TestChildSealerStopsAStarvedCopy(t *testing.T) {
	e, cli, _ := startEtcdServer(t)
	put(t, cli, 100)
	dir := t.TempDir()
	part, err := LocalSource{Server: e.Server}.Copy(context.Background(), dir)
	require.NoError(t, err)
	defer part.release()
	c := testChild("seal")
	c.CopyTimeout = time.Millisecond // far less than a process start
	_, err = c.Seal(context.Background(), part, &Meta{Time: time.Now()}, Options{Dir: dir})
	require.ErrorContains(t, err, "had not copied the database after 1ms")
	listed, err := List(dir)
	require.NoError(t, err)
	require.Empty(t, listed)
}
