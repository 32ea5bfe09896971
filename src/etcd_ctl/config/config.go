// Package config defines the JSON document that the etcd job's ERB template renders for etcd_ctl, with the
// defaults of the job spec and a side-effect-free validation that names the BOSH property behind each problem.
//
// The template only dumps BOSH data (instance spec, `etcd.*` properties, the `etcd` link); every decision made
// from that data lives in Go so that it can be unit-tested.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Config is the whole input of etcd_ctl.
type Config struct {
	// Instance is the BOSH instance spec of this VM (spec.* in templates).
	Instance Instance `json:"instance"`
	// Etcd holds the `etcd.*` job properties, named exactly as in the job spec.
	Etcd Properties `json:"etcd"`
	// Link is the consumed `etcd` link (nil when the job is deployed without it).
	Link *Link `json:"link,omitempty"`
	// Paths are the on-VM locations; the defaults are the BOSH conventions for a job named etcd.
	Paths Paths `json:"paths"`
}

// Instance mirrors the parts of the BOSH instance spec etcd_ctl needs.
type Instance struct {
	Deployment string `json:"deployment"`
	// Name is the instance group name (spec.name).
	Name      string `json:"name"`
	Index     int    `json:"index"`
	ID        string `json:"id"`
	AZ        string `json:"az"`
	Bootstrap bool   `json:"bootstrap"`
	// Address is spec.address: an IP, or a DNS name when the director uses DNS addresses.
	Address string `json:"address"`
	// IP is spec.ip: the IP on the default network.
	IP string `json:"ip"`
}

// Properties are the `etcd.*` job properties. Names and defaults follow the original CF etcd-release job spec;
// properties that are new in this release are additive and default to the old behaviour.
type Properties struct {
	Machines []string       `json:"machines"`
	Cluster  []ClusterGroup `json:"cluster"`

	HeartbeatIntervalInMilliseconds int `json:"heartbeat_interval_in_milliseconds"`
	ElectionTimeoutInMilliseconds   int `json:"election_timeout_in_milliseconds"`

	RequireSSL bool   `json:"require_ssl"`
	CACert     string `json:"ca_cert"`
	ServerCert string `json:"server_cert"`
	ServerKey  Secret `json:"server_key"`
	ClientCert string `json:"client_cert"`
	ClientKey  Secret `json:"client_key"`

	PeerRequireSSL bool   `json:"peer_require_ssl"`
	PeerCACert     string `json:"peer_ca_cert"`
	PeerCert       string `json:"peer_cert"`
	PeerKey        Secret `json:"peer_key"`
	// PeerAllowedCN and PeerAllowedHostname (new in this release) are etcd's --peer-cert-allowed-cn and
	// --peer-cert-allowed-hostname: besides being signed by etcd.peer_ca_cert, a peer's certificate must carry one
	// of these common names, or be valid for one of these host names. See hardening.go.
	PeerAllowedCN       StringList `json:"peer_allowed_cn"`
	PeerAllowedHostname StringList `json:"peer_allowed_hostname"`
	// TLSMinVersion ("1.2" or "1.3") and TLSCipherSuites (TLS 1.2 suites by Go name; empty: Go's defaults) apply
	// to etcd's client and peer listeners (etcd's --tls-min-version and --cipher-suites).
	TLSMinVersion   string   `json:"tls_min_version"`
	TLSCipherSuites []string `json:"tls_cipher_suites"`

	// ClientIP and PeerIP are the addresses etcd listens on.
	ClientIP string `json:"client_ip"`
	PeerIP   string `json:"peer_ip"`

	AdvertiseURLsDNSSuffix string `json:"advertise_urls_dns_suffix"`
	DNSHealthCheckHost     string `json:"dns_health_check_host"`
	EnableDebugLogging     bool   `json:"enable_debug_logging"`

	// Accepted for manifest compatibility with the original release; network diagnostics are not part of this
	// release (etcd_ctl logs every membership decision instead).
	EnableNetworkDiagnostics            *bool `json:"enable_network_diagnostics,omitempty"`
	NetworkDiagnosticsDurationInSeconds *int  `json:"network_diagnostics_duration_in_seconds,omitempty"`

	// New in this release.
	ClientPort int `json:"client_port"`
	PeerPort   int `json:"peer_port"`
	// InitialClusterToken makes member IDs unique per deployment; empty means "etcd-<deployment>".
	InitialClusterToken string `json:"initial_cluster_token"`
	// StartTimeoutInSeconds bounds how long `start` waits for the member to become ready.
	StartTimeoutInSeconds int `json:"start_timeout_in_seconds"`
	// QuotaBackendBytes is etcd's backend size quota (0 = etcd's default of 2 GiB).
	QuotaBackendBytes int64 `json:"quota_backend_bytes"`
	// Consul holds the etcd.consul.* properties: register with the colocated consul agent and resolve members
	// through consul DNS.
	Consul ConsulProperties `json:"consul"`

	// The metrics listener (etcd.metrics_*): etcd's and etcd_ctl's Prometheus metrics and /health on the VM's
	// address, apart from the client port so that a scraper needs no data access. See metrics.go.
	MetricsPort       int    `json:"metrics_port"`
	MetricsScheme     string `json:"metrics_scheme"`
	MetricsLevel      string `json:"metrics_level"`
	MetricsCACert     string `json:"metrics_ca_cert"`
	MetricsServerCert string `json:"metrics_server_cert"`
	MetricsServerKey  Secret `json:"metrics_server_key"`
	// PostStartTimeoutInSeconds bounds `etcd_ctl wait-ready` (bin/post-start), which reads it from here so that
	// no property is pasted into a shell command line.
	PostStartTimeoutInSeconds int `json:"post_start_timeout_in_seconds"`
	// MaxMovedAside is how many moved-aside copies of the data dir are kept; older ones are pruned.
	MaxMovedAside int `json:"max_moved_aside"`
	// JoinStallTimeoutInSeconds is how long a starting member may show no catch-up progress at all (applied or
	// committed raft index, bytes of a snapshot streaming in) before a join gives up; while it progresses it waits.
	JoinStallTimeoutInSeconds int `json:"join_stall_timeout_in_seconds"`
	// Keyspace maintenance (see config/maintenance.go and the maintenance package).
	// AutoCompactionMode and AutoCompactionRetention are etcd's --auto-compaction-mode/-retention.
	AutoCompactionMode      string `json:"auto_compaction_mode"`
	AutoCompactionRetention string `json:"auto_compaction_retention"`
	// EnableCorruptionChecks turns on etcd's InitialCorruptCheck and CompactHashCheck feature gates.
	EnableCorruptionChecks bool                  `json:"enable_corruption_checks"`
	Maintenance            MaintenanceProperties `json:"maintenance"`
	// Backup holds the etcd.backup.* properties: scheduled snapshots on the persistent disk.
	Backup BackupProperties `json:"backup"`
	// Auth holds the etcd.auth.* properties: authentication and role-based access control (auth.go).
	Auth AuthProperties `json:"auth"`
}

