package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/api"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

// serve runs the real director API (HTTPS, basic auth, task output with Range) on 127.0.0.1 and returns a client
// of it and the task runner behind it.
func serve(t *testing.T) (*Client, *tasks.Runner) {
	dir := t.TempDir()
	store, err := state.Open(dir)
	require.NoError(t, err)
	runner, err := tasks.NewRunner(store, zap.NewNop())
	require.NoError(t, err)
	creds, err := api.LoadOrCreateCredentials(dir, api.Credentials{})
	require.NoError(t, err)
	tlsCfg, err := api.LoadOrCreateTLS(dir, nil)
	require.NoError(t, err)
	srv := &api.Server{Name: "local", UUID: "uuid-1", Creds: creds, Store: store, Tasks: runner, Log: zap.NewNop()}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	require.NoError(t, err)
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close(); runner.Wait() })
	caPEM, err := os.ReadFile(api.TLSPaths(dir).CACert)
	require.NoError(t, err)
	c, err := New("https://"+ln.Addr().String(), caPEM, creds.User, creds.Password)
	require.NoError(t, err)
	c.PollInterval = 20 * time.Millisecond
	return c, runner
}

// TestWaitFollowsATaskToItsEnd: Wait prints every event the task writes while it runs, including the ones
// written just before it ends, and reports how it ended.
func TestWaitFollowsATaskToItsEnd(t *testing.T) {
	c, runner := serve(t)
	steps := func(fail bool) tasks.Func {
		return func(ctx context.Context, out *tasks.Output) error {
			st := out.Stage("Updating instance", []string{"etcd"}, 3)
			for _, name := range []string{"etcd/0", "etcd/1", "etcd/2"} {
				if err := st.Step(name, func() error { time.Sleep(60 * time.Millisecond); return nil }); err != nil {
					return err
				}
			}
			if fail {
				return errors.New("etcd/2 is not running after update")
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name string
		fail bool
	}{{"done", false}, {"error", true}} {
		t.Run(tc.name, func(t *testing.T) {
			task, err := runner.Submit("deploy", "admin", "etcd", steps(tc.fail))
			require.NoError(t, err)
			var events strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			got, err := c.Wait(ctx, task.ID, &events)
			require.Equal(t, task.ID, got.ID)
			for _, name := range []string{"etcd/0", "etcd/1", "etcd/2"} {
				require.Contains(t, events.String(), name)
			}
			if !tc.fail {
				require.NoError(t, err)
				require.Equal(t, "done", got.State)
				return
			}
			var failed *TaskFailedError
			require.ErrorAs(t, err, &failed)
			require.Equal(t, "error", failed.Task.State)
		})
	}
}

// TestWaitEndsWithTheContext: a task that outlives the caller's context returns the context's error.
func TestWaitEndsWithTheContext(t *testing.T) {
	c, runner := serve(t)
	release := make(chan struct{})
	defer close(release)
	task, err := runner.Submit("long", "admin", "etcd", func(ctx context.Context, out *tasks.Output) error {
		<-release
		return nil
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = c.Wait(ctx, task.ID, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
