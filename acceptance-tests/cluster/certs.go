package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

// Certs is one generation of an etcd deployment's TLS material: a client CA (etcd.ca_cert) with server and
// client certificates, and a peer CA (etcd.peer_ca_cert) with a peer certificate. Server and peer certificates
// name every address the suite may give a member, so one generation serves any deployment size.
type Certs struct {
	CA, PeerCA            *pki.CA
	ServerCert, ServerKey []byte
	ClientCert, ClientKey []byte
	PeerCert, PeerKey     []byte
}

// NewCerts generates a generation named name (it appears in the CAs' common names).
func NewCerts(name string, ips []netip.Addr) (*Certs, error) {
	ca, err := pki.GenerateCA("etcd-acceptance-ca-"+name, 0)
	if err != nil {
		return nil, err
	}
	peerCA, err := pki.GenerateCA("etcd-acceptance-peer-ca-"+name, 0)
	if err != nil {
		return nil, err
	}
	netIPs := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, ip := range ips {
		netIPs = append(netIPs, net.IP(ip.AsSlice()))
	}
	// The consul DNS names are there for the consul scenarios, where members advertise <member>.ConsulDNSSuffix.
	consulNames := []string{"*." + ConsulDNSSuffix, ConsulDNSSuffix}
	server, err := ca.Issue(pki.Request{CommonName: "etcd-server", DNSNames: append([]string{"localhost"}, consulNames...), IPs: netIPs, Usage: pki.UsagePeer})
	if err != nil {
		return nil, fmt.Errorf("issuing the server certificate: %w", err)
	}
	client, err := ca.Issue(pki.Request{CommonName: "etcd-acceptance-client", Usage: pki.UsageClient})
	if err != nil {
		return nil, fmt.Errorf("issuing the client certificate: %w", err)
	}
	peer, err := peerCA.Issue(pki.Request{CommonName: "etcd-peer", DNSNames: consulNames, IPs: netIPs[1:], Usage: pki.UsagePeer})
	if err != nil {
		return nil, fmt.Errorf("issuing the peer certificate: %w", err)
	}
	return &Certs{CA: ca, PeerCA: peerCA, ServerCert: server.CertPEM, ServerKey: server.KeyPEM,
		ClientCert: client.CertPEM, ClientKey: client.KeyPEM, PeerCert: peer.CertPEM, PeerKey: peer.KeyPEM}, nil
}

// TLSProperties are the etcd job's TLS properties: certificates of leaf, CA bundles of every generation in cas
// (the rotation's intermediate steps trust two generations at once).
func TLSProperties(leaf *Certs, cas ...*Certs) map[string]any {
	var caBundle, peerBundle []byte
	for _, c := range cas {
		caBundle = append(caBundle, c.CA.CertPEM()...)
		peerBundle = append(peerBundle, c.PeerCA.CertPEM()...)
	}
	return map[string]any{
		"require_ssl":      true,
		"peer_require_ssl": true,
		"ca_cert":          string(caBundle),
		"server_cert":      string(leaf.ServerCert),
		"server_key":       string(leaf.ServerKey),
		"client_cert":      string(leaf.ClientCert),
		"client_key":       string(leaf.ClientKey),
		"peer_ca_cert":     string(peerBundle),
		"peer_cert":        string(leaf.PeerCert),
		"peer_key":         string(leaf.PeerKey),
	}
}

// NoTLSProperties turn TLS off between clients and members and between members.
func NoTLSProperties() map[string]any {
	return map[string]any{"require_ssl": false, "peer_require_ssl": false}
}

// ClientTLS is the consumer's TLS configuration: it trusts the server certificates of every generation given
// and presents the client certificate of the current generation, which Use switches for new connections
// (needed before the rotation drops the old CA).
type ClientTLS struct {
	mu      sync.Mutex
	current tls.Certificate
	config  *tls.Config
}

// NewClientTLS trusts the CAs of trusted and presents client's client certificate.
func NewClientTLS(client *Certs, trusted ...*Certs) (*ClientTLS, error) {
	pool := x509.NewCertPool()
	for _, c := range trusted {
		pool.AddCert(c.CA.Cert)
	}
	ct := &ClientTLS{}
	if err := ct.Use(client); err != nil {
		return nil, err
	}
	ct.config = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			ct.mu.Lock()
			defer ct.mu.Unlock()
			c := ct.current
			return &c, nil
		}}
	return ct, nil
}

// Use presents c's client certificate on new connections.
func (ct *ClientTLS) Use(c *Certs) error {
	pair, err := tls.X509KeyPair(c.ClientCert, c.ClientKey)
	if err != nil {
		return err
	}
	ct.mu.Lock()
	ct.current = pair
	ct.mu.Unlock()
	return nil
}

// Config is the *tls.Config for etcd clients.
func (ct *ClientTLS) Config() *tls.Config {
	if ct == nil {
		return nil
	}
	return ct.config
}

// HelperCerts makes the test helper's HTTPS material for a deployment on ips: a CA (PEM) the suite trusts and a
// server certificate and key signed by it.
func HelperCerts(ips []netip.Addr) (caPEM, certPEM, keyPEM []byte, err error) {
	ca, err := pki.GenerateCA("etcd-acceptance-test-helper-ca", 0)
	if err != nil {
		return nil, nil, nil, err
	}
	var netIPs []net.IP
	for _, ip := range ips {
		netIPs = append(netIPs, net.IP(ip.AsSlice()))
	}
	pair, err := ca.Issue(pki.Request{CommonName: "etcd-test-helper", IPs: netIPs, Usage: pki.UsageServer})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("issuing the test helper's certificate: %w", err)
	}
	return ca.CertPEM(), pair.CertPEM, pair.KeyPEM, nil
}
