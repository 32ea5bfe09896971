package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
	"github.com/etcd-release/etcd-release/src/testkit/toolcache"
)

// The consul DNS tests run everything — a real consul agent (dev/server mode, domain cf.internal, DNS on
// 127.0.0.1:53, HTTP on 127.0.0.1:8500) and every etcd_ctl member on its own 127.0.0.x address — inside a fresh
// network namespace whose /etc/resolv.conf (ip netns exec bind-mounts /etc/netns/<ns>/resolv.conf) points at the
// agent, as consul-release points a VM's resolver at its colocated agent. The test process itself reaches into
// the namespace with sockets created there (nsDial).

const (
	consulSuffix   = "etcd.service.cf.internal"
	consulService  = "etcd.service.cf.internal"
	consulCheckTTL = 6 // seconds: short so that a dead etcd_ctl's name disappears quickly
)

type consulEnv struct {
	t     testing.TB
	ns    string
	dir   string
	bin   string // consul
	agent *exec.Cmd
	done  chan struct{}
	// ctl is a wrapper that runs etcd_ctl inside the namespace.
	ctl string
}

func newConsulEnv(t *testing.T) *consulEnv {
	if os.Geteuid() != 0 {
		t.Skip("consul DNS tests need root: they create a network namespace and run the consul agent's DNS on port 53 (run as root, as CI does)")
	}
	root, err := toolcache.RepoRoot()
	require.NoError(t, err)
	bin, err := toolcache.Consul.Path(root)
	require.NoError(t, err, "building the real consul agent")
	e := &consulEnv{t: t, ns: fmt.Sprintf("ectest-consul-%08x", rand.Uint32()), dir: t.TempDir(), bin: bin}
	run := func(args ...string) {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
	}
	run("ip", "netns", "add", e.ns)
	t.Cleanup(func() {
		e.stopAgent()
		_ = exec.Command("ip", "netns", "del", e.ns).Run()
		_ = os.RemoveAll(filepath.Join("/etc/netns", e.ns))
	})
	run("ip", "-n", e.ns, "link", "set", "lo", "up")
	require.NoError(t, os.MkdirAll(filepath.Join("/etc/netns", e.ns), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join("/etc/netns", e.ns, "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644))

	e.ctl = filepath.Join(e.dir, "etcd_ctl-in-netns")
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", e.ns, etcdCtl(t))
	require.NoError(t, os.WriteFile(e.ctl, []byte(script), 0o755))
	return e
}

// startAgent runs the real consul agent inside the namespace and waits until it has a leader.
func (e *consulEnv) startAgent() {
	logf, err := os.OpenFile(filepath.Join(e.dir, "consul.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(e.t, err)
	e.agent = exec.Command("ip", "netns", "exec", e.ns, e.bin, "agent", "-dev", "-node", "consul-test",
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-domain", "cf.internal", "-dns-port", "53", "-http-port", "8500")
	e.agent.Stdout, e.agent.Stderr = logf, logf
	require.NoError(e.t, e.agent.Start())
	e.done = make(chan struct{})
	go func() { _ = e.agent.Wait(); logf.Close(); close(e.done) }()
	require.Eventually(e.t, func() bool {
		leader, err := e.api().Status().Leader()
		return err == nil && leader != ""
	}, 30*time.Second, 200*time.Millisecond, "consul agent did not elect itself leader; log: %s", e.agentLog())
}

func (e *consulEnv) stopAgent() {
	if e.agent == nil || e.agent.Process == nil {
		return
	}
	_ = e.agent.Process.Kill()
	<-e.done
	e.agent = nil
}

func (e *consulEnv) agentLog() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "consul.log"))
	return string(b)
}

// nsDial opens a connection from inside the namespace: the socket is created by a thread that joined the
// namespace (and that thread is discarded afterwards).
func (e *consulEnv) nsDial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		fd, err := unix.Open(filepath.Join("/var/run/netns", e.ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// resolver asks the namespace's consul DNS.
func (e *consulEnv) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return e.nsDial(ctx, network, "127.0.0.1:53")
	}}
}

func (e *consulEnv) lookupA(name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, err := e.resolver().LookupHost(ctx, name)
	sort.Strings(addrs)
	return addrs, err
}

func (e *consulEnv) lookupSRV(name string) ([]*net.SRV, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, srvs, err := e.resolver().LookupSRV(ctx, "", "", name)
	return srvs, err
}

// api is a consul API client for the agent in the namespace.
func (e *consulEnv) api() *api.Client {
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = "127.0.0.1:8500"
	cfg.HttpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: e.nsDial, DisableKeepAlives: true}}
	cl, err := api.NewClient(cfg)
	require.NoError(e.t, err)
	return cl
}

