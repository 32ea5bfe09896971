package pki

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestGenerateMetricsSet(t *testing.T) {
	m, err := GenerateMetricsSet(ips("10.0.0.1", "10.0.0.2"), []string{"*.etcd.service.cf.internal"})
	require.NoError(t, err)
	now := time.Now()
	w, errs := ValidatePair(m.ServerCert, m.ServerKey, m.CACert, []string{"10.0.0.2", "etcd-0.etcd.service.cf.internal"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, now)
	require.Empty(t, errs)
	require.Empty(t, w)
	w, errs = ValidatePair(m.ScraperCert, m.ScraperKey, m.CACert, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, now)
	require.Empty(t, errs, "the scraper certificate is a client certificate of the metrics CA")
	require.Empty(t, w)

	// A cluster set's client CA does not sign the scraper certificate.
	set, err := GenerateClusterSet(SetOptions{IPs: ips("10.0.0.1")})
	require.NoError(t, err)
	_, errs = ValidatePair(m.ScraperCert, m.ScraperKey, set.CACert, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, now)
	require.NotEmpty(t, errs)

	var vars map[string]string
	require.NoError(t, yaml.Unmarshal(append(set.VarsYAML(), m.VarsYAML()...), &vars))
	require.Equal(t, string(m.CACert), vars["etcd_metrics_ca_cert"])
	require.Equal(t, string(m.ServerCert), vars["etcd_metrics_server_cert"])
	require.Equal(t, string(m.ServerKey), vars["etcd_metrics_server_key"])
	require.Equal(t, string(set.CACert), vars["etcd_ca_cert"], "the two files concatenate into one vars file")
	require.Len(t, vars, 11)
}
