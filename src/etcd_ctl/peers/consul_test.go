package peers

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/testkit/freeport"
	"github.com/etcd-release/etcd-release/src/testkit/toolcache"
)

// consulConfig is member etcd-0 of a two-member deployment named under etcd.service.cf.internal; etcd-1 never
// registers.
func consulConfig(agentURL string) *config.Config {
	c := config.Default()
	c.Instance = config.Instance{Deployment: "d", Name: "etcd", Index: 0, ID: "a", Bootstrap: true, Address: "127.0.0.1", IP: "127.0.0.1"}
	c.Etcd.RequireSSL, c.Etcd.PeerRequireSSL = false, false
	c.Etcd.AdvertiseURLsDNSSuffix = "etcd.service.cf.internal"
	c.Etcd.Consul.Enabled = true
	c.Etcd.Consul.AgentURL = agentURL
	c.Etcd.Consul.WaitTimeoutInSeconds = 3
	c.Etcd.Consul.CheckTTLInSeconds = 3
	c.Link = &config.Link{Instances: []config.LinkInstance{
		{Name: "etcd", Index: 0, ID: "a", Address: "127.0.0.1", Bootstrap: true},
		{Name: "etcd", Index: 1, ID: "b", Address: "127.0.0.2"},
	}}
	return &c
}

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	return zap.New(core), logs
}

func TestForPicksTheSource(t *testing.T) {
	c := consulConfig("http://127.0.0.1:8500")
	require.IsType(t, &Consul{}, For(c, zap.NewNop()))
	require.True(t, For(c, zap.NewNop()).(*Consul).Register)
	require.False(t, ForClient(c, zap.NewNop()).(*Consul).Register, "drain never registers")
	c.Etcd.Consul.Enabled = false
	require.IsType(t, Static{}, For(c, zap.NewNop()))
}

func TestConsulAgentUnreachableIsABoundedLoggedWait(t *testing.T) {
	url := fmt.Sprintf("http://127.0.0.1:%d", freeport.For(t))
	lg, logs := observed()
	s := NewConsul(consulConfig(url), lg, true)
	s.RetryInterval, s.LogInterval = 100*time.Millisecond, time.Second
	start := time.Now()
	_, err := s.Members(context.Background())
	require.Error(t, err)
	require.Less(t, time.Since(start), 6*time.Second, "bounded by etcd.consul.wait_timeout_in_seconds")
	require.Contains(t, err.Error(), "registering with the consul agent at "+url)
	require.Contains(t, err.Error(), "within 3s (etcd.consul.wait_timeout_in_seconds)")
	require.Contains(t, err.Error(), "monit summary")
	waits := logs.FilterMessage("waiting for the consul agent").All()
	require.GreaterOrEqual(t, len(waits), 2, "the wait is logged while it lasts")
	require.Equal(t, url, waits[0].ContextMap()["agent-url"])

	require.Error(t, CheckAgent(consulConfig(url)), "validate's agent check sees the same")
}

// agent is a real consul agent in dev mode on free ports of 127.0.0.1 (no root needed).
type agent struct {
	url     string
	dnsPort int
	client  *api.Client
}

func startAgent(t *testing.T) *agent {
	root, err := toolcache.RepoRoot()
	require.NoError(t, err)
	bin, err := toolcache.Consul.Path(root)
	require.NoError(t, err, "building the real consul agent")
	a := &agent{dnsPort: freeport.For(t)}
	httpPort := freeport.For(t)
	a.url = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	logPath := filepath.Join(t.TempDir(), "consul.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	args := []string{"agent", "-dev", "-node", "peers-test", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-domain", "cf.internal",
		"-dns-port", fmt.Sprint(a.dnsPort), "-http-port", fmt.Sprint(httpPort), "-server-port", fmt.Sprint(freeport.For(t)),
		"-serf-lan-port", fmt.Sprint(freeport.For(t)), "-serf-wan-port", fmt.Sprint(freeport.For(t)), "-grpc-port", fmt.Sprint(freeport.For(t)),
		"-grpc-tls-port", fmt.Sprint(freeport.For(t))}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	a.client, err = NewAgentClient(consulConfig(a.url))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		leader, err := a.client.Status().Leader()
		return err == nil && leader != ""
	}, 30*time.Second, 200*time.Millisecond, "consul agent did not start: %s", func() string { b, _ := os.ReadFile(logPath); return string(b) }())
	return a
}

// resolverAt asks the DNS server on 127.0.0.1:port (the agent's DNS interface in production is the system resolver).
func resolverAt(port int) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
	}}
}

func (a *agent) check(t *testing.T, id string) *api.AgentCheck {
	checks, err := a.client.Agent().Checks()
	require.NoError(t, err)
	return checks[id]
}

