package pki

import (
	"bytes"
	"fmt"
	"net"
)

// MetricsSet is the TLS material of the metrics listener (etcd.metrics_scheme https): a CA of its own, the
// listener's server certificate and a client certificate for the scraper. Because the CA is not the client CA of
// etcd's client port, the scraper's certificate grants no access to the data.
type MetricsSet struct {
	CACert, CAKey         []byte
	ServerCert, ServerKey []byte
	// ScraperCert and ScraperKey are Prometheus' client certificate (tls_config cert_file/key_file).
	ScraperCert, ScraperKey []byte
}

// GenerateMetricsSet creates a metrics CA, a server certificate covering ips and dnsNames, and a scraper
// client certificate.
func GenerateMetricsSet(ips []net.IP, dnsNames []string) (*MetricsSet, error) {
	ca, err := GenerateCA("etcd-metrics-ca", 0)
	if err != nil {
		return nil, fmt.Errorf("generating the metrics CA: %w", err)
	}
	server, err := ca.Issue(Request{CommonName: firstOr(dnsNames, "etcd-metrics"), DNSNames: uniqueStrings(dnsNames), IPs: uniqueIPs(ips), Usage: UsageServer})
	if err != nil {
		return nil, fmt.Errorf("issuing the metrics server certificate: %w", err)
	}
	scraper, err := ca.Issue(Request{CommonName: "etcd-metrics-scraper", Usage: UsageClient})
	if err != nil {
		return nil, fmt.Errorf("issuing the scraper certificate: %w", err)
	}
	return &MetricsSet{CACert: ca.CertPEM(), CAKey: ca.KeyPEM(), ServerCert: server.CertPEM, ServerKey: server.KeyPEM,
		ScraperCert: scraper.CertPEM, ScraperKey: scraper.KeyPEM}, nil
}

// VarsYAML renders the job properties' values as BOSH variables (etcd_metrics_ca_cert, …), in the format of
// Set.VarsYAML so that the two can be concatenated.
func (s *MetricsSet) VarsYAML() []byte {
	var b bytes.Buffer
	for _, kv := range []struct {
		name  string
		value []byte
	}{{"etcd_metrics_ca_cert", s.CACert}, {"etcd_metrics_server_cert", s.ServerCert}, {"etcd_metrics_server_key", s.ServerKey}} {
		writeVar(&b, kv.name, kv.value)
	}
	return b.Bytes()
}
