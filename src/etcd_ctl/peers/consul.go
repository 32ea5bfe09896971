package peers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// Consul makes the members reachable through consul DNS: it registers this member with the colocated consul
// agent (service <service>, ID and tag = member name, this VM's IP, the client port, a TTL health check that
// etcd_ctl keeps refreshing), then waits until this member's own name and — for a bounded time — its peers'
// names resolve through the system resolver, the same resolver the embedded etcd dials peers with.
//
// It never decides anything about the cluster: a peer whose name does not resolve is simply a peer that gives
// no answer to the membership probe, which never leads to creating a cluster.
type Consul struct {
	Config *config.Config
	Log    *zap.Logger
	// Register is true for `etcd_ctl start`: register with the agent and keep the health check fresh. Commands
	// that only talk to a running cluster (drain) leave it false.
	Register bool
	// Resolver answers DNS questions; nil means net.DefaultResolver (the system resolver).
	Resolver *net.Resolver
	// RetryInterval is the pause between attempts (agent calls, DNS lookups); LogInterval spaces the log lines
	// of a wait. Zero means 1 s and 10 s.
	RetryInterval, LogInterval time.Duration

	mu       sync.Mutex
	client   *api.Client
	reg      *api.AgentServiceRegistration // what register gave the agent, for re-registering
	ready    bool                          // registered and the first wait for names is over
	health   HealthFunc
	stop     chan struct{}
	stopOnce sync.Once
}

// HealthFunc reports whether the embedded etcd is a healthy voting member, and why (not).
type HealthFunc func() (passing bool, reason string)

// HealthReporter is implemented by sources that publish this member's health (the consul TTL check).
type HealthReporter interface {
	SetHealth(HealthFunc)
}

// Deregisterer is implemented by sources that registered this member somewhere and can take it back (drain of
// an instance that is being deleted).
type Deregisterer interface {
	Deregister(ctx context.Context) error
}

// NewConsul returns the consul source for c. register is true for `etcd_ctl start`.
func NewConsul(c *config.Config, lg *zap.Logger, register bool) *Consul {
	return &Consul{Config: c, Log: lg.Named("consul"), Register: register}
}

// notRunning is the health before the embedded etcd runs.
func notRunning() (bool, string) {
	return false, "etcd is not running yet: etcd_ctl is deciding how to start (waiting for DNS, peers or a cluster to join)"
}

func (s *Consul) resolver() *net.Resolver {
	if s.Resolver != nil {
		return s.Resolver
	}
	return net.DefaultResolver
}

func (s *Consul) retry() time.Duration {
	if s.RetryInterval > 0 {
		return s.RetryInterval
	}
	return time.Second
}

func (s *Consul) logEvery() time.Duration {
	if s.LogInterval > 0 {
		return s.LogInterval
	}
	return 10 * time.Second
}

// Service returns the consul service name and domain (from etcd.advertise_urls_dns_suffix).
func (s *Consul) Service() (service, domain string) {
	service, domain, _ = s.Config.Etcd.ConsulService()
	return service, domain
}

// ServiceName is the DNS name of the whole service, <service>.service.<domain>.
func (s *Consul) ServiceName() string {
	service, domain := s.Service()
	return service + ".service." + domain
}

// CheckID is the ID of this member's TTL check.
func (s *Consul) CheckID() string { return serviceCheckID(s.Config.SelfName()) }

// serviceCheckID is the ID consul gives the check registered with service instance id.
func serviceCheckID(id string) string { return "service:" + id }

// Agent returns the consul API client for etcd.consul.agent_url and etcd.consul.acl_token.
func (s *Consul) Agent() (*api.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	cl, err := NewAgentClient(s.Config)
	if err != nil {
		return nil, err
	}
	s.client = cl
	return cl, nil
}

