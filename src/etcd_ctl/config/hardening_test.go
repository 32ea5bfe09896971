package config

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tlsConfig's peer certificate has the common name "etcd-peer" and the SANs 10.0.0.1, 10.0.0.2 and
// *.etcd.service.cf.internal.
func TestHardeningProperties(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"tls 1.3", func(c *Config) { c.Etcd.TLSMinVersion = "1.3" }, ""},
		{"tls 1.1", func(c *Config) { c.Etcd.TLSMinVersion = "1.1" }, `etcd.tls_min_version: got "1.1", must be "1.2" or "1.3"`},
		{"tls 1.2 suites", func(c *Config) {
			c.Etcd.TLSCipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"}
		}, ""},
		{"insecure suite", func(c *Config) { c.Etcd.TLSCipherSuites = []string{"TLS_RSA_WITH_RC4_128_SHA"} },
			`etcd.tls_cipher_suites: "TLS_RSA_WITH_RC4_128_SHA" is not a TLS 1.2 cipher suite Go considers secure`},
		{"a 1.3 suite", func(c *Config) { c.Etcd.TLSCipherSuites = []string{"TLS_AES_128_GCM_SHA256"} }, "is not a TLS 1.2 cipher suite"},
		{"suites with 1.3", func(c *Config) {
			c.Etcd.TLSMinVersion = "1.3"
			c.Etcd.TLSCipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}
		}, "etcd.tls_cipher_suites: must be empty with etcd.tls_min_version \"1.3\""},
		{"allowed cn matching the peer cert", func(c *Config) { c.Etcd.PeerAllowedCN = StringList{"other", "etcd-peer"} }, ""},
		{"allowed cn the own peer cert lacks", func(c *Config) { c.Etcd.PeerAllowedCN = StringList{"etcd-peer-old"} },
			`etcd.peer_cert: has the common name "etcd-peer", which etcd.peer_allowed_cn (etcd-peer-old) does not list`},
		{"allowed hostname the peer cert covers", func(c *Config) { c.Etcd.PeerAllowedHostname = StringList{"etcd-1.etcd.service.cf.internal"} }, ""},
		{"allowed IP the peer cert covers", func(c *Config) { c.Etcd.PeerAllowedHostname = StringList{"10.0.0.2"} }, ""},
		{"allowed hostname the peer cert lacks", func(c *Config) { c.Etcd.PeerAllowedHostname = StringList{"etcd.example.org"} },
			"etcd.peer_cert: is valid for none of etcd.peer_allowed_hostname (etcd.example.org)"},
		{"cn and hostname", func(c *Config) {
			c.Etcd.PeerAllowedCN, c.Etcd.PeerAllowedHostname = StringList{"etcd-peer"}, StringList{"10.0.0.1"}
		}, "etcd.peer_allowed_cn: and etcd.peer_allowed_hostname are both set"},
		{"allow-list without peer tls", func(c *Config) { c.Etcd.PeerRequireSSL = false; c.Etcd.PeerAllowedCN = StringList{"x"} },
			"etcd.peer_allowed_cn: (or etcd.peer_allowed_hostname) needs etcd.peer_require_ssl"},
		{"empty entry", func(c *Config) { c.Etcd.PeerAllowedCN = StringList{" "} }, "etcd.peer_allowed_cn: entry 0 is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := tlsConfig(t)
			tc.edit(c)
			_, err := c.Validate(time.Now())
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestPlaintextClientPortOnEveryInterfaceWarns(t *testing.T) {
	c, _ := tlsConfig(t)
	c.Etcd.RequireSSL = false
	w, err := c.Validate(time.Now())
	require.NoError(t, err)
	require.Len(t, w, 1)
	require.Contains(t, w[0], `etcd.require_ssl is false and etcd.client_ip is "0.0.0.0"`)
	c.Etcd.ClientIP = "10.0.0.1"
	w, err = c.Validate(time.Now())
	require.NoError(t, err)
	require.Empty(t, w, "a plaintext port on one chosen address is the operator's decision")
}

func TestStringListTakesAStringOrAList(t *testing.T) {
	var p struct {
		A, B, C StringList
	}
	require.NoError(t, json.Unmarshal([]byte(`{"A": "one", "B": ["x", "y"], "C": null}`), &p))
	require.Equal(t, StringList{"one"}, p.A)
	require.Equal(t, StringList{"x", "y"}, p.B)
	require.Empty(t, p.C)
	require.Error(t, json.Unmarshal([]byte(`{"A": 3}`), &p))
}
