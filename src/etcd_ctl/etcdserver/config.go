// Package etcdserver turns an etcd_ctl configuration and a start plan into an embedded etcd (embed.Config, built
// by a pure function so that it can be golden-tested) and runs exactly one embedded etcd per process.
//
// Membership decisions (bootstrap, join, restart) are not made here: they arrive as a Plan from the membership
// package. This package only knows how to express a plan to etcd and how to start and stop etcd well.
package etcdserver

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// Cluster states as etcd names them.
const (
	StateNew      = "new"
	StateExisting = "existing"
)

// Plan is how this member starts.
type Plan struct {
	// State is StateNew (create a cluster) or StateExisting (join or restart).
	State string
	// InitialCluster lists name=peerURL of every member etcd must know at first start (ignored by etcd when
	// the data dir already holds a member).
	InitialCluster []config.Member
	// Token, when set, is the initial cluster token of a new cluster (the deployment's token with a creation
	// nonce); empty means the deployment's token (config.ClusterToken).
	Token string
}

// InitialClusterString renders the plan's initial cluster as etcd's --initial-cluster value.
func (p Plan) InitialClusterString() string {
	parts := make([]string, 0, len(p.InitialCluster))
	for _, m := range p.InitialCluster {
		parts = append(parts, m.Name+"="+m.PeerURL)
	}
	return strings.Join(parts, ",")
}

// TLSFiles are the paths of the TLS files etcd reads; WriteTLSFiles materialises them from the properties.
type TLSFiles struct {
	ClientCA, ServerCert, ServerKey string
	PeerCA, PeerCert, PeerKey       string
	ClientCert, ClientKey           string
}

// TLSPaths returns where WriteTLSFiles puts the files for c.
func TLSPaths(c *config.Config) TLSFiles {
	d := c.Paths.TLSDir()
	return TLSFiles{
		ClientCA: filepath.Join(d, "ca.crt"), ServerCert: filepath.Join(d, "server.crt"), ServerKey: filepath.Join(d, "server.key"),
		PeerCA: filepath.Join(d, "peer-ca.crt"), PeerCert: filepath.Join(d, "peer.crt"), PeerKey: filepath.Join(d, "peer.key"),
		ClientCert: filepath.Join(d, "client.crt"), ClientKey: filepath.Join(d, "client.key"),
	}
}

// BuildConfig returns the embed.Config that runs c with plan. It does no I/O.
func BuildConfig(c *config.Config, plan Plan) (*embed.Config, error) {
	e := c.Etcd
	self := c.Self()
	cfg := embed.NewConfig()
	cfg.Name = self.Name
	cfg.Dir = c.Paths.DataDir
	cfg.TickMs = uint(e.HeartbeatIntervalInMilliseconds)
	cfg.ElectionMs = uint(e.ElectionTimeoutInMilliseconds)
	cfg.InitialClusterToken = c.ClusterToken()
	if plan.Token != "" {
		cfg.InitialClusterToken = plan.Token
	}
	cfg.StrictReconfigCheck = true
	// etcd resolves this default in its command-line parsing (parseWarningUnaryRequestDuration in etcd's
	// server/etcdmain/config.go), not in embed.NewConfig: left at zero, every request counts as slow and is
	// logged at warn level as "request stats".
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	cfg.PreVote = true
	// A joiner is added as a learner; allow one per membership change, which etcd_ctl serialises anyway.
	cfg.MaxLearners = 1
	if e.QuotaBackendBytes > 0 {
		cfg.QuotaBackendBytes = e.QuotaBackendBytes
	}
	if e.EnableDebugLogging {
		cfg.LogLevel = "debug"
	}
	// etcd --metrics. The metrics listener is etcd_ctl's (src/etcd_ctl/metrics), not ListenMetricsUrls.
	cfg.Metrics = e.MetricsLevel
	if err := setMaintenance(cfg, e); err != nil {
		return nil, err
	}

	var err error
	if cfg.ListenClientUrls, err = urls(fmt.Sprintf("%s://%s:%d", e.ClientScheme(), e.ClientIP, e.ClientPort)); err != nil {
		return nil, fmt.Errorf("etcd.client_ip: %w", err)
	}
	if cfg.AdvertiseClientUrls, err = urls(self.ClientURL); err != nil {
		return nil, fmt.Errorf("advertised client URL: %w", err)
	}
	if cfg.ListenPeerUrls, err = urls(fmt.Sprintf("%s://%s:%d", e.PeerScheme(), e.PeerIP, e.PeerPort)); err != nil {
		return nil, fmt.Errorf("etcd.peer_ip: %w", err)
	}
	if cfg.AdvertisePeerUrls, err = urls(self.PeerURL); err != nil {
		return nil, fmt.Errorf("advertised peer URL: %w", err)
	}

	switch plan.State {
	case StateNew, StateExisting:
		cfg.ClusterState = plan.State
	default:
		return nil, fmt.Errorf("start plan: unknown cluster state %q", plan.State)
	}
	if len(plan.InitialCluster) == 0 {
		return nil, fmt.Errorf("start plan: empty initial cluster")
	}
	cfg.InitialCluster = plan.InitialClusterString()

	files := TLSPaths(c)
	if e.RequireSSL {
		cfg.ClientTLSInfo.CertFile = files.ServerCert
		cfg.ClientTLSInfo.KeyFile = files.ServerKey
		cfg.ClientTLSInfo.TrustedCAFile = files.ClientCA
		cfg.ClientTLSInfo.ClientCertAuth = true
	}
	if e.PeerRequireSSL {
		cfg.PeerTLSInfo.CertFile = files.PeerCert
		cfg.PeerTLSInfo.KeyFile = files.PeerKey
		cfg.PeerTLSInfo.TrustedCAFile = files.PeerCA
		cfg.PeerTLSInfo.ClientCertAuth = true
		cfg.PeerTLSInfo.AllowedCNs = slices.Clone(e.PeerAllowedCN)
		cfg.PeerTLSInfo.AllowedHostnames = slices.Clone(e.PeerAllowedHostname)
	}
	cfg.TlsMinVersion = config.EtcdTLSVersion(e.TLSMinVersion)
	cfg.CipherSuites = slices.Clone(e.TLSCipherSuites)
	return cfg, nil
}

