package etcdserver

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Bounds of etcd's own log lines. etcd cannot be configured to log less of a loop such as its publish retry in
// server/etcdserver/server.go (publishV3 logs every failed attempt at warn, and a refused proposal fails at
// once, so it loops without a pause): its only knob is the level, and "warn" would hide warnings that matter.
// So etcd_ctl samples etcd's logger: per message text, the first EtcdLogBurst lines of every EtcdLogTick pass
// and the rest are counted, then reported in one line per message and tick.
const (
	EtcdLogTick  = 10 * time.Second
	EtcdLogBurst = 20
)

// sampledEtcdLogger is lg named "etcd", with repeats bounded as described at EtcdLogTick.
func sampledEtcdLogger(lg *zap.Logger) *zap.Logger { return newSampledLogger(lg, time.Now) }

func newSampledLogger(lg *zap.Logger, now func() time.Time) *zap.Logger {
	d := &dropCounter{lg: lg.Named("etcd"), dropped: map[string]int{}, now: now, last: now()}
	return lg.Named("etcd").WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, EtcdLogTick, EtcdLogBurst, 0, zapcore.SamplerHook(d.hook))
	}))
}

// dropCounter reports the lines the sampler dropped, through the unsampled logger, at most once per tick.
type dropCounter struct {
	lg      *zap.Logger
	now     func() time.Time
	mu      sync.Mutex
	dropped map[string]int
	last    time.Time
}

func (d *dropCounter) hook(ent zapcore.Entry, dec zapcore.SamplingDecision) {
	d.mu.Lock()
	if dec&zapcore.LogDropped != 0 {
		d.dropped[ent.Message]++
	}
	now := d.now()
	if now.Sub(d.last) < EtcdLogTick || len(d.dropped) == 0 {
		d.mu.Unlock()
		return
	}
	report := d.dropped
	d.dropped, d.last = map[string]int{}, now
	d.mu.Unlock()
	for msg, n := range report {
		d.lg.Warn("etcd repeated a log line; repeats were dropped", zap.String("repeated-msg", msg), zap.Int("dropped", n), zap.Duration("per", EtcdLogTick))
	}
}
