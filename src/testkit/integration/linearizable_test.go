package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/testkit/linearizability"
)

// TestHistoryStaysLinearizableThroughRestartsAndAWipe records every put and get of several clients while each
// member is drained and restarted and one member is wiped and rejoins, then checks the history with porcupine.
func TestHistoryStaysLinearizableThroughRestartsAndAWipe(t *testing.T) {
	c := newCluster(t, 3, withTLS(true, true))
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	rec := &linearizability.Recorder{}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		linearizability.Workload(ctx, c.client(), rec, "/lin", 4, 4, 100)
		close(done)
	}()
	time.Sleep(time.Second)
	for i := 0; i < 3; i++ {
		out, err := c.drain(i, "job_changed", 1024)
		require.NoError(t, err, out)
		c.stop(i)
		if i == 1 {
			c.wipe(i)
		}
		c.start(i)
		c.waitReady(i, 2*time.Minute)
	}
	time.Sleep(time.Second)
	stop()
	<-done
	ops := rec.Ops()
	completed := 0
	for _, op := range ops {
		if op.Done {
			completed++
		}
	}
	t.Logf("%d operations recorded, %d completed", len(ops), completed)
	require.Greater(t, completed, 200)
	verdict, err := linearizability.Check(ops, time.Minute, "")
	require.NoError(t, err)
	require.Equal(t, linearizability.Linearizable, verdict)
	c.requireHealthy(3)
}