// services returns the agent's etcd service instances by ID.
func (e *consulEnv) services() map[string]*api.AgentService {
	all, err := e.api().Agent().Services()
	require.NoError(e.t, err)
	out := map[string]*api.AgentService{}
	for id, s := range all {
		if s.Service == "etcd" {
			out[id] = s
		}
	}
	return out
}

func (e *consulEnv) checkStatus(member string) string {
	checks, err := e.api().Agent().Checks()
	require.NoError(e.t, err)
	if c, ok := checks["service:"+member]; ok {
		return c.Status
	}
	return ""
}

// newConsulCluster lays out size members named <member>.etcd.service.cf.internal, running inside the namespace.
func newConsulCluster(t *testing.T, e *consulEnv, size int, tls bool) *cluster {
	c := newCluster(t, size, withTLS(tls, tls), func(l *localcluster.Layout) {
		l.Base = net.IPv4(127, 0, 0, 10)
		// Certificates name every member through the consul wildcard (what peers and clients dial), plus the
		// loopback addresses the test client dials and peers connect from.
		ips := []net.IP{net.IPv4(127, 0, 0, 1)}
		for i := 2; i < 40; i++ {
			ips = append(ips, net.IPv4(127, 0, 0, byte(i)))
		}
		set, err := pki.GenerateClusterSet(pki.SetOptions{IPs: ips, DNSNames: []string{"*." + consulSuffix}})
		require.NoError(t, err)
		l.Certs = set
		l.Tweak = func(_ int, p *config.Properties) {
			p.AdvertiseURLsDNSSuffix = consulSuffix
			p.Consul.Enabled = true
			p.Consul.WaitTimeoutInSeconds = 120
			p.Consul.CheckTTLInSeconds = consulCheckTTL
		}
	})
	c.bin = e.ctl
	return c
}

// moveMember rewrites member i's config as BOSH renders it after a recreate that gave the VM a new address.
func moveMember(t *testing.T, c *cluster, i int, addr string) {
	cfg, err := c.layout.Config(i, c.size)
	require.NoError(t, err)
	cfg.Instance.Address, cfg.Instance.IP = addr, addr
	cfg.Etcd.ClientIP, cfg.Etcd.PeerIP = addr, addr
	for j := range cfg.Link.Instances {
		if cfg.Link.Instances[j].Index == i {
			cfg.Link.Instances[j].Address = addr
		}
	}
	b, err := localcluster.MarshalConfig(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(c.layout.ConfigPath(i), b, 0o600))
}

// nsClient is an etcd client in the test process whose connections are made inside the namespace; it dials
// the members' current addresses (the certificates cover them).
func (e *consulEnv) nsClient(c *cluster, members ...int) *clientv3.Client {
	var eps []string
	var cfg *config.Config
	for _, i := range members {
		cfg = c.config(i)
		eps = append(eps, fmt.Sprintf("%s://%s:%d", cfg.Etcd.ClientScheme(), cfg.Instance.IP, cfg.Etcd.ClientPort))
	}
	tc, err := etcdclient.TLSConfig(cfg)
	require.NoError(e.t, err)
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: tc, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return e.nsDial(ctx, "tcp", addr)
		})}})
	require.NoError(e.t, err)
	e.t.Cleanup(func() { cli.Close() })
	return cli
}

func (e *consulEnv) put(c *cluster, member int, key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.nsClient(c, member).Put(ctx, key, value)
	return err
}

