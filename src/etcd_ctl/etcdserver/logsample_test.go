package etcdserver

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A loop that logs the same warning as fast as it can (etcd's publish retry) reaches the log EtcdLogBurst times
// per tick, then as one line with the count; other messages are not affected.
func TestSampledEtcdLoggerBoundsRepeats(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	lg := newSampledLogger(zap.New(core), clock)
	for i := 0; i < 1000; i++ {
		lg.Warn("failed to publish local member to cluster through raft", zap.Int("i", i))
	}
	lg.Info("applied snapshot")
	if got := logs.FilterMessage("failed to publish local member to cluster through raft").Len(); got != EtcdLogBurst {
		t.Fatalf("%d repeated lines reached the log, want %d", got, EtcdLogBurst)
	}
	if logs.FilterMessage("applied snapshot").Len() != 1 {
		t.Fatal("a different message was dropped")
	}
	if logs.FilterMessage("etcd repeated a log line; repeats were dropped").Len() != 0 {
		t.Fatal("reported drops before a tick passed")
	}
	mu.Lock()
	now = now.Add(EtcdLogTick)
	mu.Unlock()
	lg.Warn("failed to publish local member to cluster through raft")
	reports := logs.FilterMessage("etcd repeated a log line; repeats were dropped").All()
	if len(reports) != 1 {
		t.Fatalf("%d drop reports, want 1", len(reports))
	}
	f := reports[0].ContextMap()
	if f["repeated-msg"] != "failed to publish local member to cluster through raft" || f["dropped"] != int64(1000-EtcdLogBurst+1) {
		t.Fatalf("report %v", f)
	}
	if reports[0].LoggerName != "etcd" {
		t.Fatalf("report logged by %q, want the etcd logger's name", reports[0].LoggerName)
	}
}
