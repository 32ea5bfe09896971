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

	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
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
	st, err := mgr.Prepare(ctx)
	if err != nil {
		return fmt.Errorf("deciding how to start: %w", err)
	}
	ecfg, err := etcdserver.BuildConfig(c, st.Plan)
	if err != nil {
		_ = mgr.Abort(st)
		return err
	}
	lg.Info("starting etcd", zap.String("kind", st.Kind), zap.String("reason", st.Reason), zap.String("flags", strings.Join(etcdserver.Flags(ecfg), " ")))
	srv, err := etcdserver.Start(ctx, ecfg, etcdserver.ReadyTimeout(c), lg)
	if err != nil {
		if aerr := mgr.Abort(st); aerr != nil {
			lg.Warn("rolling back the join failed", zap.Error(aerr))
		}
		return err
	}
	setHealth(etcdHealth(srv))
	stopping := func() (bool, string) { return false, "etcd is stopping" }
	if err := mgr.Complete(ctx, st, srv); err != nil {
		setHealth(stopping)
		stopCtx, cancel := context.WithTimeout(context.Background(), StopTimeout)
		srv.Stop(stopCtx)
		cancel()
		if aerr := mgr.Abort(st); aerr != nil {
			lg.Warn("rolling back the join failed", zap.Error(aerr))
		}
		return err
	}
	lg.Info("member is running", zap.String("kind", st.Kind), zap.String("member-id", srv.Etcd().Server.MemberID().String()))
	// Scheduled snapshots (etcd.backup.*) run while the member does; stopped before etcd stops.
	stopBackups := backup.StartScheduler(ctx, c, lg)
	defer stopBackups()

	select {
	case <-ctx.Done():
		setHealth(stopping)
		lg.Info("stopping etcd", zap.String("reason", "received a stop signal"))
		stopCtx, cancel := context.WithTimeout(context.Background(), StopTimeout)
		defer cancel()
		srv.Stop(stopCtx)
		return nil
	case err := <-srv.Err():
		setHealth(stopping)
		stopCtx, cancel := context.WithTimeout(context.Background(), StopTimeout)
		defer cancel()
		srv.Stop(stopCtx)
		return fmt.Errorf("etcd failed: %w", err)
	case <-srv.Stopped():
		setHealth(stopping)
		if _, err := os.Stat(DrainMarker(c)); err == nil {
			if cl, ok := mgr.Peers.(io.Closer); ok {
				cl.Close() // drain deregisters this member; there is no check left to refresh
			}
			lg.Info("etcd stopped after drain removed this member; staying stopped until monit stops the job",
				zap.String("reason", "the instance is being deleted"))
			<-ctx.Done()
			return nil
		}
		srv.Stop(context.Background())
		return fmt.Errorf("etcd stopped on its own (most likely %w); exiting so that monit restarts etcd_ctl, which moves the old data aside and rejoins", ErrRemoved)
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
