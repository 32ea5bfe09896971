package etcdserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is the one embedded etcd of this process.
type Server struct {
	e  *embed.Etcd
	lg *zap.Logger
}

// ErrNotReady means etcd started but did not become ready in time.
var ErrNotReady = errors.New("etcd did not become ready")

// Start runs cfg and waits until the member is ready, etcd fails, ctx ends or timeout passes, whichever comes
// first. On any failure the half-started server is closed before returning.
func Start(ctx context.Context, cfg *embed.Config, timeout time.Duration, lg *zap.Logger) (*Server, error) {
	deadline := time.Now().Add(timeout)
	return StartWaiting(ctx, cfg, lg, func(Progress) error {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w within %s: it could not reach a quorum of the cluster; check that the other members are running and reachable on their peer URLs", ErrNotReady, timeout)
		}
		return nil
	})
}

// SampleEvery is how often StartWaiting samples the member's progress for its Waiter.
const SampleEvery = time.Second

// StartWaiting runs cfg and waits until the member is ready, etcd fails, ctx ends or wait gives up, which it
// is asked once per SampleEvery with the member's progress. On any failure the half-started server is closed
// before returning.
func StartWaiting(ctx context.Context, cfg *embed.Config, lg *zap.Logger, wait Waiter) (*Server, error) {
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(sampledEtcdLogger(lg))
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir %s: %w", cfg.Dir, err)
	}
	// etcd refuses a data dir that is group/world accessible; BOSH may have created it 0755.
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("setting data dir %s to 0700: %w", cfg.Dir, err)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd: %w", err)
	}
	s := &Server{e: e, lg: lg}
	tick := time.NewTicker(SampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-e.Server.ReadyNotify():
			lg.Info("etcd is ready", zap.String("member-id", e.Server.MemberID().String()), zap.String("name", cfg.Name))
			return s, nil
		case err := <-e.Err():
			abort(e)
			return nil, fmt.Errorf("embedded etcd failed while starting: %w", err)
		case <-e.Server.StopNotify():
			abort(e)
			return nil, fmt.Errorf("embedded etcd stopped while starting (see the etcd log lines above)")
		case <-ctx.Done():
			abort(e)
			return nil, fmt.Errorf("starting embedded etcd: %w", ctx.Err())
		case <-tick.C:
			if err := wait(SampleProgress(e)); err != nil {
				abort(e)
				return nil, err
			}
		}
	}
}

// abort stops an etcd that never became ready. Close alone would wait forever for client servers that are only
// created once the member is ready; stopping the server first makes them give up.
func abort(e *embed.Etcd) {
	e.Server.HardStop()
	e.Close()
}

// Etcd exposes the embedded etcd for in-process inspection (member ID, leader, raft status).
func (s *Server) Etcd() *embed.Etcd { return s.e }

// Stopped is closed when the server stops (e.g. because this member was removed from the cluster).
func (s *Server) Stopped() <-chan struct{} { return s.e.Server.StopNotify() }

// Err delivers fatal errors of etcd's listeners.
func (s *Server) Err() <-chan error { return s.e.Err() }

// Stop stops etcd gracefully within ctx: first move leadership away while clients are still served (so they
// see no election), then close client and peer listeners and stop the server. If ctx ends first, the server is
// stopped hard.
func (s *Server) Stop(ctx context.Context) {
	start := time.Now()
	srv := s.e.Server
	if srv.Leader() == srv.MemberID() {
		if err := srv.TryTransferLeadershipOnShutdown(); err != nil {
			s.lg.Warn("leadership transfer before stop failed; peers will elect a new leader after the election timeout", zap.Error(err))
		} else {
			s.lg.Info("moved leadership away before stopping", zap.String("reason", "this member was the leader"), zap.String("new-leader", srv.Leader().String()))
		}
	}
	done := make(chan struct{})
	go func() {
		s.e.Close()
		close(done)
	}()
	select {
	case <-done:
		s.lg.Info("etcd stopped", zap.Duration("took", time.Since(start)))
	case <-ctx.Done():
		s.lg.Warn("graceful stop timed out; stopping etcd hard", zap.Duration("after", time.Since(start)))
		srv.HardStop()
		// Close can still block on a listener or a client stream that never ends; the process is about to exit
		// (and the data is fsynced by raft before every acknowledgement), so do not wait for it without bound.
		select {
		case <-done:
		case <-time.After(HardStopTimeout):
			s.lg.Warn("etcd did not finish closing after a hard stop; giving up waiting", zap.Duration("after", time.Since(start)))
		}
	}
}

// HardStopTimeout bounds the wait for etcd to close after a hard stop.
const HardStopTimeout = 10 * time.Second
