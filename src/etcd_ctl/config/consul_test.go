package config

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

// consulConfig is a valid consul-enabled configuration: three members from the etcd link, named under
// etcd.service.cf.internal.
func consulConfig(t *testing.T) *Config {
	c := Default()
	c.Instance = Instance{Deployment: "d", Name: "etcd", Index: 1, ID: "b", Address: "10.0.0.2", IP: "10.0.0.2"}
	c.Etcd.RequireSSL, c.Etcd.PeerRequireSSL = false, false
	c.Etcd.AdvertiseURLsDNSSuffix = "etcd.service.cf.internal"
	c.Etcd.Consul.Enabled = true
	c.Link = &Link{Instances: []LinkInstance{
		{Name: "etcd", Index: 0, ID: "a", Address: "10.0.0.1"},
		{Name: "etcd", Index: 1, ID: "b", Address: "10.0.0.2"},
		{Name: "etcd", Index: 2, ID: "c", Address: "10.0.0.3"},
	}}
	return &c
}

func TestConsulDefaults(t *testing.T) {
	d := Default().Etcd.Consul
	require.False(t, d.Enabled)
	require.Equal(t, "http://127.0.0.1:8500", d.AgentURL)
	require.Empty(t, d.ACLToken.Value())
	require.Equal(t, 300, d.WaitTimeoutInSeconds)
	require.Equal(t, 30, d.CheckTTLInSeconds)
}

func TestConsulPropertiesParse(t *testing.T) {
	c, err := Parse([]byte(`{"etcd":{"consul":{"enabled":true,"acl_token":"secret-token","wait_timeout_in_seconds":null}}}`))
	require.NoError(t, err)
	require.True(t, c.Etcd.Consul.Enabled)
	require.Equal(t, "secret-token", c.Etcd.Consul.ACLToken.Value())
	require.Equal(t, 300, c.Etcd.Consul.WaitTimeoutInSeconds, "null keeps the default")
	require.Equal(t, DefaultConsulAgentURL, c.Etcd.Consul.AgentURL, "a partial hash keeps the other defaults")

	_, err = Parse([]byte(`{"etcd":{"consul":{"enabled":"yes"}}}`))
	require.ErrorContains(t, err, "etcd.consul.enabled: got a string, must be a boolean")
	_, err = Parse([]byte(`{"etcd":{"consul":{"agent":"x"}}}`))
	require.ErrorContains(t, err, `unknown key "agent"`)
}

func TestConsulValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Config)
		want []string // empty: valid
	}{
		"valid": {func(*Config) {}, nil},
		"disabled ignores all": {func(c *Config) {
			c.Etcd.Consul = ConsulProperties{AgentURL: "::", CheckTTLInSeconds: -1}
			c.Etcd.AdvertiseURLsDNSSuffix = ""
		}, nil},
		"suffix with dot": {func(c *Config) { c.Etcd.AdvertiseURLsDNSSuffix = ".etcd.service.cf.internal." }, nil},
		"no suffix": {func(c *Config) { c.Etcd.AdvertiseURLsDNSSuffix = "" }, []string{
			"etcd.advertise_urls_dns_suffix: is empty but etcd.consul.enabled is true; set it to <service>.service.<domain> (e.g. etcd.service.cf.internal)"}},
		"suffix not a service": {func(c *Config) { c.Etcd.AdvertiseURLsDNSSuffix = "etcd.cf.internal" }, []string{
			`etcd.advertise_urls_dns_suffix: got "etcd.cf.internal", but with etcd.consul.enabled it must be <service>.service.<domain> (e.g. etcd.service.cf.internal)`}},
		"suffix without domain": {func(c *Config) { c.Etcd.AdvertiseURLsDNSSuffix = "etcd.service" }, []string{`etcd.advertise_urls_dns_suffix: got "etcd.service"`}},
		"dotted service name":   {func(c *Config) { c.Etcd.AdvertiseURLsDNSSuffix = "a.etcd.service.cf.internal" }, []string{`etcd.advertise_urls_dns_suffix: got "a.etcd.service.cf.internal"`}},
		"bad agent url": {func(c *Config) { c.Etcd.Consul.AgentURL = "127.0.0.1:8500" }, []string{
			`etcd.consul.agent_url: got "127.0.0.1:8500", must be the http(s) URL of the colocated consul agent's HTTP API (default http://127.0.0.1:8500)`}},
		"zero wait": {func(c *Config) { c.Etcd.Consul.WaitTimeoutInSeconds = 0 }, []string{"etcd.consul.wait_timeout_in_seconds: got 0, must be between 1 and 86400"}},
		"short ttl": {func(c *Config) { c.Etcd.Consul.CheckTTLInSeconds = 2 }, []string{"etcd.consul.check_ttl_in_seconds: got 2, must be between 3 and 86400"}},
		"every problem": {func(c *Config) { c.Etcd.Consul.WaitTimeoutInSeconds = -1; c.Etcd.Consul.AgentURL = "" }, []string{
			"etcd.consul.wait_timeout_in_seconds: got -1", `etcd.consul.agent_url: got ""`}},
	} {
		t.Run(name, func(t *testing.T) {
			c := consulConfig(t)
			tc.edit(c)
			_, err := c.Validate(time.Now())
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestConsulService(t *testing.T) {
	for suffix, want := range map[string][2]string{
		"etcd.service.cf.internal":  {"etcd", "cf.internal"},
		"cf-etcd.service.consul":    {"cf-etcd", "consul"},
		"etcd.service.cf.internal.": {"etcd", "cf.internal"},
		"etcd.cf.internal":          {"", ""},
		"service.cf.internal":       {"", ""},
	} {
		s, d, ok := Properties{AdvertiseURLsDNSSuffix: suffix}.ConsulService()
		require.Equal(t, want[0] != "", ok, suffix)
		require.Equal(t, want, [2]string{s, d}, suffix)
	}
}

// TestConsulTLSChecksDNSNames: with consul the advertised host is the member's consul name, and that name (not
// the IP) is what the server and peer certificates must cover.
func TestConsulTLSChecksDNSNames(t *testing.T) {
	withNames, err := pki.GenerateClusterSet(pki.SetOptions{DNSNames: []string{"*.etcd.service.cf.internal"}})
	require.NoError(t, err)
	ipsOnly, err := pki.GenerateClusterSet(pki.SetOptions{IPs: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.2"), net.ParseIP("10.0.0.3")}})
	require.NoError(t, err)
	use := func(c *Config, s *pki.Set) {
		e := &c.Etcd
		e.RequireSSL, e.PeerRequireSSL = true, true
		e.CACert, e.ServerCert, e.ServerKey = string(s.CACert), string(s.ServerCert), Secret(s.ServerKey)
		e.ClientCert, e.ClientKey = string(s.ClientCert), Secret(s.ClientKey)
		e.PeerCACert, e.PeerCert, e.PeerKey = string(s.PeerCACert), string(s.PeerCert), Secret(s.PeerKey)
	}
	c := consulConfig(t)
	use(c, withNames)
	require.Equal(t, "etcd-1.etcd.service.cf.internal", c.Self().Host)
	_, err = c.Validate(time.Now())
	require.NoError(t, err, "a certificate for *.etcd.service.cf.internal covers every consul member name")

	c = consulConfig(t)
	use(c, ipsOnly)
	_, err = c.Validate(time.Now())
	require.ErrorContains(t, err, "etcd.server_cert: certificate does not cover the host etcd-1.etcd.service.cf.internal")
	require.ErrorContains(t, err, "etcd.peer_cert: certificate does not cover the host etcd-1.etcd.service.cf.internal")
}
