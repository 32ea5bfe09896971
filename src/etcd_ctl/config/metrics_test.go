package config

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

func metricsTLSConfig(t *testing.T) (*Config, *pki.Set, *pki.MetricsSet) {
	c, set := tlsConfig(t)
	m, err := pki.GenerateMetricsSet([]net.IP{net.ParseIP("10.0.0.1")}, nil)
	require.NoError(t, err)
	e := &c.Etcd
	e.MetricsScheme = "https"
	e.MetricsCACert, e.MetricsServerCert, e.MetricsServerKey = string(m.CACert), string(m.ServerCert), Secret(m.ServerKey)
	return c, set, m
}

func TestMetricsDefaultsAndURL(t *testing.T) {
	c, err := Parse([]byte(minimal))
	require.NoError(t, err)
	require.Equal(t, 2381, c.Etcd.MetricsPort)
	require.Equal(t, "http://10.0.0.1:2381/metrics", c.MetricsURL())
	_, err = c.Validate(time.Now())
	require.NoError(t, err)

	c, _, _ = metricsTLSConfig(t)
	require.Equal(t, "https://10.0.0.1:2381/metrics", c.MetricsURL())
	w, err := c.Validate(time.Now())
	require.NoError(t, err)
	require.Empty(t, w)
}

func TestMetricsPropertiesAreValidated(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"port zero":        {func(c *Config) { c.Etcd.MetricsPort = 0 }, "etcd.metrics_port: got 0, must be a TCP port"},
		"port too big":     {func(c *Config) { c.Etcd.MetricsPort = 70000 }, "etcd.metrics_port: got 70000"},
		"clashes clients":  {func(c *Config) { c.Etcd.MetricsPort = 4001 }, "etcd.metrics_port: is 4001, the same as etcd.client_port"},
		"clashes peers":    {func(c *Config) { c.Etcd.MetricsPort = 7001 }, "etcd.metrics_port: is 7001, the same as etcd.peer_port"},
		"clashes same ip":  {func(c *Config) { c.Etcd.ClientIP = "10.0.0.1"; c.Etcd.MetricsPort = 4001 }, "the same as etcd.client_port"},
		"scheme":           {func(c *Config) { c.Etcd.MetricsScheme = "tcp" }, `etcd.metrics_scheme: got "tcp", must be http or https`},
		"level":            {func(c *Config) { c.Etcd.MetricsLevel = "all" }, `etcd.metrics_level: got "all", must be basic or extensive`},
		"https without ca": {func(c *Config) { c.Etcd.MetricsScheme = "https" }, "etcd.metrics_ca_cert: is empty but etcd.metrics_scheme is https"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(minimal))
			require.NoError(t, err)
			tc.edit(c)
			_, err = c.Validate(time.Now())
			require.ErrorContains(t, err, tc.want)
		})
	}
	// A different listen address on the same port does not clash.
	c, err := Parse([]byte(minimal))
	require.NoError(t, err)
	c.Etcd.ClientIP, c.Etcd.MetricsPort = "127.0.0.1", 4001
	_, err = c.Validate(time.Now())
	require.NoError(t, err)
}

func TestMetricsTLSProblemsNameTheProperty(t *testing.T) {
	other, err := pki.GenerateMetricsSet([]net.IP{net.ParseIP("10.0.0.1")}, nil)
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		edit func(*Config, *pki.Set, *pki.MetricsSet)
		want []string
	}{
		"missing cert": {func(c *Config, _ *pki.Set, _ *pki.MetricsSet) { c.Etcd.MetricsServerCert = "" }, []string{"etcd.metrics_server_cert: is empty but etcd.metrics_scheme is https"}},
		"missing key":  {func(c *Config, _ *pki.Set, _ *pki.MetricsSet) { c.Etcd.MetricsServerKey = "" }, []string{"etcd.metrics_server_key: is empty"}},
		"key mismatch": {func(c *Config, _ *pki.Set, m *pki.MetricsSet) { c.Etcd.MetricsServerKey = Secret(m.ScraperKey) }, []string{"etcd.metrics_server_key:"}},
		"ca not pem":   {func(c *Config, _ *pki.Set, _ *pki.MetricsSet) { c.Etcd.MetricsCACert = "nope" }, []string{"etcd.metrics_ca_cert: is not PEM-encoded"}},
		"other ca":     {func(c *Config, _ *pki.Set, _ *pki.MetricsSet) { c.Etcd.MetricsCACert = string(other.CACert) }, []string{"etcd.metrics_server_cert:", "not signed"}},
		"scraper cert": {func(c *Config, _ *pki.Set, m *pki.MetricsSet) {
			c.Etcd.MetricsServerCert, c.Etcd.MetricsServerKey = string(m.ScraperCert), Secret(m.ScraperKey)
		}, []string{"etcd.metrics_server_cert:", "serverAuth"}},
		"wrong host": {func(c *Config, _ *pki.Set, _ *pki.MetricsSet) {
			c.Instance.IP, c.Instance.Address = "10.0.0.2", "10.0.0.2"
			c.Etcd.Machines = []string{"10.0.0.2"}
		}, []string{"etcd.metrics_server_cert: certificate does not cover the host 10.0.0.2"}},
		"client ca as metrics ca": {func(c *Config, s *pki.Set, _ *pki.MetricsSet) {
			// The server certificate of the client port is signed by etcd.ca_cert: valid for the listener, but the
			// CA would let any etcd client certificate scrape, and any scraper certificate read the data.
			c.Etcd.MetricsCACert, c.Etcd.MetricsServerCert, c.Etcd.MetricsServerKey = string(s.CACert), string(s.ServerCert), Secret(s.ServerKey)
		}, []string{`etcd.metrics_ca_cert: holds CA "etcd-ca", which etcd.ca_cert also trusts for etcd clients`}},
	} {
		t.Run(name, func(t *testing.T) {
			c, set, m := metricsTLSConfig(t)
			tc.edit(c, set, m)
			_, err := c.Validate(time.Now())
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestSharedCA(t *testing.T) {
	root, err := pki.GenerateCA("root", 0)
	require.NoError(t, err)
	other, err := pki.GenerateCA("other", 0)
	require.NoError(t, err)
	// An intermediate CA signed by root: a scraper could send it along and chain up to root.
	inter, err := root.Issue(pki.Request{CommonName: "inter", Usage: pki.UsageClient})
	require.NoError(t, err)
	both := string(other.CertPEM()) + string(root.CertPEM())
	for name, tc := range map[string]struct {
		metrics, client string
		want            string
	}{
		"same":              {string(root.CertPEM()), string(root.CertPEM()), `"root"`},
		"in bundle":         {both, string(root.CertPEM()), `"root"`},
		"signed by client":  {string(inter.CertPEM), string(root.CertPEM()), `"inter"`},
		"separate":          {string(other.CertPEM()), string(root.CertPEM()), ""},
		"unparsable":        {"x", string(root.CertPEM()), ""},
		"unparsable client": {string(root.CertPEM()), "", ""},
	} {
		t.Run(name, func(t *testing.T) { require.Equal(t, tc.want, sharedCA(tc.metrics, tc.client)) })
	}
}
