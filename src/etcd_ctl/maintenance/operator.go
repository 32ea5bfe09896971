package maintenance

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// CompactTarget is the revision an on-demand compaction compacts to: keep revisions below the current one stay
// readable (and watchable); it is 0 when there is nothing to compact.
func CompactTarget(current, keep int64) int64 {
	if keep < 0 {
		keep = 0
	}
	if t := current - keep; t > 1 {
		return t
	}
	return 0
}

// CompactNow compacts the keyspace to the current revision minus keep (`etcd_ctl compact`) and returns the
// revision compacted to (0: nothing to compact). Compaction is allowed while the NOSPACE alarm is raised.
func CompactNow(ctx context.Context, cli *clientv3.Client, keep int64) (int64, error) {
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	resp, err := cli.Get(gctx, LockKey, clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return 0, fmt.Errorf("reading the current revision: %w", err)
	}
	rev := CompactTarget(resp.Header.Revision, keep)
	if rev == 0 {
		return 0, nil
	}
	if err := compact(ctx, cli, rev); err != nil {
		return 0, fmt.Errorf("compacting to revision %d: %w", rev, err)
	}
	return rev, nil
}
