// Package localcluster lays out etcd_ctl members on loopback addresses of this machine — one 127.x.y.z address
// per member, the job's real ports, its own data/run/log dirs — and runs them as real `etcd_ctl start`
// processes. The integration tests and the `local-cluster` developer command both use it; it is the stand-in
// for VMs until a director deploys the release.
package localcluster

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

// Layout describes a local cluster.
type Layout struct {
	// Dir holds everything: certs, per-member dirs.
	Dir string
	// Deployment names the cluster (and its initial-cluster-token).
	Deployment string
	// Base is the first member's address; member i uses Base + i in the last octet.
	Base net.IP
	// RequireSSL and PeerRequireSSL set etcd.require_ssl and etcd.peer_require_ssl.
	RequireSSL, PeerRequireSSL bool
	// MaxMembers is how many addresses the server/peer certificates cover (scaling headroom).
	MaxMembers int
	// Certs is the TLS material; Generate fills it if nil.
	Certs *pki.Set
	// Tweak, if set, edits each member's properties before they are written.
	Tweak func(index int, p *config.Properties)
}

// Address of member i.
func (l *Layout) Address(i int) string {
	ip := make(net.IP, 4)
	copy(ip, l.Base.To4())
	ip[3] += byte(i)
	return ip.String()
}

// MemberDir is member i's root (its "/var/vcap").
func (l *Layout) MemberDir(i int) string { return filepath.Join(l.Dir, fmt.Sprintf("etcd-%d", i)) }

// ConfigPath is where member i's rendered config lives.
func (l *Layout) ConfigPath(i int) string { return filepath.Join(l.MemberDir(i), "etcd_ctl.json") }

// Paths of member i.
func (l *Layout) Paths(i int) config.Paths {
	d := l.MemberDir(i)
	return config.Paths{DataDir: filepath.Join(d, "store", "etcd"), RunDir: filepath.Join(d, "sys", "run", "etcd"), LogDir: filepath.Join(d, "sys", "log", "etcd")}
}

// EnsureCerts generates the TLS material once (server and peer certificates cover every member address).
func (l *Layout) EnsureCerts() error {
	if l.Certs != nil {
		return nil
	}
	n := l.MaxMembers
	if n < 5 {
		n = 5
	}
	// Processes on one machine dial their peers from 127.0.0.1, and etcd checks a peer client certificate's IP
	// SANs against the connection's source address: on VMs that is the member's own address.
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	for i := 0; i < n; i++ {
		ips = append(ips, net.ParseIP(l.Address(i)))
	}
	set, err := pki.GenerateClusterSet(pki.SetOptions{IPs: ips})
	if err != nil {
		return fmt.Errorf("generating certificates: %w", err)
	}
	l.Certs = set
	return nil
}

// Config returns the configuration member i would get from BOSH when the desired cluster has n members.
func (l *Layout) Config(i, n int) (*config.Config, error) {
	if err := l.EnsureCerts(); err != nil {
		return nil, err
	}
	c := config.Default()
	addr := l.Address(i)
	c.Instance = config.Instance{Deployment: l.Deployment, Name: "etcd", Index: i, ID: fmt.Sprintf("%s-%d", l.Deployment, i), AZ: "z1", Bootstrap: i == 0, Address: addr, IP: addr}
	p := &c.Etcd
	p.RequireSSL, p.PeerRequireSSL = l.RequireSSL, l.PeerRequireSSL
	p.ClientIP, p.PeerIP = addr, addr
	p.StartTimeoutInSeconds = 120
	s := l.Certs
	p.CACert, p.ServerCert, p.ServerKey = string(s.CACert), string(s.ServerCert), config.Secret(s.ServerKey)
	p.ClientCert, p.ClientKey = string(s.ClientCert), config.Secret(s.ClientKey)
	p.PeerCACert, p.PeerCert, p.PeerKey = string(s.PeerCACert), string(s.PeerCert), config.Secret(s.PeerKey)
	if l.Tweak != nil {
		l.Tweak(i, p)
	}
	link := &config.Link{}
	for j := 0; j < n; j++ {
		link.Instances = append(link.Instances, config.LinkInstance{Name: "etcd", Index: j, ID: fmt.Sprintf("%s-%d", l.Deployment, j), AZ: "z1", Address: l.Address(j), Bootstrap: j == 0})
	}
	c.Link = link
	c.Paths = l.Paths(i)
	return &c, nil
}

// WriteConfig renders member i's config for a desired cluster of n members to ConfigPath(i).
func (l *Layout) WriteConfig(i, n int) error {
	c, err := l.Config(i, n)
	if err != nil {
		return err
	}
	b, err := MarshalConfig(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.MemberDir(i), 0o755); err != nil {
		return err
	}
	return os.WriteFile(l.ConfigPath(i), b, 0o600)
}

// MarshalConfig writes c as the job template would, secrets in the clear.
func MarshalConfig(c *config.Config) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	etcd := m["etcd"].(map[string]any)
	etcd["server_key"], etcd["client_key"], etcd["peer_key"] = c.Etcd.ServerKey.Value(), c.Etcd.ClientKey.Value(), c.Etcd.PeerKey.Value()
	etcd["metrics_server_key"] = c.Etcd.MetricsServerKey.Value()
	if b, ok := etcd["backup"].(map[string]any); ok {
		keys := []any{}
		for _, k := range c.Etcd.Backup.EncryptionKeys {
			keys = append(keys, map[string]any{"id": k.ID, "key": k.Key.Value()})
		}
		b["encryption_keys"] = keys
		if s3, ok := b["s3"].(map[string]any); ok {
			s3["secret_access_key"] = c.Etcd.Backup.S3.SecretAccessKey.Value()
		}
	}
	if a, ok := etcd["auth"].(map[string]any); ok {
		a["root_password"] = c.Etcd.Auth.RootPassword.Value()
		if users, ok := a["users"].([]any); ok {
			for i, u := range users {
				u.(map[string]any)["password"] = c.Etcd.Auth.Users[i].Password.Value()
			}
		}
	}
	return json.MarshalIndent(m, "", "  ")
}

// HostPort is the host:port of a URL (a Prometheus scrape target).
func HostPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}
