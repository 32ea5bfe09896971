// Package loadgen writes unique keys to an etcd cluster at a steady rate, records every acknowledged write and
// the longest stall, and reads them all back afterwards. Tests and benchmarks use it to prove that membership
// changes lose no acknowledged write.
package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Result summarises a run.
type Result struct {
	Acked  []string
	Failed int
	// Errors holds up to 10 distinct failure messages.
	Errors []string
	// LongestStall is the longest time between two consecutive acknowledgements (or from start to the first).
	LongestStall time.Duration
	// MaxLatency is the slowest acknowledged write.
	MaxLatency time.Duration
	Duration   time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%d acked, %d failed, longest stall %s, max latency %s over %s", len(r.Acked), r.Failed,
		r.LongestStall.Round(time.Millisecond), r.MaxLatency.Round(time.Millisecond), r.Duration.Round(time.Millisecond))
}

// Writer is one running writer.
type Writer struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	res    Result
}

// Start writes prefix/<n> keys through cli, rate per second, one write in flight at a time, until Stop.
func Start(cli *clientv3.Client, prefix string, rate int, timeout time.Duration) *Writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{cancel: cancel, done: make(chan struct{})}
	go w.run(ctx, cli, prefix, rate, timeout)
	return w
}

func (w *Writer) run(ctx context.Context, cli *clientv3.Client, prefix string, rate int, timeout time.Duration) {
	defer close(w.done)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	start := time.Now()
	lastAck := start
	seen := map[string]bool{}
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			w.res.Duration = time.Since(start)
			w.mu.Unlock()
			return
		case <-tick.C:
		}
		key := fmt.Sprintf("%s/%08d", prefix, n)
		t0 := time.Now()
		pctx, pcancel := context.WithTimeout(context.Background(), timeout)
		_, err := cli.Put(pctx, key, key)
		pcancel()
		now := time.Now()
		w.mu.Lock()
		if err != nil {
			w.res.Failed++
			if msg := err.Error(); !seen[msg] && len(w.res.Errors) < 10 {
				seen[msg] = true
				w.res.Errors = append(w.res.Errors, msg)
			}
		} else {
			w.res.Acked = append(w.res.Acked, key)
			if d := now.Sub(lastAck); d > w.res.LongestStall {
				w.res.LongestStall = d
			}
			if d := now.Sub(t0); d > w.res.MaxLatency {
				w.res.MaxLatency = d
			}
			lastAck = now
		}
		w.mu.Unlock()
	}
}

// Stop ends the writer and returns what it recorded.
func (w *Writer) Stop() Result {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.res
}

// Missing returns the acknowledged keys that a linearizable read through cli does not find.
func Missing(ctx context.Context, cli *clientv3.Client, prefix string, acked []string) ([]string, error) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := cli.Get(rctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("reading back %s: %w", prefix, err)
	}
	have := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	var missing []string
	for _, k := range acked {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	return missing, nil
}
