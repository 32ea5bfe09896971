package jobtemplates

import (
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

// TestMetricsHTTPSOpsFile renders manifests/etcd.yml with operations/metrics-https.yml and the variables
// scripts/generate-certs writes (etcd_ctl certs --metrics) through the real templates: every instance validates,
// with the metrics listener on https at its own IP and the metrics CA's material.
func TestMetricsHTTPSOpsFile(t *testing.T) {
	var addrs []net.IP
	for i := 2; i <= 6; i++ {
		addrs = append(addrs, net.ParseIP(fmt.Sprintf("10.244.0.%d", i)))
	}
	ms, err := pki.GenerateMetricsSet(addrs, []string{"*.etcd.service.cf.internal"})
	require.NoError(t, err)
	vars := map[string]any{}
	require.NoError(t, yaml.Unmarshal(ms.VarsYAML(), &vars))
	maps.Copy(vars, certVars(t))
	m, err := LoadManifest(filepath.Join(manifestsDir, "etcd.yml"), []string{filepath.Join(opsDir, "metrics-https.yml")}, vars)
	require.NoError(t, err)
	rs := renderEtcd(t, m)
	checkMembers(t, rs, "https", ips(3), "link")
	for i, r := range rs {
		require.Equal(t, fmt.Sprintf("https://10.244.0.%d:2381/metrics", i+2), r.cfg.MetricsURL())
		require.Equal(t, string(ms.CACert), r.cfg.Etcd.MetricsCACert)
		require.Equal(t, string(ms.ServerKey), r.cfg.Etcd.MetricsServerKey.Value())
	}
}
