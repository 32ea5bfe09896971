package testhelper

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKillSendsSIGKILLToTheJobsPidfiles(t *testing.T) {
	root := t.TempDir()
	run := RunDir(root, "etcd")
	require.NoError(t, os.MkdirAll(run, 0o755))
	cmd := exec.Command("sleep", "300")
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	require.NoError(t, os.WriteFile(filepath.Join(run, "etcd.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644))

	res, err := Kill(root, "etcd")
	require.NoError(t, err)
	require.Contains(t, res.Command, strconv.Itoa(cmd.Process.Pid))
	select {
	case err := <-done:
		ws := err.(*exec.ExitError).Sys().(syscall.WaitStatus)
		require.Equal(t, syscall.SIGKILL, ws.Signal())
	case <-time.After(5 * time.Second):
		t.Fatal("process not killed")
	}

	_, err = Kill(root, "etcd")
	require.ErrorContains(t, err, "no live process", "the pid is gone now")
	_, err = Kill(root, "../etc")
	require.ErrorContains(t, err, "invalid job name")
}