func urls(s string) ([]url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	return []url.URL{*u}, nil
}

// Flags renders cfg as the equivalent etcd command line, one flag per element. Only file paths of TLS
// material appear, never their content.
func Flags(cfg *embed.Config) []string {
	join := func(us []url.URL) string {
		s := make([]string, len(us))
		for i, u := range us {
			s[i] = u.String()
		}
		return strings.Join(s, ",")
	}
	f := []string{
		"--name=" + cfg.Name,
		"--data-dir=" + cfg.Dir,
		"--listen-client-urls=" + join(cfg.ListenClientUrls),
		"--advertise-client-urls=" + join(cfg.AdvertiseClientUrls),
		"--listen-peer-urls=" + join(cfg.ListenPeerUrls),
		"--initial-advertise-peer-urls=" + join(cfg.AdvertisePeerUrls),
		"--initial-cluster=" + cfg.InitialCluster,
		"--initial-cluster-state=" + cfg.ClusterState,
		"--initial-cluster-token=" + cfg.InitialClusterToken,
		fmt.Sprintf("--heartbeat-interval=%d", cfg.TickMs),
		fmt.Sprintf("--election-timeout=%d", cfg.ElectionMs),
		fmt.Sprintf("--strict-reconfig-check=%t", cfg.StrictReconfigCheck),
		fmt.Sprintf("--pre-vote=%t", cfg.PreVote),
		fmt.Sprintf("--max-learners=%d", cfg.MaxLearners),
		"--metrics=" + cfg.Metrics,
		"--warning-unary-request-duration=" + cfg.WarningUnaryRequestDuration.String(),
	}
	if cfg.QuotaBackendBytes > 0 {
		f = append(f, fmt.Sprintf("--quota-backend-bytes=%d", cfg.QuotaBackendBytes))
	}
	f = append(f, "--auto-compaction-mode="+cfg.AutoCompactionMode, "--auto-compaction-retention="+cfg.AutoCompactionRetention)
	if gates := enabledGates(cfg); gates != "" {
		f = append(f, "--feature-gates="+gates)
	}
	if cfg.LogLevel != "" && cfg.LogLevel != "info" {
		f = append(f, "--log-level="+cfg.LogLevel)
	}
	if t := cfg.ClientTLSInfo; !t.Empty() {
		f = append(f, "--cert-file="+t.CertFile, "--key-file="+t.KeyFile, "--trusted-ca-file="+t.TrustedCAFile,
			fmt.Sprintf("--client-cert-auth=%t", t.ClientCertAuth))
	}
	if t := cfg.PeerTLSInfo; !t.Empty() {
		f = append(f, "--peer-cert-file="+t.CertFile, "--peer-key-file="+t.KeyFile, "--peer-trusted-ca-file="+t.TrustedCAFile,
			fmt.Sprintf("--peer-client-cert-auth=%t", t.ClientCertAuth))
		for _, cn := range t.AllowedCNs {
			f = append(f, "--peer-cert-allowed-cn="+cn)
		}
		for _, h := range t.AllowedHostnames {
			f = append(f, "--peer-cert-allowed-hostname="+h)
		}
	}
	if !cfg.ClientTLSInfo.Empty() || !cfg.PeerTLSInfo.Empty() {
		f = append(f, "--tls-min-version="+cfg.TlsMinVersion)
		if len(cfg.CipherSuites) > 0 {
			f = append(f, "--cipher-suites="+strings.Join(cfg.CipherSuites, ","))
		}
	}
	return f
}

// ReadyTimeout is etcd.start_timeout_in_seconds as a duration: the bound of a start that has no catch-up to wait
// for (recover-from-survivor's one-member start). A joining or restarting member waits on progress instead
// (membership.ReadyWaiter).
func ReadyTimeout(c *config.Config) time.Duration {
	return time.Duration(c.Etcd.StartTimeoutInSeconds) * time.Second
}
