package maintenance

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
)

// State is what this VM's loop last did; it is written to StatePath for `etcd_ctl status`.
type State struct {
	Updated time.Time `json:"updated"`
	// Coordinator names the member whose etcd_ctl acts for the cluster.
	Coordinator string `json:"coordinator"`
	// Acting is true when this etcd_ctl is the coordinator.
	Acting bool `json:"acting"`
	// Nospace is true while a NOSPACE alarm is raised.
	Nospace bool `json:"nospace"`
	// LastAction and LastReason are the loop's last decision.
	LastAction string `json:"last_action"`
	LastReason string `json:"last_reason"`
	// LastDefrag is the last defragmentation this etcd_ctl carried out.
	LastDefrag *DefragResult `json:"last_defrag,omitempty"`
	// QuotaWarning is set while this member's db file is above the warning share of the quota.
	QuotaWarning string `json:"quota_warning,omitempty"`
	Error        string `json:"error,omitempty"`
}

// StatePath is where the loop records its State (the run dir: it describes this boot of etcd_ctl only).
func StatePath(c *config.Config) string { return filepath.Join(c.Paths.RunDir, "maintenance.json") }

// ReadState reads the loop's last State (nil when the loop has not written one).
func ReadState(c *config.Config) (*State, error) {
	b, err := os.ReadFile(StatePath(c))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	return &s, json.Unmarshal(b, &s)
}

// Loop is the maintenance loop of one etcd_ctl.
type Loop struct {
	Config *config.Config
	SelfID uint64
	Log    *zap.Logger
	Hooks  Hooks
	state  State
	// compactedAt is the revision of the last early compaction (see EarlyCompaction).
	compactedAt int64
	// recovery is the NOSPACE recovery in progress (nil while no alarm is raised).
	recovery *Recovery
	// next is when the next check runs (see NextCheck).
	next time.Duration
}

// Run checks the cluster every etcd.maintenance.check_interval_in_seconds until ctx ends.
func (l *Loop) Run(ctx context.Context) {
	iv := l.Config.Etcd.Maintenance.CheckInterval()
	l.Log.Info("maintenance loop started", zap.Duration("interval", iv), zap.String("lock", LockKey),
		zap.String("reason", "etcd.maintenance.enabled is true"))
	l.next = iv
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(l.next):
			l.Tick(ctx)
		}
	}
}

// Tick is one check: quota warning for this member; if this etcd_ctl coordinates, NOSPACE recovery or at most
// one defragmentation.
func (l *Loop) Tick(ctx context.Context) {
	l.state.Updated, l.state.Error = time.Now().UTC(), ""
	defer l.writeState()
	self := l.Config.Self()
	cli, err := etcdclient.New(l.Config, []string{self.ClientURL}, 5*time.Second)
	if err != nil {
		l.fail("creating a client", err)
		return
	}
	defer cli.Close()
	c, err := Gather(ctx, cli)
	if err != nil {
		l.fail("reading the cluster's state", err)
		return
	}
	l.warnQuota(c)
	l.state.Nospace = c.Nospace()
	l.next = NextCheck(c, ThresholdsFrom(l.Config.Etcd), l.Config.Etcd.Maintenance.CheckInterval())
	if !c.Nospace() {
		l.recovery = nil
	}
	coord, ok := Coordinator(c)
	cm, _ := c.Member(coord)
	l.state.Coordinator, l.state.Acting = cm.Name, ok && coord == l.SelfID
	if !l.state.Acting {
		l.state.LastAction, l.state.LastReason = string(None), "member "+cm.Name+"'s etcd_ctl coordinates maintenance (the healthy voter with the lowest ID)"
		return
	}
	all, err := etcdclient.New(l.Config, c.Endpoints(), 5*time.Second)
	if err != nil {
		l.fail("creating a client", err)
		return
	}
	defer all.Close()
	r := &Runner{Config: l.Config, Client: all, Log: l.Log, Hooks: l.hooks()}
	var s Step
	if c.Nospace() {
		l.Log.Warn("the NOSPACE alarm is raised; recovering", zap.String("reason", "etcd refuses writes until the alarm is disarmed"))
		if l.recovery == nil {
			l.recovery = &Recovery{}
		}
		s, err = r.Recover(ctx, l.recovery)
	} else {
		if ec := EarlyCompaction(c, ThresholdsFrom(l.Config.Etcd), l.compactedAt); ec.Action == Compact && l.Config.Etcd.Maintenance.CompactNearQuota {
			if err := r.execute(ctx, ec, nil, c); err != nil {
				l.fail("early compaction", err)
			}
			l.compactedAt = ec.Revision
		}
		s, err = r.DefragNext(ctx)
		if errors.Is(err, ErrLocked) {
			s, err = Step{Action: None, Reason: err.Error()}, nil
		}
	}
	l.state.LastAction, l.state.LastReason = string(s.Action), s.Reason
	if err != nil {
		l.fail("maintenance step "+string(s.Action), err)
	}
}

// hooks wraps the caller's hooks to record the last defragmentation in the state.
func (l *Loop) hooks() Hooks {
	h := l.Hooks
	user := h.OnDefrag
	h.OnDefrag = func(r DefragResult, err error) {
		if err == nil {
			l.state.LastDefrag = &r
		}
		if user != nil {
			user(r, err)
		}
	}
	return h
}

// warnQuota logs when this member's db crosses the warning share of the quota (once per crossing).
func (l *Loop) warnQuota(c Cluster) {
	self, ok := c.Member(l.SelfID)
	if !ok {
		return
	}
	w := QuotaWarning(self, ThresholdsFrom(l.Config.Etcd))
	switch {
	case w != "" && l.state.QuotaWarning == "":
		l.Log.Warn("db file near the quota", zap.String("reason", w))
	case w == "" && l.state.QuotaWarning != "":
		l.Log.Info("db file back below the quota warning level", zap.Int64("db-size", self.DBSize))
	}
	l.state.QuotaWarning = w
}

func (l *Loop) fail(what string, err error) {
	l.state.Error = what + ": " + err.Error()
	l.Log.Warn("maintenance check failed; retrying at the next interval", zap.String("step", what), zap.Error(err))
}

func (l *Loop) writeState() {
	b, err := json.MarshalIndent(l.state, "", "  ")
	if err == nil {
		err = atomicfile.Write(StatePath(l.Config), append(b, '\n'), 0o644)
	}
	if err != nil {
		l.Log.Warn("recording the maintenance state failed", zap.Error(err))
	}
}

// AwaitNospaceCleared returns once no NOSPACE alarm is raised in the cluster cli reaches, or fails after timeout.
// The join path calls it before taking the membership lock, whose write fails while the alarm is raised; the
// cluster's own coordinator clears the alarm (a joiner is not a member, so it never defragments anything).
func AwaitNospaceCleared(ctx context.Context, cli *clientv3.Client, timeout time.Duration, lg *zap.Logger) error {
	deadline := time.Now().Add(timeout)
	logged := false
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := cli.AlarmList(actx)
		cancel()
		raised := false
		if err == nil {
			for _, a := range resp.Alarms {
				raised = raised || a.Alarm.String() == "NOSPACE"
			}
			if !raised {
				return nil
			}
			if !logged {
				lg.Warn("waiting for the cluster to clear its NOSPACE alarm before joining",
					zap.String("reason", "the membership lock needs a write, which etcd refuses while the alarm is raised; the etcd_ctl of the healthy voter with the lowest ID compacts, defragments and disarms"))
				logged = true
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return errNospaceRaised(timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
