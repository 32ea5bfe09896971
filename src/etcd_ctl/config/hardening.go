package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
)

// TLS versions etcd.tls_min_version accepts, and the etcd names they map to (etcd's --tls-min-version).
const (
	TLSVersion12 = "1.2"
	TLSVersion13 = "1.3"
)

// EtcdTLSVersion is etcd's name of a tls_min_version value ("TLS1.2", "TLS1.3").
func EtcdTLSVersion(v string) string { return "TLS" + v }

// StringList is a property that takes one string or a list of strings (etcd.peer_allowed_cn: "etcd-peer" or
// ["etcd-peer", "etcd-peer-new"] during a rotation).
type StringList []string

// UnmarshalJSON accepts a string, a list of strings or null.
func (l *StringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = nil
		if one != "" {
			*l = StringList{one}
		}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings, got %s", b)
	}
	*l = many
	return nil
}

// validateHardening checks the TLS settings and the peer allow-lists, and warns about a plaintext client port
// on every interface.
func (c *Config) validateHardening(add addFunc) (warnings []string) {
	e := c.Etcd
	switch e.TLSMinVersion {
	case TLSVersion12, TLSVersion13:
	default:
		add("etcd.tls_min_version", "got %q, must be %q or %q", e.TLSMinVersion, TLSVersion12, TLSVersion13)
	}
	if len(e.TLSCipherSuites) > 0 && e.TLSMinVersion == TLSVersion13 {
		add("etcd.tls_cipher_suites", "must be empty with etcd.tls_min_version %q: TLS 1.3's cipher suites are not configurable (Go's crypto/tls picks them)", TLSVersion13)
	}
	for _, name := range e.TLSCipherSuites {
		if !slices.Contains(secureCipherSuites(), name) {
			add("etcd.tls_cipher_suites", "%q is not a TLS 1.2 cipher suite Go considers secure; use names from: %s", name, strings.Join(secureCipherSuites(), ", "))
		}
	}
	if len(e.PeerAllowedCN) > 0 && len(e.PeerAllowedHostname) > 0 {
		add("etcd.peer_allowed_cn", "and etcd.peer_allowed_hostname are both set; etcd accepts one or the other")
	}
	if (len(e.PeerAllowedCN) > 0 || len(e.PeerAllowedHostname) > 0) && !e.PeerRequireSSL {
		add("etcd.peer_allowed_cn", "(or etcd.peer_allowed_hostname) needs etcd.peer_require_ssl: without peer TLS there is no certificate to check")
	}
	for i, v := range append(slices.Clone(e.PeerAllowedCN), e.PeerAllowedHostname...) {
		if strings.TrimSpace(v) == "" {
			add("etcd.peer_allowed_cn", "entry %d is empty", i)
		}
	}
	if !e.RequireSSL && (e.ClientIP == "0.0.0.0" || e.ClientIP == "::" || e.ClientIP == "") {
		warnings = append(warnings, fmt.Sprintf("etcd.require_ssl is false and etcd.client_ip is %q: the client port %d serves plaintext, without authentication of the client, on every interface of this VM; set etcd.require_ssl, or etcd.client_ip to an address only trusted clients reach",
			e.ClientIP, e.ClientPort))
	}
	return warnings
}

// secureCipherSuites are the TLS 1.2 suites Go's crypto/tls lists as secure (tls.CipherSuites), by name.
func secureCipherSuites() []string {
	var names []string
	for _, s := range tls.CipherSuites() {
		if slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
			names = append(names, s.Name)
		}
	}
	return names
}

// validatePeerAllowList checks that this member's own peer certificate passes the allow-list: every member
// presents it to the others, and one outside the list would be refused by every peer (the cluster could not
// form). It runs after the TLS checks passed.
func (c *Config) validatePeerAllowList(add addFunc) {
	e := c.Etcd
	if !e.PeerRequireSSL || (len(e.PeerAllowedCN) == 0 && len(e.PeerAllowedHostname) == 0) {
		return
	}
	block, _ := pem.Decode([]byte(e.PeerCert))
	if block == nil {
		return // reported by the TLS checks
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return
	}
	if len(e.PeerAllowedCN) > 0 && !slices.Contains(e.PeerAllowedCN, leaf.Subject.CommonName) {
		add("etcd.peer_cert", "has the common name %q, which etcd.peer_allowed_cn (%s) does not list: every other member would refuse this member's peer connections",
			leaf.Subject.CommonName, strings.Join(e.PeerAllowedCN, ", "))
	}
	if len(e.PeerAllowedHostname) > 0 && !slices.ContainsFunc(e.PeerAllowedHostname, func(h string) bool { return leaf.VerifyHostname(h) == nil }) {
		add("etcd.peer_cert", "is valid for none of etcd.peer_allowed_hostname (%s) (its names: %s): every other member would refuse this member's peer connections",
			strings.Join(e.PeerAllowedHostname, ", "), strings.Join(append(slices.Clone(leaf.DNSNames), ipStrings(leaf)...), ", "))
	}
}

func ipStrings(c *x509.Certificate) []string {
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}