// BackupProperties are the `etcd.backup.*` job properties.
type BackupProperties struct {
	// IntervalInMinutes is how often the cluster takes a scheduled snapshot (one member at a time); 0 turns
	// scheduled snapshots off (`etcd_ctl snapshot` still works).
	IntervalInMinutes int `json:"interval_in_minutes"`
	// KeepCount is how many snapshots a member keeps in its backup dir (the newest is always kept).
	KeepCount int `json:"keep_count"`
	// KeepDays prunes snapshots older than this many days (0: no age limit; the newest is always kept).
	KeepDays int `json:"keep_days"`
	// Gzip compresses snapshot files.
	Gzip bool `json:"gzip"`
	// Dir is where snapshots go; empty means "<data dir>-backups" (/var/vcap/store/etcd-backups), on the
	// persistent disk but outside the store the documented wipe (rm -rf /var/vcap/store/etcd/*) empties.
	Dir string `json:"dir"`
	// EncryptionKeys encrypt snapshot files: the first encrypts new snapshots, every one can decrypt (rotation).
	EncryptionKeys []BackupKey `json:"encryption_keys"`
	// S3 is the optional off-VM copy of every snapshot this member takes (etcd.backup.s3.*).
	S3 BackupS3Properties `json:"s3"`
}

// BackupS3Properties are the `etcd.backup.s3.*` job properties; an empty endpoint turns off-VM copies off.
type BackupS3Properties struct {
	Endpoint        string `json:"endpoint"`
	Bucket          string `json:"bucket"`
	Prefix          string `json:"prefix"`
	Region          string `json:"region"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey Secret `json:"secret_access_key"`
	// CACert, if set, is the only CA trusted for an https endpoint.
	CACert string `json:"ca_cert"`
	// KeepCount and KeepDays are the remote retention (0: the local etcd.backup.keep_count / keep_days).
	KeepCount int `json:"keep_count"`
	KeepDays  int `json:"keep_days"`
}

// BackupKey is one entry of etcd.backup.encryption_keys.
type BackupKey struct {
	// ID is recorded in every file the key encrypts, so that restore picks the right key after a rotation.
	ID string `json:"id"`
	// Key is 32 random bytes, base64 (`openssl rand -base64 32`).
	Key Secret `json:"key"`
}

// BackupDir is where snapshots of this member are written (see BackupProperties.Dir).
func (c *Config) BackupDir() string {
	if c.Etcd.Backup.Dir != "" {
		return c.Etcd.Backup.Dir
	}
	return filepath.Clean(c.Paths.DataDir) + "-backups"
}

// ConsulProperties are the `etcd.consul.*` job properties.
type ConsulProperties struct {
	// Enabled registers this member with the colocated consul agent and resolves members through consul DNS
	// (<member>.<etcd.advertise_urls_dns_suffix>).
	Enabled bool `json:"enabled"`
	// AgentURL is the HTTP API of the colocated agent.
	AgentURL string `json:"agent_url"`
	// ACLToken is sent with every agent API request.
	ACLToken Secret `json:"acl_token"`
	// WaitTimeoutInSeconds bounds the wait for the agent and for this member's own name to resolve.
	WaitTimeoutInSeconds int `json:"wait_timeout_in_seconds"`
	// CheckTTLInSeconds is the TTL of the health check etcd_ctl keeps refreshing.
	CheckTTLInSeconds int `json:"check_ttl_in_seconds"`
}

// DefaultConsulAgentURL is the HTTP API of a colocated consul agent (consul-release's default).
const DefaultConsulAgentURL = "http://127.0.0.1:8500"

// ClusterGroup is one entry of the legacy `etcd.cluster` property: an instance group and its size.
type ClusterGroup struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
}

// Link is the content of the consumed `etcd` link.
type Link struct {
	Instances  []LinkInstance  `json:"instances"`
	Properties *LinkProperties `json:"properties,omitempty"`
}

// LinkInstance is one provider instance as BOSH describes it in a link.
type LinkInstance struct {
	// Name is the provider's instance group name.
	Name      string `json:"name"`
	Index     int    `json:"index"`
	ID        string `json:"id"`
	AZ        string `json:"az"`
	Address   string `json:"address"`
	Bootstrap bool   `json:"bootstrap"`
}

// LinkProperties are the provider's properties exposed through the link (nested under "etcd" as in the spec).
type LinkProperties struct {
	Etcd *Properties `json:"etcd,omitempty"`
}

// UnmarshalJSON decodes the link's `etcd` hash over the spec defaults, so a partial hand-written link behaves
// like one BOSH resolved against the provider's spec.
func (lp *LinkProperties) UnmarshalJSON(b []byte) error {
	var raw struct {
		Etcd json.RawMessage `json:"etcd"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw.Etcd) == 0 || string(raw.Etcd) == "null" {
		return nil
	}
	p := DefaultProperties()
	if err := json.Unmarshal(raw.Etcd, &p); err != nil {
		return err
	}
	lp.Etcd = &p
	return nil
}