// NewAgentClient returns a consul API client for the agent c names. Every request is bounded (5 s).
func NewAgentClient(c *config.Config) (*api.Client, error) {
	u, err := url.Parse(c.Etcd.Consul.AgentURL)
	if err != nil {
		return nil, fmt.Errorf("etcd.consul.agent_url: %w", err)
	}
	cfg := api.DefaultNonPooledConfig()
	cfg.Address, cfg.Scheme, cfg.Token = u.Host, u.Scheme, c.Etcd.Consul.ACLToken.Value()
	cfg.HttpClient = &http.Client{Timeout: 5 * time.Second, Transport: cfg.Transport}
	return api.NewClient(cfg)
}

// CheckAgent asks the agent who it is: nil means the agent's HTTP API answers (and accepts the token).
func CheckAgent(c *config.Config) error {
	cl, err := NewAgentClient(c)
	if err != nil {
		return err
	}
	_, err = cl.Agent().Self()
	return err
}

// Members implements Source. With Register it registers this member (waiting for the agent), waits until its
// own name resolves to its own address (bounded by etcd.consul.wait_timeout_in_seconds) and then, for a shorter
// bounded time, for its peers' names.
func (s *Consul) Members(ctx context.Context) ([]config.Member, error) {
	desired, err := s.Config.DesiredMembers()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	ready := s.ready
	s.mu.Unlock()
	if !s.Register || ready {
		return desired, nil
	}
	wait := time.Duration(s.Config.Etcd.Consul.WaitTimeoutInSeconds) * time.Second
	deadline := time.Now().Add(wait)
	if err := s.register(ctx, deadline, wait); err != nil {
		return nil, err
	}
	self := s.Config.Self()
	if err := s.waitSelf(ctx, self, deadline, wait); err != nil {
		return nil, err
	}
	s.waitPeers(ctx, Others(desired), min(time.Minute, wait))
	s.logKnown(ctx)
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	return desired, nil
}

// register registers the service and its TTL check, retrying while the agent does not answer, then starts
// refreshing the check.
func (s *Consul) register(ctx context.Context, deadline time.Time, wait time.Duration) error {
	c := s.Config
	cl, err := s.Agent()
	if err != nil {
		return err
	}
	service, _ := s.Service()
	name := c.SelfName()
	ttl := time.Duration(c.Etcd.Consul.CheckTTLInSeconds) * time.Second
	reg := &api.AgentServiceRegistration{
		ID:      name,
		Name:    service,
		Tags:    []string{name},
		Address: c.SelfIP(),
		Port:    c.Etcd.ClientPort,
		Meta:    map[string]string{"deployment": c.Instance.Deployment, "instance_id": c.Instance.ID},
		Check: &api.AgentServiceCheck{
			CheckID: s.CheckID(),
			Name:    "etcd member " + name,
			Notes:   "TTL check refreshed by etcd_ctl: passing while etcd is a voting member with a leader, warning otherwise; critical when etcd_ctl stopped refreshing it",
			TTL:     ttl.String(),
			// Warning instances are still answered by consul DNS, so peers can resolve a member that is starting
			// (or a cluster recovering from quorum loss can resolve itself); only a dead etcd_ctl goes critical.
			Status: api.HealthWarning,
		},
	}
	err = retry.Poll(ctx, retry.Options{Interval: s.retry(), Timeout: until(deadline), LogEvery: s.logEvery(),
		Waiting: func(p retry.Progress) {
			s.Log.Warn("waiting for the consul agent",
				zap.String("reason", "registering this member failed; the agent may not be running yet (on a first deploy monit starts it next to etcd)"),
				zap.String("agent-url", c.Etcd.Consul.AgentURL), zap.Duration("waited", p.Waited.Round(time.Second)),
				zap.Duration("gives-up-after", wait), zap.String("check", "monit summary on this VM; etcd.consul.agent_url; etcd.consul.acl_token"), zap.Error(p.Last))
		}}, func(context.Context) error { return cl.Agent().ServiceRegister(reg) })
	if gu := (*retry.GaveUp)(nil); errors.As(err, &gu) && errors.Is(gu.Cause, retry.ErrTimeout) {
		return fmt.Errorf("registering with the consul agent at %s: it did not accept the registration within %s (etcd.consul.wait_timeout_in_seconds): %w; "+
			"check that the consul agent runs on this VM (monit summary), that etcd.consul.agent_url points at it and that etcd.consul.acl_token may register services",
			c.Etcd.Consul.AgentURL, wait, gu.Last)
	} else if err != nil {
		return fmt.Errorf("waiting for the consul agent at %s: %w", c.Etcd.Consul.AgentURL, err)
	}
	s.mu.Lock()
	s.reg = reg
	s.mu.Unlock()
	s.Log.Info("registered this member with the consul agent", zap.String("service", service), zap.String("id", name),
		zap.String("address", reg.Address), zap.Int("port", reg.Port), zap.String("check", s.CheckID()), zap.Duration("check-ttl", ttl),
		zap.String("dns-name", c.Self().Host), zap.String("reason", "peers reach this member by its consul DNS name"))
	s.startHeartbeat(cl, ttl)
	return nil
}

