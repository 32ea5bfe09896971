package cli

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

// TestCertsMetrics runs `etcd_ctl certs --metrics`: the metrics CA signs a server certificate for the given hosts
// and a scraper client certificate, keys are 0600, and vars.yml holds the cluster's and the metrics variables.
func TestCertsMetrics(t *testing.T) {
	dir := t.TempDir()
	root := NewRoot()
	root.SetArgs([]string{"certs", "--out", dir, "--ip", "10.0.0.1", "--metrics"})
	root.SetOut(&bytes.Buffer{})
	require.NoError(t, root.Execute())
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		return b
	}
	for _, key := range []string{"metrics-ca.key", "metrics-server.key", "metrics-scraper.key", "vars.yml"} {
		st, err := os.Stat(filepath.Join(dir, key))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), key)
	}
	_, errs := pki.ValidatePair(read("metrics-server.crt"), read("metrics-server.key"), read("metrics-ca.crt"), []string{"10.0.0.1"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, time.Now())
	require.Empty(t, errs)
	_, errs = pki.ValidatePair(read("metrics-scraper.crt"), read("metrics-scraper.key"), read("metrics-ca.crt"), nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, time.Now())
	require.Empty(t, errs)
	_, errs = pki.ValidatePair(read("metrics-scraper.crt"), read("metrics-scraper.key"), read("ca.crt"), nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, time.Now())
	require.NotEmpty(t, errs, "the client CA does not trust the scraper")

	var vars map[string]string
	require.NoError(t, yaml.Unmarshal(read("vars.yml"), &vars))
	require.Equal(t, string(read("metrics-ca.crt")), vars["etcd_metrics_ca_cert"])
	require.Equal(t, string(read("ca.crt")), vars["etcd_ca_cert"])
	require.Len(t, vars, 11)

	// Without --metrics nothing of the listener is written.
	dir2 := t.TempDir()
	root = NewRoot()
	root.SetArgs([]string{"certs", "--out", dir2, "--ip", "10.0.0.1"})
	root.SetOut(&bytes.Buffer{})
	require.NoError(t, root.Execute())
	_, err := os.Stat(filepath.Join(dir2, "metrics-ca.crt"))
	require.True(t, os.IsNotExist(err))
}
