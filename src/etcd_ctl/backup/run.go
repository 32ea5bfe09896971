package backup

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
)

// DefaultCheckEvery is how often (at most) a running member looks whether a scheduled snapshot is due.
const DefaultCheckEvery = time.Minute

// OptionsFor are the snapshot options of c's etcd.backup.* properties, writing to dir.
func OptionsFor(c *config.Config, dir string, lg *zap.Logger) Options {
	b := c.Etcd.Backup
	o := Options{Dir: dir, Gzip: b.Gzip, KeepCount: b.KeepCount, KeepDays: b.KeepDays, Log: lg}
	if keys, err := KeysFor(c); err == nil && len(keys) > 0 {
		o.Key = &keys[0]
	}
	return o
}

// KeysFor decodes etcd.backup.encryption_keys (config.Validate has checked them).
func KeysFor(c *config.Config) ([]Key, error) {
	var out []Key
	for i, k := range c.Etcd.Backup.EncryptionKeys {
		raw, err := base64.StdEncoding.DecodeString(k.Key.Value())
		if err != nil || len(raw) != 32 {
			return nil, &config.PropertyError{Property: fmt.Sprintf("etcd.backup.encryption_keys[%d].key", i), Problem: "must be 32 random bytes in base64"}
		}
		out = append(out, Key{ID: k.ID, Key: raw})
	}
	return out, nil
}

// StartScheduler runs this member's Scheduler in the background until ctx ends or the returned stop is called
// (stop waits for a snapshot in progress to be abandoned). With scheduled snapshots off it does nothing.
// srv is the member's embedded server: snapshots are copied out of it in process (LocalSource) and sealed by
// a child etcd_ctl under idle CPU scheduling (ChildSealer), so a snapshot costs the member's clients little.
func StartScheduler(ctx context.Context, c *config.Config, srv *etcdserver.EtcdServer, lg *zap.Logger) (stop func()) {
	lg = lg.Named("backup")
	interval := time.Duration(c.Etcd.Backup.IntervalInMinutes) * time.Minute
	if interval <= 0 {
		lg.Info("scheduled snapshots are off", zap.String("reason", "etcd.backup.interval_in_minutes is 0"))
		return func() {}
	}
	self := c.Self()
	cli, err := etcdclient.New(c, []string{self.ClientURL}, 5*time.Second)
	if err != nil {
		lg.Warn("scheduled snapshots cannot run on this member", zap.Error(err))
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	// Checking a quarter interval apart (at most a minute) keeps a snapshot from slipping a whole interval when
	// a check lands a moment before the previous snapshot is exactly one interval old.
	o := OptionsFor(c, c.BackupDir(), lg)
	o.Source = LocalSource{Server: srv}
	if exe, err := os.Executable(); err == nil {
		o.Seal = ChildSealer{Path: exe, Args: []string{SealCommand}, Stderr: os.Stderr}.Seal
	} else {
		lg.Warn("snapshots are sealed inside etcd_ctl's own process, which slows client requests while one is taken", zap.Error(err))
	}
	s := &Scheduler{Client: cli, Endpoint: self.ClientURL, Member: self.Name, Interval: interval, CheckEvery: min(DefaultCheckEvery, interval/4),
		Options: o, Log: lg,
		AfterTake: func(ctx context.Context, m *Meta) { copyOffVM(ctx, c, m, lg) }}
	lg.Info("scheduled snapshots are on", zap.Duration("interval", interval), zap.String("dir", c.BackupDir()),
		zap.String("reason", fmt.Sprintf("the member holding %s when one is due takes it", LockKey)))
	go func() {
		defer close(done)
		defer cli.Close()
		s.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// TakeNow takes one snapshot through endpoint into dir with c's settings and records it as the cluster's last.
func TakeNow(ctx context.Context, c *config.Config, endpoint, dir string, lg *zap.Logger) (*Meta, error) {
	if _, err := KeysFor(c); err != nil {
		return nil, err
	}
	cli, err := etcdclient.New(c, []string{endpoint}, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	m, err := Take(ctx, cli, endpoint, OptionsFor(c, dir, lg))
	if err != nil {
		return nil, err
	}
	copyOffVM(ctx, c, m, lg)
	if err := RecordLast(ctx, cli, Last{Time: m.Time, Revision: m.Revision, Member: m.TakenBy, File: m.Path(), CopiedTo: m.CopiedTo}); err != nil {
		lg.Warn("the snapshot is written but the cluster's record of it is not", zap.Error(err))
	}
	return m, nil
}

// copyOffVM uploads m when etcd.backup.s3 is set; a failure is logged and leaves the local snapshot in place.
func copyOffVM(ctx context.Context, c *config.Config, m *Meta, lg *zap.Logger) {
	r, err := RemoteFor(c)
	if err == nil && r != nil {
		err = r.Upload(ctx, m, lg)
	}
	if err != nil {
		lg.Warn("copying the snapshot off the VM failed; the local snapshot is kept", zap.String("file", m.Path()), zap.Error(err))
	}
}
