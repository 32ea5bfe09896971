// Package config is the acceptance suite's configuration: a JSON file named by the ACCEPTANCE_CONFIG environment
// variable. The acceptance-tests errand renders it from its properties (jobs/acceptance-tests/templates/
// config.json.erb); `make acceptance` writes one for the local director. Keys missing from the file take the
// values of Default(); Validate names every key that is still missing or wrong.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// EnvVar names the environment variable holding the config file's path.
const EnvVar = "ACCEPTANCE_CONFIG"

// Config is the whole suite configuration.
type Config struct {
	Director Director `json:"director"`
	// DeploymentPrefix starts the name of every deployment the suite creates (and deletes).
	DeploymentPrefix string `json:"deployment_prefix"`
	// Release is the etcd release under test; it must be uploaded unless Tarball is set.
	Release Release `json:"release"`
	// PreviousRelease is what the upgrade scenario deploys first. An empty version means the highest uploaded
	// version of Release.Name below Release.Version.
	PreviousRelease Release  `json:"previous_release"`
	Stemcell        Stemcell `json:"stemcell"`
	// Network, AZs, VMType and PersistentDiskType name cloud-config entries.
	Network            string   `json:"network"`
	AZs                []string `json:"azs"`
	VMType             string   `json:"vm_type"`
	PersistentDiskType string   `json:"persistent_disk_type"`
	// StaticIPs are addresses of Network's static range the suite may give its deployments (entries are IPs or
	// "a - b" ranges). Members' certificates name their IPs, so every deployment uses static IPs.
	StaticIPs []string `json:"static_ips"`
	// ManifestTemplate optionally names a YAML manifest the suite starts from instead of its built-in one; the
	// suite sets name, releases, stemcells, the etcd instance group's size, network, static IPs and properties.
	ManifestTemplate string `json:"manifest_template"`
	// Scenarios restricts the run to specs carrying one of these labels (in addition to --ginkgo.label-filter).
	Scenarios  []string   `json:"scenarios"`
	TestHelper TestHelper `json:"test_helper"`
	// Consul enables the consul DNS scenarios (label consul); without a release name they are skipped.
	Consul   Consul   `json:"consul"`
	Timeouts Timeouts `json:"timeouts"`
	Load     Load     `json:"load"`
	// KeepOnFailure keeps the deployment of a failed scenario for debugging (it is deleted otherwise).
	KeepOnFailure bool `json:"keep_on_failure"`
	// ReportDir receives the JUnit XML report, the summary table and per-scenario diagnostics.
	ReportDir string `json:"report_dir"`
}

// Director says how to reach and authenticate against the director.
type Director struct {
	URL          string `json:"url"`
	Client       string `json:"client"`
	ClientSecret string `json:"client_secret"`
	// CACert is the PEM CA certificate of the director's TLS certificate; CACertFile names a file holding it.
	CACert     string `json:"ca_cert"`
	CACertFile string `json:"ca_cert_file"`
}

// Release names a release version and optionally a tarball the suite uploads first.
type Release struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Tarball string `json:"tarball"`
}

// Stemcell is what the deployments' stemcells section asks for.
type Stemcell struct {
	OS      string `json:"os"`
	Version string `json:"version"`
}