// Paths are where etcd_ctl keeps its state on the VM.
type Paths struct {
	// DataDir is etcd's data directory (on the persistent disk).
	DataDir string `json:"data_dir"`
	// RunDir holds the pidfile and the TLS files materialised for etcd (tmpfs on a BOSH VM).
	RunDir string `json:"run_dir"`
	// LogDir is where the job writes its logs.
	LogDir string `json:"log_dir"`
}

// Secret is a string that never prints: it keeps private keys out of logs and `render` output.
type Secret string

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString keeps %#v from leaking the value.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON redacts the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// UnmarshalJSON reads the plain value.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v *string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v != nil {
		*s = Secret(*v)
	}
	return nil
}

// Value returns the secret itself, for the few places that must use it.
func (s Secret) Value() string { return string(s) }

// Default ports of the original etcd-release.
const (
	DefaultClientPort = 4001
	DefaultPeerPort   = 7001
)

// DefaultMaxMovedAside is the default of etcd.max_moved_aside.
const DefaultMaxMovedAside = 3

// DefaultJoinStallTimeoutInSeconds is the default of etcd.join_stall_timeout_in_seconds.
const DefaultJoinStallTimeoutInSeconds = 120

// Default returns the configuration every rendered file is decoded over. It matches jobs/etcd/spec.
func Default() Config {
	return Config{
		Etcd: DefaultProperties(),
		Paths: Paths{
			DataDir: "/var/vcap/store/etcd",
			RunDir:  "/var/vcap/sys/run/etcd",
			LogDir:  "/var/vcap/sys/log/etcd",
		},
	}
}

