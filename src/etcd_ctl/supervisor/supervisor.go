// Package supervisor runs one etcd member in the foreground for monit: validate, decide how to start, run the
// embedded etcd, and stop it gracefully on request. It is what `etcd_ctl start` does.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/auth"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/maintenance"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/metrics"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
)

// StopTimeout bounds the graceful stop; after it etcd is stopped hard.
const StopTimeout = 30 * time.Second

// DrainMarker is written by `etcd_ctl drain` before it removes this member, so that the supervisor knows the
// removal was intended and does not rejoin (see config.Paths.DrainMarker).
func DrainMarker(c *config.Config) string { return c.Paths.DrainMarker() }

// ErrRemoved means this member was removed from the cluster while running (not by drain).
var ErrRemoved = errors.New("this member was removed from the cluster")

// Run validates c, prepares membership, runs etcd until ctx is cancelled (SIGTERM), then stops gracefully.
func Run(ctx context.Context, c *config.Config, lg *zap.Logger) error {
	warnings, err := c.Validate(time.Now())
	for _, w := range warnings {
		lg.Warn("configuration warning", zap.String("warning", w))
	}
	if err != nil {
		return fmt.Errorf("invalid configuration (nothing was started):\n%w", err)
	}
	// The metrics listener runs from before the decision until etcd_ctl exits, so a waiting member is visible;
	// binding it first means a port conflict fails start before anything is written.
	met, err := metrics.Start(c, lg)
	if err != nil {
		return fmt.Errorf("nothing was started: %w", err)
	}
	defer met.Close()
	if err := os.MkdirAll(c.Paths.RunDir, 0o755); err != nil {
		return fmt.Errorf("creating run dir: %w", err)
	}
	pid := c.Paths.PidFile()
	if err := os.WriteFile(pid, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing pidfile: %w", err)
	}
	defer os.Remove(pid)
	// A marker from an earlier life of this VM is stale: this start is a deliberate (re)start.
	_ = os.Remove(DrainMarker(c))
	if err := etcdserver.WriteTLSFiles(c); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Paths.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}

	mgr := membership.NewManager(c, lg)
	// A consul source keeps this member's TTL health check fresh from registration until etcd_ctl exits.
	if cl, ok := mgr.Peers.(io.Closer); ok {
		defer cl.Close()
	}
	setHealth := func(f peers.HealthFunc) {
		if hr, ok := mgr.Peers.(peers.HealthReporter); ok {
			hr.SetHealth(f)
		}
	}
	r := &run{c: c, lg: lg, mgr: mgr, met: met, setHealth: setHealth}
	for {
		stepped, err := r.once(ctx)
		if err != nil || !stepped {
			return err
		}
		lg.Info("deciding again how to start", zap.String("reason", "this member stepped down from a cluster without client writes"))
	}
}

// run is one `etcd_ctl start`: what every (re)decision of how to start shares.
type run struct {
	c         *config.Config
	lg        *zap.Logger
	mgr       *membership.Manager
	met       *metrics.Service
	setHealth func(peers.HealthFunc)
	// stopMaintenance and stopBackups stop this start's maintenance loop and snapshot scheduler (idempotent; nil
	// before etcd runs).
	stopMaintenance, stopBackups func()
}

// once decides how to start, runs etcd and supervises it. stepped reports that the member stepped down from a
// cluster it had created or joined (etcd is stopped, its data moved aside) and must decide again.
func (r *run) once(ctx context.Context) (stepped bool, err error) {
	r.met.Deciding()
	st, err := r.mgr.Prepare(ctx)
	if err != nil {
		return false, fmt.Errorf("deciding how to start: %w", err)
	}
	r.met.Decided(st.Kind)
	srv, err := r.startEtcd(ctx, st)
	if err != nil {
		return false, err
	}
	r.setHealth(etcdHealth(srv))
	r.met.EtcdRunning(srv.Etcd().Server, st.Kind)
	if err := r.mgr.Complete(ctx, st, srv); err != nil {
		r.stop(srv)
		if aerr := r.mgr.Abort(st); aerr != nil {
			r.lg.Warn("rolling back the join failed", zap.Error(aerr))
		}
		return false, err
	}
	r.met.Running()
	r.lg.Info("member is running", zap.String("kind", st.Kind), zap.String("member-id", srv.Etcd().Server.MemberID().String()))
	r.stopMaintenance = startMaintenance(ctx, r.c, srv, r.met.MaintenanceHooks(), r.lg)
	defer r.stopMaintenance()
	// Scheduled snapshots (etcd.backup.*) run while the member does.
	r.stopBackups = backup.StartScheduler(ctx, r.c, srv.Etcd().Server, r.lg)
	defer r.stopBackups()
	// etcd.auth.*: users, roles and whether authentication is on, one member at a time.
	auth.Start(ctx, r.c, r.lg)
	return r.supervise(ctx, st, srv)
}