// waitSelf waits until this member's own name resolves to its own address.
func (s *Consul) waitSelf(ctx context.Context, self config.Member, deadline time.Time, wait time.Duration) error {
	want := s.Config.SelfIP()
	answer := ""
	err := retry.Poll(ctx, retry.Options{Interval: s.retry(), Timeout: until(deadline), LogEvery: s.logEvery(),
		Waiting: func(p retry.Progress) {
			s.Log.Warn("waiting for this member's consul DNS name to resolve", zap.String("name", self.Host), zap.String("want", want),
				zap.String("answer", answer), zap.String("resolver", "system (/etc/resolv.conf)"), zap.Duration("waited", p.Waited.Round(time.Second)),
				zap.Duration("gives-up-after", wait))
		}}, func(ctx context.Context) error {
		addrs, err := s.lookup(ctx, self.Host)
		if err == nil && slices.Contains(addrs, want) {
			return nil
		}
		answer = fmt.Sprintf("%v", addrs)
		if err != nil {
			answer = err.Error()
		}
		return errors.New(answer)
	})
	if gu := (*retry.GaveUp)(nil); errors.As(err, &gu) && errors.Is(gu.Cause, retry.ErrTimeout) {
		return fmt.Errorf("this member's consul DNS name %s did not resolve to its address %s within %s (etcd.consul.wait_timeout_in_seconds); last answer: %s; "+
			"the system resolver (/etc/resolv.conf) must ask the consul agent's DNS interface, and the agent at %s must have this member's registration "+
			"(check: monit summary, `dig %s`, curl %s/v1/agent/services)",
			self.Host, want, wait, answer, s.Config.Etcd.Consul.AgentURL, self.Host, s.Config.Etcd.Consul.AgentURL)
	} else if err != nil {
		return fmt.Errorf("waiting for %s to resolve: %w", self.Host, err)
	}
	s.Log.Info("this member's consul DNS name resolves", zap.String("name", self.Host), zap.String("want", want))
	return nil
}

// waitPeers waits up to bound while consul DNS gives no definite answer for some peer's name (a timeout or
// SERVFAIL: the agent may still be syncing with the servers), logging which; then it continues anyway. A peer
// whose name does not exist (NXDOMAIN) is a definite answer, not waited for: its etcd_ctl is not registered, so
// it is not running (a first deploy updates instances one at a time) and the membership probe takes it as
// unregistered. A peer that still gives no answer is probed as giving none, which never creates a cluster.
func (s *Consul) waitPeers(ctx context.Context, others []config.Member, bound time.Duration) {
	start := time.Now()
	var pending, unregistered []string
	err := retry.Poll(ctx, retry.Options{Interval: s.retry(), Timeout: max(bound, time.Millisecond), LogEvery: s.logEvery(),
		Waiting: func(p retry.Progress) {
			s.Log.Info("waiting for consul DNS to answer for peers' names", zap.Strings("no-answer", pending), zap.Duration("waited", p.Waited.Round(time.Second)),
				zap.Duration("continues-after", bound))
		}}, func(ctx context.Context) error {
		pending, unregistered = s.classifyPeerNames(ctx, others)
		if len(pending) > 0 {
			return fmt.Errorf("no answer for %v", pending)
		}
		return nil
	})
	switch {
	case err != nil:
		s.Log.Warn("continuing although consul DNS gives no answer for some peers' names",
			zap.String("reason", "the membership decision treats them as giving no answer, which never creates a second cluster"),
			zap.Strings("no-answer", pending), zap.Strings("unregistered", unregistered), zap.Duration("waited", time.Since(start).Round(time.Second)))
	case len(unregistered) == 0:
		s.Log.Info("every peer's consul DNS name resolves", zap.Int("peers", len(others)), zap.Duration("waited", time.Since(start).Round(time.Millisecond)))
	default:
		s.Log.Info("some peers are not registered in consul", zap.Strings("unregistered", unregistered),
			zap.String("reason", "their names do not exist (NXDOMAIN): etcd_ctl does not run there yet, e.g. instances a first deploy has not reached"),
			zap.Duration("waited", time.Since(start).Round(time.Millisecond)))
	}
}

