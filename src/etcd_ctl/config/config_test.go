package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const minimal = `{
  "instance": {"deployment": "d", "name": "etcd", "index": 0, "id": "i0", "bootstrap": true, "address": "10.0.0.1", "ip": "10.0.0.1"},
  "etcd": {"require_ssl": false, "peer_require_ssl": false, "machines": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]}
}`

func TestDefaultsMatchJobSpec(t *testing.T) {
	d := Default()
	require.Equal(t, 50, d.Etcd.HeartbeatIntervalInMilliseconds)
	require.Equal(t, 1000, d.Etcd.ElectionTimeoutInMilliseconds)
	require.True(t, d.Etcd.RequireSSL)
	require.True(t, d.Etcd.PeerRequireSSL)
	require.Equal(t, "0.0.0.0", d.Etcd.ClientIP)
	require.Equal(t, "0.0.0.0", d.Etcd.PeerIP)
	require.Equal(t, 4001, d.Etcd.ClientPort)
	require.Equal(t, 7001, d.Etcd.PeerPort)
	require.Equal(t, "/var/vcap/store/etcd", d.Paths.DataDir)
	require.Equal(t, "/var/vcap/sys/run/etcd", d.Paths.RunDir)
}

func TestParseKeepsDefaultsForNulls(t *testing.T) {
	c, err := Parse([]byte(`{"instance":{"name":"etcd","address":"10.0.0.1"},"etcd":{"heartbeat_interval_in_milliseconds":null,"machines":["10.0.0.1"],"ca_cert":null}}`))
	require.NoError(t, err)
	require.Equal(t, 50, c.Etcd.HeartbeatIntervalInMilliseconds)
	require.True(t, c.Etcd.RequireSSL)
}

func TestParseErrorsNameTheProperty(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"string for int":   {`{"etcd":{"heartbeat_interval_in_milliseconds":"fast"}}`, "etcd.heartbeat_interval_in_milliseconds: got a string, must be a number"},
		"string for bool":  {`{"etcd":{"require_ssl":"yes"}}`, "etcd.require_ssl: got a string, must be a boolean"},
		"string for list":  {`{"etcd":{"machines":"10.0.0.1"}}`, "etcd.machines: got a string, must be a list"},
		"unknown key":      {`{"etcd":{"requre_ssl":true}}`, `unknown key "requre_ssl"`},
		"not json":         {`{"etcd":`, "not valid JSON"},
		"number for token": {`{"etcd":{"initial_cluster_token":5}}`, "etcd.initial_cluster_token: got a number, must be a string"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Config)
		want []string
	}{
		"zero heartbeat":      {func(c *Config) { c.Etcd.HeartbeatIntervalInMilliseconds = 0 }, []string{"etcd.heartbeat_interval_in_milliseconds: got 0, must be between 1 and 10000"}},
		"election too short":  {func(c *Config) { c.Etcd.ElectionTimeoutInMilliseconds = 100 }, []string{"etcd.election_timeout_in_milliseconds: got 100, must be at least 5 × etcd.heartbeat_interval_in_milliseconds (250)"}},
		"election too long":   {func(c *Config) { c.Etcd.ElectionTimeoutInMilliseconds = 60000 }, []string{"at most 50000"}},
		"bad port":            {func(c *Config) { c.Etcd.ClientPort = 70000 }, []string{"etcd.client_port: got 70000"}},
		"zero peer port":      {func(c *Config) { c.Etcd.PeerPort = 0 }, []string{"etcd.peer_port: got 0"}},
		"same ports":          {func(c *Config) { c.Etcd.PeerPort = c.Etcd.ClientPort }, []string{"etcd.peer_port: is 4001, the same as etcd.client_port"}},
		"bad client ip":       {func(c *Config) { c.Etcd.ClientIP = "localhost" }, []string{`etcd.client_ip: got "localhost", must be an IP address`}},
		"empty machines":      {func(c *Config) { c.Etcd.Machines = nil }, []string{"etcd.machines: is empty and no etcd link is consumed"}},
		"empty machine entry": {func(c *Config) { c.Etcd.Machines = append(c.Etcd.Machines, "") }, []string{"etcd.machines[3]: is empty"}},
		"self not listed":     {func(c *Config) { c.Etcd.Machines = []string{"10.0.0.9"} }, []string{`etcd.machines: does not include this instance (etcd-0, address "10.0.0.1")`}},
		"cluster without dns": {func(c *Config) { c.Etcd.Machines = nil; c.Etcd.Cluster = []ClusterGroup{{Name: "etcd", Instances: 3}} }, []string{"etcd.cluster: lists instance groups but etcd.advertise_urls_dns_suffix is empty"}},
		"no instance name":    {func(c *Config) { c.Instance.Name = "" }, []string{"instance.name: is empty"}},
		"two problems": {func(c *Config) { c.Etcd.HeartbeatIntervalInMilliseconds = -1; c.Etcd.PeerPort = 0 },
			[]string{"etcd.heartbeat_interval_in_milliseconds: got -1", "etcd.peer_port: got 0"}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(minimal))
			require.NoError(t, err)
			tc.edit(c)
			_, err = c.Validate(time.Now())
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			var pe *PropertyError
			require.True(t, errors.As(err, &pe), "problems are typed PropertyErrors")
		})
	}
}

func TestValidMinimalConfig(t *testing.T) {
	c, err := Parse([]byte(minimal))
	require.NoError(t, err)
	_, err = c.Validate(time.Now())
	require.NoError(t, err)
}

func TestDesiredMembers(t *testing.T) {
	t.Run("link with dns suffix", func(t *testing.T) {
		c := Default()
		c.Instance = Instance{Name: "etcd_z1", Index: 1, ID: "b", Address: "10.0.0.2"}
		c.Etcd.AdvertiseURLsDNSSuffix = "etcd.service.cf.internal"
		c.Link = &Link{Instances: []LinkInstance{{Name: "etcd_z1", Index: 0, ID: "a", Address: "10.0.0.1"}, {Name: "etcd_z1", Index: 1, ID: "b", Address: "10.0.0.2"}}}
		ms, err := c.DesiredMembers()
		require.NoError(t, err)
		require.Equal(t, []Member{
			{Name: "etcd-z1-0", Host: "etcd-z1-0.etcd.service.cf.internal", PeerURL: "https://etcd-z1-0.etcd.service.cf.internal:7001", ClientURL: "https://etcd-z1-0.etcd.service.cf.internal:4001"},
			{Name: "etcd-z1-1", Host: "etcd-z1-1.etcd.service.cf.internal", PeerURL: "https://etcd-z1-1.etcd.service.cf.internal:7001", ClientURL: "https://etcd-z1-1.etcd.service.cf.internal:4001", Self: true},
		}, ms)
	})
	t.Run("machines without tls", func(t *testing.T) {
		c, err := Parse([]byte(minimal))
		require.NoError(t, err)
		ms, err := c.DesiredMembers()
		require.NoError(t, err)
		require.Len(t, ms, 3)
		require.Equal(t, "http://10.0.0.2:4001", ms[1].ClientURL)
		require.True(t, ms[0].Self)
		require.Equal(t, "etcd-0", ms[0].Name)
		require.Empty(t, ms[1].Name)
	})
}

func TestSecretsNeverPrint(t *testing.T) {
	s := Secret("-----BEGIN PRIVATE KEY-----")
	for _, out := range []string{s.String(), s.GoString()} {
		require.False(t, strings.Contains(out, "BEGIN"))
	}
	b, err := s.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, `"<redacted>"`, string(b))
}
