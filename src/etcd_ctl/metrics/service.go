package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// Service is what `etcd_ctl start` runs: the listener and etcd_ctl's metrics on the default registry.
type Service struct {
	*Metrics
	listener *Listener
}

// Start binds the metrics listener and registers etcd_ctl's metrics. Call it once per process, after the
// configuration validated and before the start decision.
func Start(c *config.Config, lg *zap.Logger) (*Service, error) {
	m, err := New(prometheus.DefaultRegisterer, Certificates(c), c.Paths.DataDir, time.Now)
	if err != nil {
		return nil, err
	}
	if err := m.RegisterUpkeep(prometheus.DefaultRegisterer, c.BackupDir(), time.Duration(c.Etcd.Backup.IntervalInMinutes)*time.Minute); err != nil {
		return nil, err
	}
	l, err := Listen(c, lg.Named("metrics"))
	if err != nil {
		return nil, err
	}
	return &Service{Metrics: m, listener: l}, nil
}

// EtcdRunning points /health and the alarm metric at the running etcd, which is ready; after a join (kind) it
// is a learner catching up until Running.
func (s *Service) EtcdRunning(srv *etcdserver.EtcdServer, kind string) {
	s.listener.SetEtcd(srv, "")
	s.SetEtcd(srv)
	if kind == KindJoin {
		s.CatchingUp()
	}
}

// EtcdStopping makes /health answer 503 with reason while etcd stops.
func (s *Service) EtcdStopping(reason string) {
	s.SetEtcd(nil)
	s.listener.SetEtcd(nil, reason)
}

// KindJoin is membership.KindJoin (membership imports etcdserver, which this package need not depend on).
const KindJoin = "join"

// Close stops the listener.
func (s *Service) Close() { s.listener.Close() }
