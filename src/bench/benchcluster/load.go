package benchcluster

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Load writes small unique keys at a fixed rate, one in flight at a time, recording every latency.
type Load struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	res    LoadResult
}

// LoadResult is what a Load recorded.
type LoadResult struct {
	Latencies    []time.Duration
	Failed       int
	Errors       map[string]int
	LongestStall time.Duration
	Duration     time.Duration
}

// Percentile returns the p-th percentile (0–100) of the acknowledged writes' latencies.
func (r LoadResult) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	l := append([]time.Duration(nil), r.Latencies...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	i := int(float64(len(l)-1) * p / 100)
	return l[i]
}

// StartLoad writes prefix/<n> through cli at rate puts/s until Stop.
func StartLoad(cli *clientv3.Client, prefix string, rate int) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel, done: make(chan struct{}), res: LoadResult{Errors: map[string]int{}}}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		start := time.Now()
		lastAck := start
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				l.mu.Lock()
				l.res.Duration = time.Since(start)
				l.mu.Unlock()
				return
			case <-tick.C:
			}
			t0 := time.Now()
			pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := cli.Put(pctx, fmt.Sprintf("%s/%08d", prefix, n), "v")
			pcancel()
			now := time.Now()
			l.mu.Lock()
			if err != nil {
				l.res.Failed++
				l.res.Errors[err.Error()]++
			} else {
				l.res.Latencies = append(l.res.Latencies, now.Sub(t0))
				l.res.LongestStall = max(l.res.LongestStall, now.Sub(lastAck))
				lastAck = now
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// Stop ends the load and returns what it recorded.
func (l *Load) Stop() LoadResult {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}