// startEtcd builds the embedded etcd's configuration for the decision and starts it, waiting on the member's
// progress (Manager.ReadyWaiter); a failure rolls a join back.
func (r *run) startEtcd(ctx context.Context, st *membership.Start) (*etcdserver.Server, error) {
	ecfg, err := etcdserver.BuildConfig(r.c, st.Plan)
	if err != nil {
		_ = r.mgr.Abort(st)
		return nil, err
	}
	r.lg.Info("starting etcd", zap.String("kind", st.Kind), zap.String("reason", st.Reason), zap.String("flags", strings.Join(etcdserver.Flags(ecfg), " ")))
	wait, doneWaiting := r.mgr.ReadyWaiter(ctx, st)
	srv, err := etcdserver.StartWaiting(ctx, ecfg, r.lg, wait)
	doneWaiting()
	if err != nil {
		if aerr := r.mgr.Abort(st); aerr != nil {
			r.lg.Warn("rolling back the join failed", zap.Error(aerr))
		}
		return nil, err
	}
	return srv, nil
}

func stopping() (bool, string) { return false, "etcd is stopping" }

// markStopping tells consul and /health that etcd is going away, and ends the maintenance loop and the snapshot
// scheduler first so that no compaction, defragmentation or snapshot runs against a stopping server.
func (r *run) markStopping() {
	r.setHealth(stopping)
	r.met.EtcdStopping("etcd is stopping")
	for _, stop := range []func(){r.stopMaintenance, r.stopBackups} {
		if stop != nil {
			stop()
		}
	}
}

// stop stops etcd gracefully, hard after StopTimeout.
func (r *run) stop(srv *etcdserver.Server) {
	r.markStopping()
	stopCtx, cancel := context.WithTimeout(context.Background(), StopTimeout)
	defer cancel()
	srv.Stop(stopCtx)
}

// supervise waits for a stop signal, etcd failing or stopping, or (for a member that created or joined a cluster
// without client writes in this start) the decision to step down.
func (r *run) supervise(ctx context.Context, st *membership.Start, srv *etcdserver.Server) (bool, error) {
	wctx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	watch := r.mgr.WatchNewCluster(wctx, st, srv)
	for {
		select {
		case d, ok := <-watch:
			if !ok {
				watch = nil
				continue
			}
			r.lg.Warn("stepping down from a cluster without client writes", zap.String("reason", d.Reason))
			r.stop(srv)
			if err := r.mgr.StepDown(d); err != nil {
				return false, err
			}
			return true, nil
		case <-ctx.Done():
			r.lg.Info("stopping etcd", zap.String("reason", "received a stop signal"))
			r.stop(srv)
			return false, nil
		case err := <-srv.Err():
			r.stop(srv)
			return false, fmt.Errorf("etcd failed: %w", err)
		case <-srv.Stopped():
			return false, r.stoppedOnItsOwn(ctx, srv)
		}
	}
}

// stoppedOnItsOwn handles etcd stopping without being asked: after drain removed this member it stays stopped
// until monit stops the job; otherwise etcd_ctl exits so that monit restarts it and it decides again.
func (r *run) stoppedOnItsOwn(ctx context.Context, srv *etcdserver.Server) error {
	r.markStopping()
	if _, err := os.Stat(DrainMarker(r.c)); err == nil {
		if cl, ok := r.mgr.Peers.(io.Closer); ok {
			cl.Close() // drain deregisters this member; there is no check left to refresh
		}
		r.lg.Info("etcd stopped after drain removed this member; staying stopped until monit stops the job",
			zap.String("reason", "the instance is being deleted"))
		<-ctx.Done()
		return nil
	}
	r.stop(srv)
	return fmt.Errorf("etcd stopped on its own (most likely %w); exiting so that monit restarts etcd_ctl, which moves the old data aside and rejoins", ErrRemoved)
}

// startMaintenance runs the maintenance loop (with etcd.maintenance.enabled; hooks feed the metrics) and returns
// its stop function, which
// waits for the loop to finish its step (an interrupted defragmentation is aborted by its context) and may be
// called more than once.
func startMaintenance(ctx context.Context, c *config.Config, srv *etcdserver.Server, hooks maintenance.Hooks, lg *zap.Logger) func() {
	if !c.Etcd.Maintenance.Enabled {
		lg.Info("maintenance loop not started", zap.String("reason", "etcd.maintenance.enabled is false"))
		return func() {}
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	loop := &maintenance.Loop{Config: c, SelfID: uint64(srv.Etcd().Server.MemberID()), Log: lg.Named("maintenance"), Hooks: hooks}
	go func() {
		defer close(done)
		loop.Run(mctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// etcdHealth reports the embedded server as passing while it is a voting member that sees a leader.
func etcdHealth(srv *etcdserver.Server) peers.HealthFunc {
	return func() (bool, string) {
		e := srv.Etcd().Server
		switch {
		case e.IsLearner():
			return false, "etcd is a learner catching up with the leader (not yet a voting member)"
		case e.Leader() == 0:
			return false, "etcd has no leader (election in progress, or no quorum)"
		}
		return true, fmt.Sprintf("etcd member %s is a voting member; leader %s", e.MemberID(), e.Leader())
	}
}
