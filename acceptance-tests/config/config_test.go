package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const testCA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func valid() Config {
	c := Default()
	c.Director = Director{URL: "https://127.0.0.1:25555", Client: "admin", ClientSecret: "secret", CACert: testCA}
	c.StaticIPs = []string{"10.244.0.2 - 10.244.0.31"}
	return c
}

func TestValidateAcceptsAComplete(t *testing.T) {
	require.NoError(t, valid().Validate())
}

func TestValidateNamesEveryMissingKey(t *testing.T) {
	err := Config{}.Validate()
	require.Error(t, err)
	for _, key := range []string{
		"director.url: missing", "director.client: missing", "director.client_secret: missing",
		"director.ca_cert (or director.ca_cert_file): missing", "deployment_prefix: missing", "release.name: missing",
		"release.version: missing", "stemcell.os: missing", "stemcell.version: missing", "network: missing",
		"azs: missing", "vm_type: missing", "persistent_disk_type: missing", "static_ips: got 0 addresses",
		"test_helper.port: got 0", "test_helper.username: missing", "timeouts.deploy_in_seconds: got 0",
		"timeouts.task_in_seconds: got 0", "timeouts.converge_in_seconds: got 0", "timeouts.check_in_seconds: got 0",
		"load.writes_per_second: got 0", "load.register_keys: got 0", "load.op_timeout_ms: got 0",
	} {
		require.Contains(t, err.Error(), key)
	}
}

func TestValidateRejectsBadValues(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"http url":      {func(c *Config) { c.Director.URL = "http://x:25555" }, "director.url: got \"http://x:25555\", must be https"},
		"ca not pem":    {func(c *Config) { c.Director.CACert = "junk" }, "director.ca_cert: not a PEM certificate"},
		"prefix":        {func(c *Config) { c.DeploymentPrefix = "etcd acceptance" }, "deployment_prefix: got \"etcd acceptance\""},
		"bad ip":        {func(c *Config) { c.StaticIPs = []string{"10.244.0.x"} }, "static_ips: \"10.244.0.x\" is not an IPv4"},
		"reverse range": {func(c *Config) { c.StaticIPs = []string{"10.244.0.9-10.244.0.2"} }, "static_ips: \"10.244.0.9-10.244.0.2\" is not a range"},
		"too few ips":   {func(c *Config) { c.StaticIPs = []string{"10.244.0.2-10.244.0.4"} }, "static_ips: got 3 addresses, need at least 5"},
		"port":          {func(c *Config) { c.TestHelper.Port = 70000 }, "test_helper.port: got 70000"},
		"stall":         {func(c *Config) { c.Load.MaxStallMillis = -1 }, "load.max_stall_ms: got -1"},
		"label":         {func(c *Config) { c.Scenarios = []string{"deploy", " "} }, "scenarios: empty label"},
	} {
		t.Run(name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestIPsExpandsRangesInOrderWithoutDuplicates(t *testing.T) {
	c := Config{StaticIPs: []string{"10.244.0.5", "10.244.0.2 - 10.244.0.4", "10.244.0.3"}}
	ips, err := c.IPs()
	require.NoError(t, err)
	var got []string
	for _, ip := range ips {
		got = append(got, ip.String())
	}
	require.Equal(t, []string{"10.244.0.5", "10.244.0.2", "10.244.0.3", "10.244.0.4"}, got)
}

// The errand renders exactly these keys (jobs/acceptance-tests/templates/config.json.erb); they must parse.
func TestParseTheErrandsConfigAndCACertFile(t *testing.T) {
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.crt")
	require.NoError(t, os.WriteFile(caPath, []byte(testCA), 0o600))
	c, err := Parse([]byte(`{
  "director": {"url": "https://10.244.0.1:25555", "client": "admin", "client_secret": "s", "ca_cert_file": "` + caPath + `"},
  "deployment_prefix": "etcd-acceptance",
  "release": {"name": "etcd", "version": "latest"},
  "stemcell": {"os": "ubuntu-jammy", "version": "latest"},
  "network": "default", "azs": ["z1"], "vm_type": "default", "persistent_disk_type": "default",
  "static_ips": ["10.244.0.2 - 10.244.0.31"],
  "scenarios": ["ci"],
  "test_helper": {"port": 8448, "username": "acceptance", "password": "p"},
  "timeouts": {"deploy_in_seconds": 600, "task_in_seconds": 300, "converge_in_seconds": 120}
}`))
	require.NoError(t, err)
	require.Equal(t, testCA, c.Director.CACert)
	require.Equal(t, 120, c.Timeouts.CheckInSeconds, "defaults fill what the file leaves out")
	require.Equal(t, []string{"ci"}, c.Scenarios)
}

func TestParseRejectsUnknownKeys(t *testing.T) {
	_, err := Parse([]byte(`{"diretor": {}}`))
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), `unknown field "diretor"`), err.Error())
}

func TestFromEnvNeedsTheVariable(t *testing.T) {
	t.Setenv(EnvVar, "")
	_, err := FromEnv()
	require.ErrorContains(t, err, "ACCEPTANCE_CONFIG is not set")
}