func TestConsulRegistersKeepsTheCheckAndDeregisters(t *testing.T) {
	a := startAgent(t)
	lg, logs := observed()
	s := NewConsul(consulConfig(a.url), lg, true)
	s.Resolver, s.RetryInterval = resolverAt(a.dnsPort), 100*time.Millisecond
	defer s.Close()

	ms, err := s.Members(context.Background())
	require.NoError(t, err, "the peer etcd-1 never registers: that is a warning, not an error")
	require.Len(t, ms, 2)
	require.Equal(t, "etcd-0.etcd.service.cf.internal", ms[0].Host)

	svcs, err := a.client.Agent().Services()
	require.NoError(t, err)
	svc := svcs["etcd-0"]
	require.NotNil(t, svc)
	require.Equal(t, "etcd", svc.Service)
	require.Equal(t, []string{"etcd-0"}, svc.Tags)
	require.Equal(t, "127.0.0.1", svc.Address)
	require.Equal(t, 4001, svc.Port)
	require.Equal(t, api.HealthWarning, a.check(t, "service:etcd-0").Status, "a member that is not running etcd yet is warning, never critical")

	require.NotEmpty(t, logs.FilterMessage("this member's consul DNS name resolves").All())
	// etcd-1 never registers: consul answers NXDOMAIN, a definite answer that is not waited for.
	unreg := logs.FilterMessage("some peers are not registered in consul").All()
	require.Len(t, unreg, 1)
	require.Contains(t, fmt.Sprint(unreg[0].ContextMap()["unregistered"]), "etcd-1.etcd.service.cf.internal")
	require.Empty(t, logs.FilterMessage("continuing although consul DNS gives no answer for some peers' names").All())
	known := logs.FilterMessage("members consul knows").All()
	require.Len(t, known, 1)
	require.Contains(t, fmt.Sprint(known[0].ContextMap()["catalog"]), "etcd-0=127.0.0.1:4001")

	// A second call (e.g. promote) neither registers again nor waits.
	start := time.Now()
	_, err = s.Members(context.Background())
	require.NoError(t, err)
	require.Less(t, time.Since(start), time.Second)

	s.SetHealth(func() (bool, string) { return true, "voting member with a leader" })
	require.Eventually(t, func() bool { return a.check(t, "service:etcd-0").Status == api.HealthPassing }, 5*time.Second, 100*time.Millisecond)
	require.Equal(t, "voting member with a leader", a.check(t, "service:etcd-0").Output)
	s.SetHealth(func() (bool, string) { return false, "etcd has no leader" })
	require.Eventually(t, func() bool { return a.check(t, "service:etcd-0").Status == api.HealthWarning }, 5*time.Second, 100*time.Millisecond)
	require.Equal(t, "etcd has no leader", a.check(t, "service:etcd-0").Output)

	// Once nobody refreshes the check it expires: critical.
	require.NoError(t, s.Close())
	require.Eventually(t, func() bool { return a.check(t, "service:etcd-0").Status == api.HealthCritical }, 10*time.Second, 200*time.Millisecond)

	// Drain's source (no registration) deregisters.
	d := NewConsul(consulConfig(a.url), zap.NewNop(), false)
	require.NoError(t, d.Deregister(context.Background()))
	svcs, err = a.client.Agent().Services()
	require.NoError(t, err)
	require.NotContains(t, svcs, "etcd-0")
	require.Nil(t, a.check(t, "service:etcd-0"))
}

func TestConsulOwnNameThatNeverResolvesFailsClearly(t *testing.T) {
	a := startAgent(t)
	s := NewConsul(consulConfig(a.url), zap.NewNop(), true)
	// A resolver that does not ask the agent, like a VM whose /etc/resolv.conf does not point at consul.
	s.Resolver, s.RetryInterval = resolverAt(freeport.For(t)), 100*time.Millisecond
	defer s.Close()
	_, err := s.Members(context.Background())
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"this member's consul DNS name etcd-0.etcd.service.cf.internal did not resolve to its address 127.0.0.1 within 3s (etcd.consul.wait_timeout_in_seconds)",
		"system resolver (/etc/resolv.conf)",
		"the agent at " + a.url,
	} {
		require.True(t, strings.Contains(msg, want), "error %q should contain %q", msg, want)
	}
}

// The agent losing the registration (restarted with an empty data dir, or a manual deregistration) while etcd_ctl
// runs: the heartbeat registers the member again. After drain removed the member (its marker exists) it does not.
func TestConsulRegistersAgainWhenTheAgentLostTheRegistration(t *testing.T) {
	a := startAgent(t)
	c := consulConfig(a.url)
	c.Paths.RunDir = t.TempDir()
	lg, logs := observed()
	s := NewConsul(c, lg, true)
	s.Resolver, s.RetryInterval = resolverAt(a.dnsPort), 100*time.Millisecond
	defer s.Close()
	_, err := s.Members(context.Background())
	require.NoError(t, err)
	s.SetHealth(func() (bool, string) { return true, "voting member with a leader" })

	require.NoError(t, a.client.Agent().ServiceDeregister("etcd-0"))
	require.Nil(t, a.check(t, "service:etcd-0"))
	require.Eventually(t, func() bool {
		ch := a.check(t, "service:etcd-0")
		return ch != nil && ch.Status == api.HealthPassing
	}, 10*time.Second, 100*time.Millisecond, "the heartbeat registers the member again (check TTL 3 s, refreshed every 1 s)")
	require.Len(t, logs.FilterMessage("registered this member with the consul agent again").All(), 1)
	svcs, err := a.client.Agent().Services()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", svcs["etcd-0"].Address)
	require.Equal(t, []string{"etcd-0"}, svcs["etcd-0"].Tags)

	// Drain removed the member and deregistered it while this process still runs: it stays deregistered.
	require.NoError(t, os.WriteFile(c.Paths.DrainMarker(), []byte("1\n"), 0o644))
	require.NoError(t, a.client.Agent().ServiceDeregister("etcd-0"))
	time.Sleep(3 * time.Second) // three refresh periods
	require.Nil(t, a.check(t, "service:etcd-0"), "a member drain removed is never registered again")
	require.Len(t, logs.FilterMessage("registered this member with the consul agent again").All(), 1)
}