func (e *consulEnv) get(c *cluster, member int, key string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.nsClient(c, member).Get(ctx, key)
	require.NoError(e.t, err)
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

func memberHost(i int) string { return config.MemberName("etcd", i) + "." + consulSuffix }

// requireResolves waits until every given member's name resolves (A, through consul DNS) to its address.
func (e *consulEnv) requireResolves(c *cluster, members ...int) {
	for _, i := range members {
		want := c.config(i).Instance.IP
		require.Eventually(e.t, func() bool {
			addrs, err := e.lookupA(memberHost(i))
			return err == nil && len(addrs) == 1 && addrs[0] == want
		}, 20*time.Second, 200*time.Millisecond, "%s should resolve to %s", memberHost(i), want)
	}
}

func (c *cluster) logContains(i int, s string) bool {
	b, _ := os.ReadFile(c.layout.LogPath(i))
	return strings.Contains(string(b), s)
}

func (c *cluster) logCount(s string) int {
	n := 0
	for i := 0; i < c.size; i++ {
		b, _ := os.ReadFile(c.layout.LogPath(i))
		n += strings.Count(string(b), s)
	}
	return n
}

// TestConsulTLSClusterRegistersResolvesAndDrainDeregisters: a 3-member TLS cluster bootstrapped through consul
// names; every member is registered (ID = tag = member name, its address, the client port, a TTL check that
// becomes passing), every name resolves (A by member name, SRV of the service); drain of an instance that keeps
// its disk leaves the registration, drain of an instance being deleted (persistent_disk 0) removes the member
// and deregisters it.
func TestConsulTLSClusterRegistersResolvesAndDrainDeregisters(t *testing.T) {
	e := newConsulEnv(t)
	e.startAgent()
	c := newConsulCluster(t, e, 3, true)
	out, err := c.ctl(0, "validate")
	require.NoError(t, err, out)
	require.Contains(t, out, "consul agent at http://127.0.0.1:8500 answers")
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	c.requireHealthy(3)
	for i := 0; i < 3; i++ {
		self := c.config(i).Self()
		require.Equal(t, memberHost(i), self.Host)
		require.Equal(t, "https://"+memberHost(i)+":4001", self.ClientURL, "members advertise their consul names")
	}

	// Registration.
	svcs := e.services()
	require.Len(t, svcs, 3, "%v", svcs)
	for i := 0; i < 3; i++ {
		name := config.MemberName("etcd", i)
		s := svcs[name]
		require.NotNil(t, s, "service %s registered", name)
		require.Equal(t, "etcd", s.Service)
		require.Equal(t, []string{name}, s.Tags)
		require.Equal(t, c.config(i).Instance.IP, s.Address)
		require.Equal(t, 4001, s.Port)
		require.Eventually(t, func() bool { return e.checkStatus(name) == api.HealthPassing }, 20*time.Second, 200*time.Millisecond,
			"the TTL check of a voting member with a leader becomes passing")
	}

	// Resolution: A by member name, A and SRV of the service.
	e.requireResolves(c, 0, 1, 2)
	all, err := e.lookupA(consulService)
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.10", "127.0.0.11", "127.0.0.12"}, all)
	srvs, err := e.lookupSRV(consulService)
	require.NoError(t, err)
	require.Len(t, srvs, 3)
	for _, s := range srvs {
		require.Equal(t, uint16(4001), s.Port)
	}
	require.True(t, c.logContains(0, "members consul knows"))
	require.NoError(t, e.put(c, 0, "/via-consul", "v"))
	require.Equal(t, "v", e.get(c, 2, "/via-consul"))

	// etcd_ctl status shows what the local agent knows next to the member table.
	out, err = c.ctl(0, "status")
	require.NoError(t, err, out)
	require.Contains(t, out, "consul service etcd.service.cf.internal (agent http://127.0.0.1:8500): 3 registered")
	require.Regexp(t, `etcd-1\s+127\.0\.0\.11:4001\s+passing\s+`, out)

	// An ordinary stop (the instance keeps its disk) keeps the registration.
	out, err = c.drain(1, "job_shutdown", 1024)
	require.NoError(t, err, out)
	require.Contains(t, e.services(), "etcd-1")

	// Deleting the instance removes the member and deregisters it.
	out, err = c.drain(2, "job_shutdown", 0)
	require.NoError(t, err, out)
	require.NotContains(t, e.services(), "etcd-2", "drain of a deleted instance deregisters it")
	require.Equal(t, "", e.checkStatus("etcd-2"), "its check goes with it")
	_, err = e.lookupA(memberHost(2))
	require.Error(t, err, "consul DNS no longer answers the deleted member's name")
	srvs, err = e.lookupSRV(consulService)
	require.NoError(t, err)
	require.Len(t, srvs, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := e.nsClient(c, 0).MemberList(ctx)
	require.NoError(t, err)
	require.Len(t, list.Members, 2)
	c.stop(2)
	require.Contains(t, e.services(), "etcd-0")
	require.Contains(t, e.services(), "etcd-1")
}

// TestConsulStartBeforeDNSAnswers: the members start while the consul agent (and so DNS) is not there; they
// wait with logged, bounded retries instead of failing or creating clusters; once the agent starts they
// register, resolve each other and form exactly one cluster.
func TestConsulStartBeforeDNSAnswers(t *testing.T) {
	e := newConsulEnv(t)
	c := newConsulCluster(t, e, 3, false)
	out, err := c.ctl(0, "validate")
	require.NoError(t, err, "an unreachable agent is a warning in pre-start, not a failure: %s", out)
	require.Contains(t, out, "WARNING: the consul agent at http://127.0.0.1:8500 (etcd.consul.agent_url) does not answer")
	require.Contains(t, out, "etcd_ctl start will wait up to 120 seconds")

	for i := 0; i < 3; i++ {
		c.start(i)
	}
	time.Sleep(15 * time.Second)
	for i := 0; i < 3; i++ {
		select {
		case <-c.procs[i].Done():
			c.dumpLog(i)
			t.Fatalf("member %d exited while the consul agent was not there", i)
		default:
		}
		require.True(t, c.logContains(i, "waiting for the consul agent"), "member %d logs why it waits", i)
		require.True(t, c.logContains(i, "http://127.0.0.1:8500"), "the log names the agent")
	}
	require.Zero(t, c.logCount("decided to create a new cluster"))

	e.startAgent()
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	c.requireHealthy(3)
	ids := map[string]bool{}
	for i := 0; i < 3; i++ {
		ids[c.status(i).ClusterID] = true
	}
	require.Len(t, ids, 1, "one cluster")
	require.Equal(t, 1, c.logCount("decided to create a new cluster"), "only the bootstrap instance created a cluster")
	require.Len(t, e.services(), 3)
	e.requireResolves(c, 0, 1, 2)
}

// TestConsulSerialFirstDeploy: a first deploy updates one instance at a time, so the bootstrap instance starts
// while its peers' etcd_ctl have never run and their names do not exist in consul (NXDOMAIN). That is a
// definite "nothing runs there", like a refused connection: the bootstrap instance creates the cluster at once
// instead of waiting for peers that only start after it, and the others join it one by one.
func TestConsulSerialFirstDeploy(t *testing.T) {
	e := newConsulEnv(t)
	e.startAgent()
	c := newConsulCluster(t, e, 3, true)
	for i := 0; i < 3; i++ {
		start := time.Now()
		c.start(i)
		c.waitReady(i, 90*time.Second)
		t.Logf("member %d ready after %s", i, time.Since(start).Round(time.Millisecond))
	}
	require.Zero(t, c.logCount("waiting for consul DNS to answer for peers' names"), "nobody waits for peers whose names do not exist")
	require.True(t, c.logContains(0, "some peers are not registered in consul"), "the bootstrap instance says why it does not wait")
	require.True(t, c.logContains(0, "or, with consul, is not registered"), "and why it creates the cluster")
	require.Equal(t, 1, c.logCount("decided to create a new cluster"))
	c.requireHealthy(3)
	ids := map[string]bool{}
	for i := 0; i < 3; i++ {
		ids[c.status(i).ClusterID] = true
	}
	require.Len(t, ids, 1, "one cluster")
}

// TestConsulMemberMovesToNewAddress: a member's VM is recreated with a new address and the same persistent
// disk. Its old name stops resolving once its etcd_ctl is gone (TTL check critical); on start it re-registers
// with the new address, the peers reach it by name, and it keeps its member ID and data.
func TestConsulMemberMovesToNewAddress(t *testing.T) {
	e := newConsulEnv(t)
	e.startAgent()
	c := newConsulCluster(t, e, 3, true)
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	c.requireHealthy(3)
	require.NoError(t, e.put(c, 0, "/before-move", "1"))
	ids := c.memberIDs(0)

	c.kill(2) // the VM goes away without a drain
	require.Eventually(t, func() bool { return e.checkStatus("etcd-2") == api.HealthCritical }, 3*consulCheckTTL*time.Second, 250*time.Millisecond,
		"without etcd_ctl the TTL check expires")
	require.Eventually(t, func() bool { _, err := e.lookupA(memberHost(2)); return err != nil }, 10*time.Second, 250*time.Millisecond,
		"consul DNS drops a critical member's name")

	const newAddr = "127.0.0.25"
	moveMember(t, c, 2, newAddr)
	c.start(2)
	c.waitReady(2, 2*time.Minute)
	require.Equal(t, newAddr, e.services()["etcd-2"].Address, "re-registered with the new address")
	e.requireResolves(c, 2)
	c.requireHealthy(3)
	require.Equal(t, ids, c.memberIDs(0), "same member IDs: the member restarted with its data")
	require.Equal(t, "1", e.get(c, 2, "/before-move"))
	require.NoError(t, e.put(c, 2, "/after-move", "2"), "writes through the moved member")
	require.Equal(t, "2", e.get(c, 0, "/after-move"))
	require.Equal(t, "2", e.get(c, 1, "/after-move"))
	require.Eventually(t, func() bool { return e.checkStatus("etcd-2") == api.HealthPassing }, 20*time.Second, 250*time.Millisecond)
}
