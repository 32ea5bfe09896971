package config

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

// DefaultMetricsPort is the metrics listener's port: kubeadm's choice for etcd metrics, and nothing else the etcd
// job uses (clients 4001, peers 7001; the test helper 8448; a colocated consul agent 8300-8600).
const DefaultMetricsPort = 2381

// Metrics levels, as etcd's --metrics flag names them: "extensive" adds the gRPC handling-time histograms.
var metricsLevels = []string{"basic", "extensive"}

// MetricsHost is the address the metrics listener binds to: the VM's own IP (spec.ip), so that the listener is
// reachable by a scraper on the deployment network and never on an address the operator did not choose.
func (c *Config) MetricsHost() string {
	if c.Instance.IP != "" {
		return c.Instance.IP
	}
	return c.Instance.Address
}

// MetricsURL is the URL a scraper reads this member's metrics from.
func (c *Config) MetricsURL() string {
	return buildURL(c.Etcd.MetricsScheme, c.MetricsHost(), c.Etcd.MetricsPort) + "/metrics"
}

// validateMetrics checks etcd.metrics_port, etcd.metrics_scheme and etcd.metrics_level.
func (c *Config) validateMetrics(add func(prop, format string, a ...any)) {
	e := c.Etcd
	if e.MetricsPort < 1 || e.MetricsPort > 65535 {
		add("etcd.metrics_port", "got %d, must be a TCP port between 1 and 65535 (default %d)", e.MetricsPort, DefaultMetricsPort)
	}
	host := net.ParseIP(c.MetricsHost())
	for _, other := range []struct {
		prop string
		ip   string
		port int
	}{{"etcd.client_port", e.ClientIP, e.ClientPort}, {"etcd.peer_port", e.PeerIP, e.PeerPort}} {
		ip := net.ParseIP(other.ip)
		if e.MetricsPort == other.port && ip != nil && (ip.IsUnspecified() || host == nil || ip.Equal(host)) {
			add("etcd.metrics_port", "is %d, the same as %s on an overlapping listen address; choose another port (default %d)", e.MetricsPort, other.prop, DefaultMetricsPort)
		}
	}
	if e.MetricsScheme != "http" && e.MetricsScheme != "https" {
		add("etcd.metrics_scheme", "got %q, must be http or https (https needs etcd.metrics_ca_cert, etcd.metrics_server_cert and etcd.metrics_server_key)", e.MetricsScheme)
	}
	known := false
	for _, l := range metricsLevels {
		known = known || e.MetricsLevel == l
	}
	if !known {
		add("etcd.metrics_level", "got %q, must be basic or extensive (extensive adds etcd's gRPC handling-time histograms)", e.MetricsLevel)
	}
}

// validateMetricsTLS checks the metrics listener's own TLS material when etcd.metrics_scheme is https: the
// server certificate covers the VM's IP and is signed by etcd.metrics_ca_cert, the CA scrapers' client
// certificates must be signed by. That CA may not also be trusted for etcd clients (etcd.ca_cert): a scraper's
// certificate would then read and write all data, which is what the separate listener exists to prevent.
func (c *Config) validateMetricsTLS(now time.Time) (warnings []string, errs []error) {
	e := c.Etcd
	if e.MetricsScheme != "https" {
		return nil, nil
	}
	fail := func(prop, format string, a ...any) {
		errs = append(errs, &PropertyError{Property: prop, Problem: fmt.Sprintf(format, a...)})
	}
	because := "etcd.metrics_scheme is https"
	if e.MetricsCACert == "" {
		fail("etcd.metrics_ca_cert", "is empty but %s; set it to the PEM CA certificate(s) that sign scrapers' client certificates and etcd.metrics_server_cert (`etcd_ctl certs` generates them)", because)
	}
	if e.MetricsServerCert == "" {
		fail("etcd.metrics_server_cert", "is empty but %s; set it to the PEM server certificate of the metrics listener, covering %s", because, c.MetricsHost())
	}
	if e.MetricsServerKey == "" {
		fail("etcd.metrics_server_key", "is empty but %s; set it to the PEM private key of etcd.metrics_server_cert", because)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	props := map[pki.Part]string{pki.PartCert: "etcd.metrics_server_cert", pki.PartKey: "etcd.metrics_server_key", pki.PartCA: "etcd.metrics_ca_cert"}
	w, perrs := pki.ValidatePair([]byte(e.MetricsServerCert), []byte(e.MetricsServerKey.Value()), []byte(e.MetricsCACert),
		[]string{c.MetricsHost()}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, now)
	for _, s := range w {
		warnings = append(warnings, "etcd.metrics_server_cert: "+s)
	}
	for _, err := range perrs {
		prop := "etcd.metrics_server_cert"
		if pe, ok := err.(*pki.PairError); ok {
			prop = props[pe.Part]
		}
		fail(prop, "%v", err)
	}
	if e.RequireSSL {
		if shared := sharedCA(e.MetricsCACert, e.CACert); shared != "" {
			fail("etcd.metrics_ca_cert", "holds CA %s, which etcd.ca_cert also trusts for etcd clients, so a scraper's certificate would grant full read/write access to the data; "+
				"use a CA of its own for the metrics listener (`etcd_ctl certs` generates one)", shared)
		}
	}
	return warnings, errs
}

// sharedCA returns the common name of a CA in bundle a that bundle b also trusts — the same certificate, or one
// signed by a CA in b (a scraper could present it as an intermediate and chain up to b) — or "" if there is none
// (or either bundle does not parse: that is reported elsewhere).
func sharedCA(a, b string) string {
	as, err := pki.ParseCertificates([]byte(a))
	if err != nil {
		return ""
	}
	bs, err := pki.ParseCertificates([]byte(b))
	if err != nil {
		return ""
	}
	for _, x := range as {
		for _, y := range bs {
			if bytes.Equal(x.Raw, y.Raw) || x.CheckSignatureFrom(y) == nil {
				return strconv.Quote(x.Subject.CommonName)
			}
		}
	}
	return ""
}