// DefaultProperties are the job spec defaults of the `etcd.*` properties.
func DefaultProperties() Properties {
	return Properties{
		HeartbeatIntervalInMilliseconds: 50,
		ElectionTimeoutInMilliseconds:   1000,
		RequireSSL:                      true,
		PeerRequireSSL:                  true,
		TLSMinVersion:                   TLSVersion12,
		PeerAllowedCN:                   StringList{},
		PeerAllowedHostname:             StringList{},
		TLSCipherSuites:                 []string{},
		Auth:                            AuthProperties{Users: []AuthUser{}, Roles: []AuthRole{}},
		ClientIP:                        "0.0.0.0",
		PeerIP:                          "0.0.0.0",
		DNSHealthCheckHost:              "consul.service.cf.internal",
		ClientPort:                      DefaultClientPort,
		PeerPort:                        DefaultPeerPort,
		StartTimeoutInSeconds:           300,
		PostStartTimeoutInSeconds:       600,
		MaxMovedAside:                   DefaultMaxMovedAside,
		JoinStallTimeoutInSeconds:       DefaultJoinStallTimeoutInSeconds,
		Consul: ConsulProperties{
			AgentURL:             DefaultConsulAgentURL,
			WaitTimeoutInSeconds: 300,
			CheckTTLInSeconds:    30,
		},
		MetricsPort:             DefaultMetricsPort,
		MetricsScheme:           "http",
		MetricsLevel:            "basic",
		AutoCompactionMode:      CompactionPeriodic,
		AutoCompactionRetention: "5m",
		EnableCorruptionChecks:  true,
		Maintenance:             DefaultMaintenance(),
		Backup:                  BackupProperties{IntervalInMinutes: 60, KeepCount: 24, KeepDays: 7, EncryptionKeys: []BackupKey{}, S3: BackupS3Properties{Prefix: "etcd", Region: "us-east-1"}},
	}
}

// Load reads and decodes a rendered config file over Default(). It does not validate.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading etcd_ctl config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a rendered config over Default(). JSON nulls (BOSH renders properties without a default as
// null) keep the default. Unknown keys are errors so that a typo in a hand-written file is not silently ignored.
func Parse(data []byte) (*Config, error) {
	c := Default()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, describeDecodeError(err)
	}
	return &c, nil
}

// describeDecodeError turns encoding/json's messages into ones that name the BOSH property.
func describeDecodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return &PropertyError{Property: field, Problem: fmt.Sprintf("got a %s, must be a %s", te.Value, jsonKind(te.Type.Kind().String()))}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("not valid JSON: the document ends early: %w", err)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("not valid JSON at byte %d: %w", se.Offset, err)
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return fmt.Errorf("unknown key %s: remove it or check its spelling against jobs/etcd/spec", strings.TrimPrefix(msg, "json: unknown field "))
	}
	return err
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "number"
	case "bool":
		return "boolean (true or false)"
	case "slice":
		return "list"
	case "struct", "map":
		return "hash"
	default:
		return goKind
	}
}

// PropertyError names the BOSH property (or config key) behind a problem and says what to do.
type PropertyError struct {
	Property string
	Problem  string
}

func (e *PropertyError) Error() string { return e.Property + ": " + e.Problem }

// PidFile is where `start` records its pid for monit.
func (p Paths) PidFile() string { return filepath.Join(p.RunDir, "etcd.pid") }

// TLSDir is where `start` writes the TLS files etcd reads.
func (p Paths) TLSDir() string { return filepath.Join(p.RunDir, "tls") }

// DrainMarker is written by `etcd_ctl drain` before it removes this member, so that the supervisor knows the
// removal was intended (it does not rejoin) and the consul heartbeat does not register the member again.
func (p Paths) DrainMarker() string { return filepath.Join(p.RunDir, "removed-by-drain") }