// classifyPeerNames sorts the peers named by DNS names into those consul DNS gives no definite answer for yet
// (pending: a timeout, SERVFAIL) and those whose name does not exist (unregistered: NXDOMAIN).
func (s *Consul) classifyPeerNames(ctx context.Context, others []config.Member) (pending, unregistered []string) {
	for _, m := range others {
		if net.ParseIP(m.Host) != nil {
			continue
		}
		addrs, err := s.lookup(ctx, m.Host)
		var dnsErr *net.DNSError
		switch {
		case err == nil && len(addrs) > 0:
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			unregistered = append(unregistered, m.Host)
		default:
			pending = append(pending, m.Host)
		}
	}
	return pending, unregistered
}

// Registration is one instance of the etcd service in consul's catalog, with its aggregated health.
type Registration struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Status  string `json:"status"` // passing, warning or critical
	Output  string `json:"output,omitempty"`
}

// Known returns the instances of this member's service that consul knows (through the local agent), sorted by
// ID, critical ones included.
func (s *Consul) Known(ctx context.Context) ([]Registration, error) {
	cl, err := s.Agent()
	if err != nil {
		return nil, err
	}
	service, _ := s.Service()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	entries, _, err := cl.Health().Service(service, "", false, (&api.QueryOptions{}).WithContext(lctx))
	if err != nil {
		return nil, fmt.Errorf("asking the consul agent at %s for service %s: %w", s.Config.Etcd.Consul.AgentURL, service, err)
	}
	var out []Registration
	for _, e := range entries {
		r := Registration{ID: e.Service.ID, Address: e.Service.Address, Port: e.Service.Port, Status: e.Checks.AggregatedStatus()}
		for _, ch := range e.Checks {
			if ch.CheckID == serviceCheckID(e.Service.ID) {
				r.Output = ch.Output
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// logKnown logs the members consul knows: the SRV answer for the service and the catalog's instances.
func (s *Consul) logKnown(ctx context.Context) {
	fields := []zap.Field{zap.String("service", s.ServiceName())}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, srvs, err := s.resolver().LookupSRV(lctx, "", "", s.ServiceName()); err != nil {
		fields = append(fields, zap.NamedError("srv-error", err))
	} else {
		var targets []string
		for _, r := range srvs {
			targets = append(targets, fmt.Sprintf("%s:%d", strings.TrimSuffix(r.Target, "."), r.Port))
		}
		sort.Strings(targets)
		fields = append(fields, zap.Strings("srv", targets))
	}
	if regs, err := s.Known(ctx); err == nil {
		var known []string
		for _, r := range regs {
			known = append(known, fmt.Sprintf("%s=%s:%d(%s)", r.ID, r.Address, r.Port, r.Status))
		}
		fields = append(fields, zap.Strings("catalog", known))
	}
	s.Log.Info("members consul knows", fields...)
}

func (s *Consul) lookup(ctx context.Context, host string) ([]string, error) {
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return s.resolver().LookupHost(lctx, host)
}

// SetHealth implements HealthReporter: f is asked at every refresh of the TTL check.
func (s *Consul) SetHealth(f HealthFunc) {
	s.mu.Lock()
	s.health = f
	s.mu.Unlock()
}

func (s *Consul) currentHealth() (bool, string) {
	s.mu.Lock()
	f := s.health
	s.mu.Unlock()
	if f == nil {
		return notRunning()
	}
	return f()
}

// startHeartbeat refreshes the TTL check every TTL/3 until Close.
func (s *Consul) startHeartbeat(cl *api.Client, ttl time.Duration) {
	s.mu.Lock()
	if s.stop != nil {
		s.mu.Unlock()
		return
	}
	s.stop = make(chan struct{})
	stop := s.stop
	s.mu.Unlock()
	go func() {
		lastStatus, lastErr := "", time.Time{}
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			passing, reason := s.currentHealth()
			status := api.HealthWarning
			if passing {
				status = api.HealthPassing
			}
			err := cl.Agent().UpdateTTL(s.CheckID(), reason, status)
			if err != nil && s.reregisterIfLost(cl) {
				err = cl.Agent().UpdateTTL(s.CheckID(), reason, status)
			}
			if err != nil {
				if time.Since(lastErr) > time.Minute {
					s.Log.Warn("could not refresh the consul health check", zap.String("check", s.CheckID()), zap.String("agent-url", s.Config.Etcd.Consul.AgentURL),
						zap.String("consequence", "if this lasts longer than the TTL the check turns critical and consul DNS stops answering this member's name"), zap.Error(err))
					lastErr = time.Now()
				}
				lastStatus = ""
			} else if status != lastStatus {
				s.Log.Info("consul health check updated", zap.String("check", s.CheckID()), zap.String("status", status), zap.String("reason", reason))
				lastStatus = status
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
}

// reregisterIfLost registers this member again when the agent answers but no longer has its check: the agent
// was restarted with an empty data dir, or somebody deregistered the service by hand, and without this the member
// would stay out of consul DNS until etcd_ctl restarts. It never re-registers a member that drain removed (the
// drain marker exists): drain deregisters it on purpose while this process still runs.
func (s *Consul) reregisterIfLost(cl *api.Client) bool {
	s.mu.Lock()
	reg := s.reg
	s.mu.Unlock()
	if reg == nil {
		return false
	}
	if _, err := os.Stat(s.Config.Paths.DrainMarker()); err == nil {
		return false
	}
	checks, err := cl.Agent().Checks()
	if err != nil {
		return false // the agent does not answer: nothing to learn, the refresh error is logged
	}
	if _, ok := checks[s.CheckID()]; ok {
		return false
	}
	if err := cl.Agent().ServiceRegister(reg); err != nil {
		s.Log.Warn("the consul agent lost this member's registration and registering it again failed", zap.String("agent-url", s.Config.Etcd.Consul.AgentURL), zap.Error(err))
		return false
	}
	s.Log.Warn("registered this member with the consul agent again",
		zap.String("reason", "the agent answered but no longer had this member's health check (agent restarted with an empty data dir, or the service was deregistered by hand)"),
		zap.String("id", reg.ID), zap.String("address", reg.Address))
	return true
}

// Close stops refreshing the health check (it turns critical after its TTL). It never deregisters.
func (s *Consul) Close() error {
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		s.stopOnce.Do(func() { close(stop) })
	}
	return nil
}

// Deregister removes this member's service (and its check) from the local agent. Drain calls it once the
// member has left the cluster because the instance is being deleted.
func (s *Consul) Deregister(ctx context.Context) error {
	_ = s.Close()
	cl, err := s.Agent()
	if err != nil {
		return err
	}
	id := s.Config.SelfName()
	if err := cl.Agent().ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("deregistering service %s from the consul agent at %s: %w", id, s.Config.Etcd.Consul.AgentURL, err)
	}
	s.Log.Info("deregistered this member from the consul agent", zap.String("id", id), zap.String("service", s.ServiceName()),
		zap.String("reason", "the instance is being deleted; consul DNS no longer answers its name"))
	return nil
}

// until is the time left before deadline as a retry.Poll timeout, which must stay positive: a timeout of 0 would
// mean no bound at all.
func until(deadline time.Time) time.Duration {
	return max(time.Until(deadline), time.Millisecond)
}
