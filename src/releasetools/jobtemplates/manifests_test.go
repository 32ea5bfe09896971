package jobtemplates

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/etcd-test-helper/testhelper"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// The test-helper ops file colocates a working etcd-test-helper: its properties come from the manifest and a
// generated variable, and the rendered config is one the binary accepts.
func TestTestHelperOpsFile(t *testing.T) {
	m := loadSample(t, "test-helper")
	group, err := InstanceGroup(m, "etcd")
	require.NoError(t, err)
	job, err := Job(group, "etcd-test-helper")
	require.NoError(t, err)
	require.Equal(t, "etcd", job["release"])
	vars, _ := m["variables"].([]any)
	require.Contains(t, vars, map[string]any{"name": "etcd_test_helper_password", "type": "password"})

	props, _ := job["properties"].(map[string]any)
	files, err := renderer(t).RenderDir(context.Background(), filepath.Join(repo, "jobs", "etcd-test-helper"),
		instanceContext("etcd", "etcd", instance{id: "x", ip: "10.244.0.2"}, props))
	require.NoError(t, err)
	var cfg testhelper.Config
	require.NoError(t, json.Unmarshal(files["config/config.json"], &cfg))
	require.NoError(t, cfg.Validate())
	require.Equal(t, "helper-password", cfg.Password)
}

// Every sample manifest fits the local director's cloud config: its AZs, VM type and network exist, and its
// static IPs are inside the subnet's static range, as a director requires.
func TestCloudConfigFitsSampleManifests(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(manifestsDir, "cloud-config.yml"))
	require.NoError(t, err)
	var v any
	require.NoError(t, yaml.Unmarshal(data, &v))
	cc := release.Normalize(v).(map[string]any)

	names := func(key string) []string {
		var out []string
		for _, e := range cc[key].([]any) {
			out = append(out, e.(map[string]any)["name"].(string))
		}
		return out
	}
	require.Equal(t, []string{"z1", "z2", "z3"}, names("azs"))
	require.Contains(t, names("networks"), "default")
	net := cc["networks"].([]any)[0].(map[string]any)
	require.Equal(t, "manual", net["type"])
	subnet := net["subnets"].([]any)[0].(map[string]any)
	require.Equal(t, "10.244.0.0/16", subnet["range"])
	require.Equal(t, "10.244.0.1", subnet["gateway"])
	static := parseRanges(t, subnet["static"].([]any))
	comp := cc["compilation"].(map[string]any)
	require.Contains(t, names("vm_types"), comp["vm_type"])
	require.Equal(t, "default", comp["network"])

	for _, ops := range [][]string{nil, {"1-node"}, {"5-node"}, {"no-tls"}, {"consul"}, {"test-helper"}} {
		m := loadSample(t, ops...)
		for _, g := range m["instance_groups"].([]any) {
			group := g.(map[string]any)
			require.Contains(t, names("vm_types"), group["vm_type"])
			for _, az := range group["azs"].([]any) {
				require.Contains(t, names("azs"), az)
			}
			for _, n := range group["networks"].([]any) {
				nw := n.(map[string]any)
				require.Contains(t, names("networks"), nw["name"])
				ips, _ := nw["static_ips"].([]any)
				require.Len(t, ips, group["instances"].(int), "ops %v", ops)
				for _, ip := range ips {
					require.True(t, inRanges(static, netip.MustParseAddr(ip.(string))), "%v (ops %v) not in the static range", ip, ops)
				}
			}
		}
		update := m["update"].(map[string]any)
		require.Equal(t, 1, update["canaries"])
		require.Equal(t, 1, update["max_in_flight"])
		require.Equal(t, true, update["serial"])
	}
}

type ipRange struct{ lo, hi netip.Addr }

func parseRanges(t *testing.T, entries []any) []ipRange {
	var out []ipRange
	for _, e := range entries {
		s := e.(string)
		lo, hi, found := strings.Cut(s, "-")
		r := ipRange{lo: netip.MustParseAddr(strings.TrimSpace(lo))}
		r.hi = r.lo
		if found {
			r.hi = netip.MustParseAddr(strings.TrimSpace(hi))
		}
		require.True(t, r.lo.Compare(r.hi) <= 0)
		out = append(out, r)
	}
	return out
}

func inRanges(rs []ipRange, a netip.Addr) bool {
	for _, r := range rs {
		if a.Compare(r.lo) >= 0 && a.Compare(r.hi) <= 0 {
			return true
		}
	}
	return false
}
