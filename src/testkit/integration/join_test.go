package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
)

// TestJoinsAreSerialisedAndRolledBack drives the membership manager of two would-be joiners against a live
// one-member cluster: the first takes the membership lock and adds itself as a learner; the second waits for
// the lock; rolling the first back removes its learner and lets the second in.
func TestJoinsAreSerialisedAndRolledBack(t *testing.T) {
	c := newCluster(t, 3, withTLS(true, true))
	c.start(0)
	c.waitReady(0, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	first := membership.NewManager(c.config(1), zap.NewNop())
	st1, err := first.Prepare(ctx)
	require.NoError(t, err)
	require.Equal(t, membership.KindJoin, st1.Kind)
	require.Len(t, st1.Plan.InitialCluster, 2, "the live member and the new learner")
	learners := func() int {
		resp, err := c.client(0).MemberList(ctx)
		require.NoError(t, err)
		n := 0
		for _, m := range resp.Members {
			if m.IsLearner {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, learners())

	second := membership.NewManager(c.config(2), zap.NewNop())
	type result struct {
		st  *membership.Start
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := second.Prepare(ctx)
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("the second joiner did not wait for the membership lock: %+v %v", r.st, r.err)
	case <-time.After(3 * time.Second):
	}
	require.Equal(t, 1, learners(), "no second learner while the first join holds the lock")

	require.NoError(t, first.Abort(st1))
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, membership.KindJoin, r.st.Kind)
	resp, err := c.client(0).MemberList(ctx)
	require.NoError(t, err)
	require.Len(t, resp.Members, 2, "the first learner was removed; only the second was added")
	require.NoError(t, second.Abort(r.st))

	locks, err := c.client(0).Get(ctx, membership.LockKey, clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	require.Zero(t, locks.Count, "the lock was released")
	c.requireHealthy(1)
}
