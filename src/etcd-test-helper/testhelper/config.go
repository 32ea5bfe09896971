package testhelper

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Config is the JSON the job's template renders (config/config.json).
type Config struct {
	// ListenAddress and Port: where the API listens.
	ListenAddress string `json:"listen_address"`
	Port          int    `json:"port"`
	// Username and Password enable basic auth; Token enables "Authorization: Bearer <token>". At least one is set.
	Username string `json:"username"`
	Password string `json:"password"`
	Token    string `json:"token"`
	// TLSCert and TLSKey (PEM), when both set, make the API serve HTTPS.
	TLSCert string `json:"tls_cert"`
	TLSKey  string `json:"tls_key"`
	// Plaintext serves plain HTTP. Without it and without TLSCert the helper serves HTTPS with a self-signed
	// certificate it makes at start (its SHA-256 fingerprint is logged).
	Plaintext bool `json:"plaintext"`
	// VcapRoot is /var/vcap on a VM; tests point it at a temporary directory.
	VcapRoot string `json:"vcap_root"`
	// Monit is the monit command with leading arguments; empty means <VcapRoot>/bosh/bin/monit if present, else
	// monit from PATH.
	Monit []string `json:"monit"`
	// EtcdCtl is the etcd_ctl binary and EtcdCtlConfig the config it reads for `status`.
	EtcdCtl       string `json:"etcd_ctl"`
	EtcdCtlConfig string `json:"etcd_ctl_config"`
	// Iptables is the iptables command; empty means iptables from /usr/sbin, /sbin or PATH.
	Iptables string `json:"iptables"`
}

// Default is the configuration on a BOSH VM, matching the job spec's defaults.
func Default() Config {
	return Config{
		ListenAddress: "0.0.0.0",
		Port:          8448,
		VcapRoot:      "/var/vcap",
		EtcdCtl:       "/var/vcap/packages/etcd_ctl/bin/etcd_ctl",
		EtcdCtlConfig: "/var/vcap/jobs/etcd/config/etcd_ctl.json",
	}
}

// Load reads a config file over Default and validates it.
func Load(path string) (Config, error) {
	c := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, c.Validate()
}

// Validate reports every problem, naming the job property.
func (c Config) Validate() error {
	var errs []error
	if c.Port <= 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("etcd_test_helper.port: got %d, must be 1-65535", c.Port))
	}
	if c.Token == "" && (c.Username == "" || c.Password == "") {
		errs = append(errs, errors.New("etcd_test_helper.username and etcd_test_helper.password (or etcd_test_helper.token) must be set"))
	}
	if c.Plaintext && c.TLSCert != "" {
		errs = append(errs, errors.New("etcd_test_helper.plaintext and etcd_test_helper.tls.cert are both set; choose one"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("etcd_test_helper.tls.cert and etcd_test_helper.tls.key must be set together"))
	}
	if !filepath.IsAbs(c.VcapRoot) {
		errs = append(errs, fmt.Errorf("vcap root %q must be an absolute path", c.VcapRoot))
	}
	return errors.Join(errs...)
}
