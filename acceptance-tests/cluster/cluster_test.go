package cluster

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/acceptance-tests/config"
)

func instances(n int) []Instance {
	var out []Instance
	for i := 0; i < n; i++ {
		out = append(out, Instance{ID: string(rune('a' + i)), Index: i, IP: netip.AddrFrom4([4]byte{10, 244, 0, byte(10 + i)}).String()})
	}
	return out
}

// healthyViews is a 3-member cluster with member IDs 1..3, leader 2.
func healthyViews() []View {
	ins := instances(3)
	var members []Member
	for i, in := range ins {
		members = append(members, Member{ID: uint64(i + 1), Name: in.MemberName(), PeerURLs: []string{"https://" + in.IP + ":7001"}, ClientURLs: []string{"https://" + in.IP + ":4001"}})
	}
	var views []View
	for i, in := range ins {
		views = append(views, View{Instance: in, ClusterID: 0xc1, MemberID: uint64(i + 1), Leader: 2, Members: append([]Member(nil), members...)})
	}
	return views
}

func TestCheckInvariants(t *testing.T) {
	require.NoError(t, CheckInvariants(healthyViews()))
	leader, ok := LeaderOf(healthyViews())
	require.True(t, ok)
	require.Equal(t, 1, leader.Index)

	for name, tc := range map[string]struct {
		mutate func([]View)
		want   string
	}{
		"member down":      {func(v []View) { v[2].Err = errors.New("connection refused") }, "etcd-2 (10.244.0.12) does not answer"},
		"second cluster":   {func(v []View) { v[2].ClusterID = 0xc2 }, "2 cluster IDs"},
		"leader disagreed": {func(v []View) { v[0].Leader = 3 }, "members disagree on the leader"},
		"no leader":        {func(v []View) { v[0].Leader, v[1].Leader, v[2].Leader = 0, 0, 0 }, "no leader"},
		"learner left":     {func(v []View) { v[1].Members[2].Learner = true }, "etcd-1 lists learner 3"},
		"extra member": {func(v []View) {
			v[0].Members = append(v[0].Members, Member{ID: 9, Name: "etcd-3", PeerURLs: []string{"https://10.244.0.99:7001"}})
		}, `etcd-0 lists member 9 "etcd-3" with peer URLs [https://10.244.0.99:7001], which match no instance`},
		"missing member":       {func(v []View) { v[0].Members = v[0].Members[:2] }, "etcd-0 lists 2 voting members, want 3"},
		"wrong name":           {func(v []View) { v[0].Members[1].Name = "etcd-7" }, `named "etcd-7" at 10.244.0.11, where instance b should be "etcd-1"`},
		"client url elsewhere": {func(v []View) { v[0].Members[1].ClientURLs = []string{"https://10.244.0.50:4001"} }, "not at 10.244.0.11"},
	} {
		t.Run(name, func(t *testing.T) {
			v := healthyViews()
			tc.mutate(v)
			err := CheckInvariants(v)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func testConfig() config.Config {
	c := config.Default()
	c.AZs = []string{"z1", "z2"}
	return c
}

func TestRenderGeneratesTheDeployment(t *testing.T) {
	ips := []netip.Addr{netip.MustParseAddr("10.244.0.10"), netip.MustParseAddr("10.244.0.11"), netip.MustParseAddr("10.244.0.12")}
	b, err := Generator{Config: testConfig()}.Render(Manifest{Name: "etcd-acceptance-x", ReleaseVersion: "0+dev.3", Instances: 2, IPs: ips,
		EtcdProperties: NoTLSProperties(), HelperPassword: "pw"})
	require.NoError(t, err)
	var m struct {
		Name           string
		Releases       []map[string]string
		Stemcells      []map[string]string
		InstanceGroups []struct {
			Name               string
			Instances          int
			AZs                []string
			PersistentDiskType string `yaml:"persistent_disk_type"`
			Networks           []struct {
				Name      string
				StaticIPs []string `yaml:"static_ips"`
			}
			Jobs []struct {
				Name       string
				Properties map[string]map[string]any
			}
		} `yaml:"instance_groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &m))
	require.Equal(t, "etcd-acceptance-x", m.Name)
	require.Equal(t, []map[string]string{{"name": "etcd", "version": "0+dev.3"}}, m.Releases)
	require.Equal(t, "ubuntu-jammy", m.Stemcells[0]["os"])
	g := m.InstanceGroups[0]
	require.Equal(t, "etcd", g.Name)
	require.Equal(t, 2, g.Instances)
	require.Equal(t, []string{"z1", "z2"}, g.AZs)
	require.Equal(t, "default", g.PersistentDiskType)
	require.Equal(t, []string{"10.244.0.10", "10.244.0.11"}, g.Networks[0].StaticIPs)
	require.Equal(t, "etcd", g.Jobs[0].Name)
	require.Equal(t, false, g.Jobs[0].Properties["etcd"]["require_ssl"])
	require.Equal(t, "etcd-test-helper", g.Jobs[1].Name)
	require.Equal(t, "pw", g.Jobs[1].Properties["etcd_test_helper"]["password"])
	require.Equal(t, 8448, g.Jobs[1].Properties["etcd_test_helper"]["port"])
}

func TestRenderKeepsTheTemplatesOtherSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "template.yml")
	require.NoError(t, os.WriteFile(path, []byte("update: {canaries: 2, max_in_flight: 2, canary_watch_time: 5000, update_watch_time: 5000}\ninstance_groups:\n- name: etcd\n  vm_extensions: [x]\n  persistent_disk: 1024\n"), 0o644))
	c := testConfig()
	c.ManifestTemplate = path
	b, err := Generator{Config: c}.Render(Manifest{Name: "n", ReleaseVersion: "1", Instances: 1, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.5")}, EtcdProperties: NoTLSProperties()})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(b, &m))
	require.Equal(t, 2, m["update"].(map[string]any)["canaries"])
	g := m["instance_groups"].([]any)[0].(map[string]any)
	require.Equal(t, []any{"x"}, g["vm_extensions"])
	require.NotContains(t, g, "persistent_disk", "one of persistent_disk/persistent_disk_type only")
}

func TestRenderNeedsAnIPPerInstance(t *testing.T) {
	_, err := Generator{Config: testConfig()}.Render(Manifest{Name: "n", Instances: 2, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.5")}})
	require.ErrorContains(t, err, "2 instances but only 1 static IPs")
}

func TestCertsCoverEveryAddressAndRotationBundles(t *testing.T) {
	ips := []netip.Addr{netip.MustParseAddr("10.244.0.10"), netip.MustParseAddr("10.244.0.11")}
	a, err := NewCerts("1", ips)
	require.NoError(t, err)
	b, err := NewCerts("2", ips)
	require.NoError(t, err)
	for _, pemCert := range [][]byte{a.ServerCert, a.PeerCert} {
		blk, _ := pem.Decode(pemCert)
		cert, err := x509.ParseCertificate(blk.Bytes)
		require.NoError(t, err)
		require.NoError(t, cert.VerifyHostname("etcd-4."+ConsulDNSSuffix), "consul mode names")
		require.NoError(t, cert.VerifyHostname("10.244.0.11"))
	}
	props := TLSProperties(b, a, b)
	require.Equal(t, string(a.CA.CertPEM())+string(b.CA.CertPEM()), props["ca_cert"])
	require.Equal(t, string(b.ServerCert), props["server_cert"])
	ct, err := NewClientTLS(a, a, b)
	require.NoError(t, err)
	c1, err := ct.Config().GetClientCertificate(nil)
	require.NoError(t, err)
	require.NoError(t, ct.Use(b))
	c2, err := ct.Config().GetClientCertificate(nil)
	require.NoError(t, err)
	require.NotEqual(t, c1.Certificate[0], c2.Certificate[0], "Use switches the client certificate")
}

func TestCheckInvariantsMatchesConsulNamesInConsulMode(t *testing.T) {
	views := healthyViews()
	for i := range views {
		views[i].Instance.DNSName = views[i].Instance.MemberName() + "." + ConsulDNSSuffix
	}
	for i := range views {
		for j := range views[i].Members {
			m := &views[i].Members[j]
			host := m.Name + "." + ConsulDNSSuffix
			m.PeerURLs = []string{"https://" + host + ":7001"}
			m.ClientURLs = []string{"https://" + host + ":4001"}
		}
	}
	require.NoError(t, CheckInvariants(views))

	views[1].Members[2].PeerURLs = []string{"https://etcd-2.other.service.cf.internal:7001"}
	require.ErrorContains(t, CheckInvariants(views), `etcd-1 lists member 3 "etcd-2" with peer URLs [https://etcd-2.other.service.cf.internal:7001], which match no instance`)
}

func TestRenderConsulMode(t *testing.T) {
	ips := []netip.Addr{netip.MustParseAddr("10.244.0.10"), netip.MustParseAddr("10.244.0.11"), netip.MustParseAddr("10.244.0.12")}
	b, err := Generator{Config: testConfig()}.Render(Manifest{Name: "c", ReleaseVersion: "0+dev.3", Instances: 3, IPs: ips,
		EtcdProperties: NoTLSProperties(), Consul: &Consul{Release: "consul", Version: "1.20.6+dev.7"}})
	require.NoError(t, err)
	var m struct {
		Releases       []map[string]string
		InstanceGroups []struct {
			Name      string
			Instances int
			Networks  []struct {
				Name      string
				StaticIPs []string `yaml:"static_ips"`
			}
			Jobs []struct {
				Name       string
				Release    string
				Provides   map[string]any
				Consumes   map[string]any
				Properties map[string]map[string]any
			}
		} `yaml:"instance_groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &m))
	require.Equal(t, []map[string]string{{"name": "etcd", "version": "0+dev.3"}, {"name": "consul", "version": "1.20.6+dev.7"}}, m.Releases)
	require.Len(t, m.InstanceGroups, 2)
	server, etcd := m.InstanceGroups[0], m.InstanceGroups[1]
	require.Equal(t, ConsulGroup, server.Name, "consul servers deploy first")
	require.Equal(t, 1, server.Instances)
	require.Empty(t, server.Networks[0].StaticIPs, "the consul server takes a dynamic IP")
	require.Equal(t, "consul_agent", server.Jobs[0].Name)
	require.Equal(t, "server", server.Jobs[0].Properties["consul"]["agent"].(map[string]any)["mode"])
	require.Equal(t, map[string]any{"consul": map[string]any{"as": "consul_servers"}}, server.Jobs[0].Provides)

	require.Equal(t, "etcd", etcd.Name)
	require.Equal(t, []string{"consul_agent", "etcd", "etcd-test-helper"}, []string{etcd.Jobs[0].Name, etcd.Jobs[1].Name, etcd.Jobs[2].Name})
	agent, job := etcd.Jobs[0], etcd.Jobs[1]
	require.Equal(t, "client", agent.Properties["consul"]["agent"].(map[string]any)["mode"])
	require.Equal(t, map[string]any{"consul": map[string]any{"from": "consul_servers"}}, agent.Consumes)
	require.Equal(t, map[string]any{"consul": "nil"}, agent.Provides, "clients provide no servers link")
	require.Equal(t, map[string]any{"etcd": "nil"}, job.Consumes, "peers come from etcd.cluster, not the link")
	p := job.Properties["etcd"]
	require.Equal(t, ConsulDNSSuffix, p["advertise_urls_dns_suffix"])
	require.Equal(t, []any{map[string]any{"name": "etcd", "instances": 3}}, p["cluster"])
	require.Equal(t, map[string]any{"enabled": true}, p["consul"])
	require.Equal(t, false, p["require_ssl"])
}

func TestRenderWithoutPersistentDisk(t *testing.T) {
	b, err := Generator{Config: testConfig()}.Render(Manifest{Name: "n", ReleaseVersion: "1", Instances: 1, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.5")},
		EtcdProperties: NoTLSProperties(), NoPersistentDisk: true})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(b, &m))
	g := m["instance_groups"].([]any)[0].(map[string]any)
	require.NotContains(t, g, "persistent_disk_type")
	require.NotContains(t, g, "persistent_disk")
}