// TestHelper is how the suite deploys and talks to the etcd-test-helper job. An empty password makes the suite
// generate one per deployment.
type TestHelper struct {
	Port     int    `json:"port"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// Consul names the consul release the consul DNS scenarios colocate with etcd (acceptance-tests/consul-release,
// built by `go run ./src/releasetools/cmd/consul-test-release`): a consul server instance group and a client agent on every
// etcd VM.
type Consul struct {
	Release Release `json:"release"`
}

// Timeouts bound every wait of the suite.
type Timeouts struct {
	DeployInSeconds   int `json:"deploy_in_seconds"`
	TaskInSeconds     int `json:"task_in_seconds"`
	ConvergeInSeconds int `json:"converge_in_seconds"`
	// CheckInSeconds bounds the linearizability check of one scenario's history.
	CheckInSeconds int `json:"check_in_seconds"`
}

// Load shapes the test consumer.
type Load struct {
	// WritesPerSecond of the unique-key writer.
	WritesPerSecond int `json:"writes_per_second"`
	// RegisterClients each alternate writes and linearizable reads on RegisterKeys keys at RegisterOpsPerSecond.
	RegisterClients      int `json:"register_clients"`
	RegisterKeys         int `json:"register_keys"`
	RegisterOpsPerSecond int `json:"register_ops_per_second"`
	// OpTimeoutMillis bounds one client operation.
	OpTimeoutMillis int `json:"op_timeout_ms"`
	// MaxStallMillis is the target for the longest write stall of the rolling deploy and each rotation step;
	// 0 records the stall without asserting it.
	MaxStallMillis int `json:"max_stall_ms"`
}

// Default is every value a config file may leave out.
func Default() Config {
	return Config{
		DeploymentPrefix:   "etcd-acceptance",
		Release:            Release{Name: "etcd", Version: "latest"},
		Consul:             Consul{Release: Release{Version: "latest"}},
		Stemcell:           Stemcell{OS: "ubuntu-jammy", Version: "latest"},
		Network:            "default",
		AZs:                []string{"z1", "z2", "z3"},
		VMType:             "default",
		PersistentDiskType: "default",
		TestHelper:         TestHelper{Port: 8448, Username: "acceptance"},
		Timeouts:           Timeouts{DeployInSeconds: 1800, TaskInSeconds: 900, ConvergeInSeconds: 300, CheckInSeconds: 120},
		Load: Load{WritesPerSecond: 20, RegisterClients: 3, RegisterKeys: 8, RegisterOpsPerSecond: 10,
			OpTimeoutMillis: 5000, MaxStallMillis: 250},
	}
}

// FromEnv reads the file named by ACCEPTANCE_CONFIG over Default and validates it.
func FromEnv() (Config, error) {
	path := os.Getenv(EnvVar)
	if path == "" {
		return Config{}, fmt.Errorf("%s is not set: point it at the suite's JSON config file", EnvVar)
	}
	return Read(path)
}

// Read reads path over Default and validates it.
func Read(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading the acceptance config: %w", err)
	}
	return Parse(data)
}

// Parse decodes data over Default, loads ca_cert_file, and validates the result. Unknown keys are errors, so
// that a misspelt key is not silently ignored.
func Parse(data []byte) (Config, error) {
	c := Default()
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("decoding the acceptance config: %w", err)
	}
	if c.Director.CACert == "" && c.Director.CACertFile != "" {
		b, err := os.ReadFile(c.Director.CACertFile)
		if err != nil {
			return c, fmt.Errorf("director.ca_cert_file: %w", err)
		}
		c.Director.CACert = string(b)
	}
	return c, c.Validate()
}

// Validate returns every problem, each naming its key.
func (c Config) Validate() error {
	var errs []error
	missing := func(key, v string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("%s: missing", key))
		}
	}
	missing("director.url", c.Director.URL)
	if c.Director.URL != "" {
		if u, err := url.Parse(c.Director.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("director.url: got %q, must be https://host[:port]", c.Director.URL))
		}
	}
	missing("director.client", c.Director.Client)
	missing("director.client_secret", c.Director.ClientSecret)
	if c.Director.CACert == "" {
		errs = append(errs, errors.New("director.ca_cert (or director.ca_cert_file): missing"))
	} else if !strings.Contains(c.Director.CACert, "-----BEGIN CERTIFICATE-----") {
		errs = append(errs, errors.New("director.ca_cert: not a PEM certificate"))
	}
	missing("deployment_prefix", c.DeploymentPrefix)
	if c.DeploymentPrefix != "" && !validName(c.DeploymentPrefix) {
		errs = append(errs, fmt.Errorf("deployment_prefix: got %q, use letters, digits, '-' and '_'", c.DeploymentPrefix))
	}
	missing("release.name", c.Release.Name)
	missing("release.version", c.Release.Version)
	if c.Consul.Release.Name != "" {
		missing("consul.release.version", c.Consul.Release.Version)
	}
	missing("stemcell.os", c.Stemcell.OS)
	missing("stemcell.version", c.Stemcell.Version)
	missing("network", c.Network)
	if len(c.AZs) == 0 {
		errs = append(errs, errors.New("azs: missing (at least one cloud-config AZ)"))
	}
	missing("vm_type", c.VMType)
	missing("persistent_disk_type", c.PersistentDiskType)
	if ips, err := c.IPs(); err != nil {
		errs = append(errs, err)
	} else if len(ips) < 5 {
		errs = append(errs, fmt.Errorf("static_ips: got %d addresses, need at least 5 (a 5-member deployment)", len(ips)))
	}
	if c.TestHelper.Port <= 0 || c.TestHelper.Port > 65535 {
		errs = append(errs, fmt.Errorf("test_helper.port: got %d, must be 1-65535", c.TestHelper.Port))
	}
	missing("test_helper.username", c.TestHelper.Username)
	for _, t := range []struct {
		key string
		v   int
	}{
		{"timeouts.deploy_in_seconds", c.Timeouts.DeployInSeconds},
		{"timeouts.task_in_seconds", c.Timeouts.TaskInSeconds},
		{"timeouts.converge_in_seconds", c.Timeouts.ConvergeInSeconds},
		{"timeouts.check_in_seconds", c.Timeouts.CheckInSeconds},
		{"load.writes_per_second", c.Load.WritesPerSecond},
		{"load.register_keys", c.Load.RegisterKeys},
		{"load.register_ops_per_second", c.Load.RegisterOpsPerSecond},
		{"load.op_timeout_ms", c.Load.OpTimeoutMillis},
	} {
		if t.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: got %d, must be positive", t.key, t.v))
		}
	}
	if c.Load.RegisterClients < 0 {
		errs = append(errs, fmt.Errorf("load.register_clients: got %d, must not be negative", c.Load.RegisterClients))
	}
	if c.Load.MaxStallMillis < 0 {
		errs = append(errs, fmt.Errorf("load.max_stall_ms: got %d, must not be negative (0 disables the assertion)", c.Load.MaxStallMillis))
	}
	for _, s := range c.Scenarios {
		if strings.TrimSpace(s) == "" {
			errs = append(errs, errors.New("scenarios: empty label"))
		}
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// IPs expands StaticIPs into single addresses, in order, without duplicates.
func (c Config) IPs() ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, e := range c.StaticIPs {
		from, to, isRange := strings.Cut(e, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(from))
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("static_ips: %q is not an IPv4 address or range", e)
		}
		b := a
		if isRange {
			if b, err = netip.ParseAddr(strings.TrimSpace(to)); err != nil || !b.Is4() || b.Less(a) {
				return nil, fmt.Errorf("static_ips: %q is not a range a - b with a <= b", e)
			}
		}
		for ip := a; ; ip = ip.Next() {
			if !seen[ip] {
				seen[ip] = true
				out = append(out, ip)
			}
			if ip == b || len(out) > 4096 {
				break
			}
		}
	}
	if len(out) > 4096 {
		return nil, errors.New("static_ips: more than 4096 addresses")
	}
	return out, nil
}

// Seconds turns a timeout in seconds into a Duration.
func Seconds(n int) time.Duration { return time.Duration(n) * time.Second }
