package deployer

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/director/manifest"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

const testCloud = `
azs: [{name: z1}, {name: z2}, {name: z3}]
vm_types: [{name: default}]
networks:
- name: default
  subnets:
  - range: 10.244.0.0/16
    gateway: 10.244.0.1
    azs: [z1, z2, z3]
    reserved: [10.244.0.2 - 10.244.0.4]
    static: [10.244.0.10 - 10.244.0.20]
`

func testPlan(t *testing.T, groups string) (*Deployer, *plan) {
	t.Helper()
	cloud, err := manifest.ParseCloudConfig([]byte(testCloud))
	require.NoError(t, err)
	m, err := manifest.ParseDeployment([]byte(`name: d
releases: [{name: r, version: "1"}]
stemcells: [{alias: default, os: ubuntu-jammy, version: latest}]
update: {canaries: 1, max_in_flight: 2, canary_watch_time: 1000, update_watch_time: 1000-2000}
instance_groups:
` + groups))
	require.NoError(t, err)
	d := &Deployer{cfg: Config{Bridge: "lbosh0", BridgeCIDR: netip.MustParsePrefix("10.244.0.1/16")}}
	return d, &plan{name: "d", m: m, cloud: cloud, stemcells: map[string]state.Stemcell{"default": {CID: "sc"}}}
}

func group(name string, n int, extra string) string {
	return "- name: " + name + "\n  instances: " + strconv.Itoa(n) + "\n  vm_type: default\n  stemcell: default\n  jobs: [{name: j, release: r}]\n" + extra
}

func TestPlacementStaticIPsSpreadOverAZs(t *testing.T) {
	d, p := testPlan(t, group("etcd", 3, "  azs: [z1, z2, z3]\n  networks: [{name: default, static_ips: [10.244.0.10, 10.244.0.11, 10.244.0.12]}]\n"))
	gp, obsolete, err := d.placeGroup(p, p.m.InstanceGroups[0], nil, map[netip.Addr]bool{})
	require.NoError(t, err)
	require.Empty(t, obsolete)
	var got []string
	for _, ip := range gp.instances {
		got = append(got, ip.inst.AZ+"="+ip.inst.IP)
	}
	require.Equal(t, []string{"z1=10.244.0.10", "z2=10.244.0.11", "z3=10.244.0.12"}, got)
	require.True(t, gp.instances[0].inst.Bootstrap)

	// Existing instances keep their IPs and AZs; an unlisted IP's instance goes.
	existing := []state.Instance{}
	for _, ip := range gp.instances {
		existing = append(existing, ip.inst)
	}
	_, p2 := testPlan(t, group("etcd", 2, "  azs: [z1, z2, z3]\n  networks: [{name: default, static_ips: [10.244.0.10, 10.244.0.12]}]\n"))
	gp2, obsolete, err := d.placeGroup(p2, p2.m.InstanceGroups[0], existing, map[netip.Addr]bool{})
	require.NoError(t, err)
	require.Len(t, obsolete, 1)
	require.Equal(t, existing[1].ID, obsolete[0].ID)
	require.Equal(t, existing[0].ID, gp2.instances[0].inst.ID)
	require.Equal(t, existing[2].ID, gp2.instances[1].inst.ID)
	require.Equal(t, "z3", gp2.instances[1].inst.AZ)
}

func TestPlacementErrors(t *testing.T) {
	d, p := testPlan(t, group("g", 2, "  networks: [{name: default, static_ips: [10.244.0.10]}]\n"))
	_, _, err := d.placeGroup(p, p.m.InstanceGroups[0], nil, map[netip.Addr]bool{})
	require.EqualError(t, err, "instance group 'g' has 2 instances but was allocated 1 static IPs")
	d, p = testPlan(t, group("g", 1, "  networks: [{name: default, static_ips: [10.244.0.50]}]\n"))
	_, _, err = d.placeGroup(p, p.m.InstanceGroups[0], nil, map[netip.Addr]bool{})
	require.ErrorContains(t, err, "network 'default' declares static ip '10.244.0.50', which belongs to no subnet")
	d, p = testPlan(t, group("g", 1, "  networks: [{name: default}]\n"))
	d.cfg.BridgeCIDR = netip.MustParsePrefix("10.246.0.1/16")
	_, _, err = d.placeGroup(p, p.m.InstanceGroups[0], nil, map[netip.Addr]bool{})
	require.ErrorContains(t, err, "VMs of this director live on bridge lbosh0 (10.246.0.1/16)")
}

func TestPlacementDynamicScaleDownUpAndStickyBootstrap(t *testing.T) {
	d, p := testPlan(t, group("g", 3, "  azs: [z1, z2]\n  persistent_disk: 10\n  networks: [{name: default}]\n"))
	taken := map[netip.Addr]bool{netip.MustParseAddr("10.244.0.5"): true} // another deployment's
	gp, _, err := d.placeGroup(p, p.m.InstanceGroups[0], nil, taken)
	require.NoError(t, err)
	var got []string
	for _, ip := range gp.instances {
		got = append(got, ip.inst.AZ+"="+ip.inst.IP)
	}
	// Lowest free address: not the gateway, reserved (.2-.4), another deployment's (.5) or static (.10-.20).
	require.Equal(t, []string{"z1=10.244.0.6", "z2=10.244.0.7", "z1=10.244.0.8"}, got)

	var existing []state.Instance
	for i, ip := range gp.instances {
		inst := ip.inst
		inst.DiskCID = "disk"
		inst.Bootstrap = i == 1 // bootstrap moved to index 1 earlier: it must stay there
		existing = append(existing, inst)
	}
	_, p2 := testPlan(t, group("g", 2, "  azs: [z1, z2]\n  persistent_disk: 10\n  networks: [{name: default}]\n"))
	gp2, obsolete, err := d.placeGroup(p2, p2.m.InstanceGroups[0], existing, map[netip.Addr]bool{})
	require.NoError(t, err)
	require.Len(t, obsolete, 1)
	require.Equal(t, 2, obsolete[0].Index, "scale-down removes the highest index")
	require.Equal(t, []int{0, 1}, []int{gp2.instances[0].inst.Index, gp2.instances[1].inst.Index})
	require.True(t, gp2.instances[1].inst.Bootstrap, "bootstrap is sticky")
	require.Equal(t, existing[0].IP, gp2.instances[0].inst.IP, "IPs are kept")

	// Scale up again after index 1 is gone: the new instance takes the lowest free index.
	_, p3 := testPlan(t, group("g", 3, "  azs: [z1, z2]\n  persistent_disk: 10\n  networks: [{name: default}]\n"))
	gp3, _, err := d.placeGroup(p3, p3.m.InstanceGroups[0], []state.Instance{existing[0], existing[2]}, map[netip.Addr]bool{})
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 2}, []int{gp3.instances[0].inst.Index, gp3.instances[1].inst.Index, gp3.instances[2].inst.Index})
	require.True(t, gp3.instances[0].inst.Bootstrap, "re-elected: none of the desired instances was bootstrap")
}

func job(t *testing.T, spec string) *release.Job {
	s, err := release.ParseJobSpec([]byte(spec))
	require.NoError(t, err)
	return &release.Job{Name: s.Name, Version: "1", Spec: s}
}

func TestLinkResolution(t *testing.T) {
	rel := &release.Release{Manifest: release.Manifest{Name: "r", Version: "1"}, Jobs: []*release.Job{
		job(t, "name: srv\nprovides: [{name: conn, type: db, properties: [port]}]\nproperties: {port: {default: 5}}\n"),
		job(t, "name: other\nprovides: [{name: conn, type: db}]\n"),
		job(t, "name: cli\nconsumes: [{name: conn, type: db}, {name: opt, type: none, optional: true}]\n"),
	}}
	build := func(groups string) (*plan, error) {
		d, p := testPlan(t, groups)
		p.releases = map[string]*release.Release{"r": rel}
		for _, g := range p.m.InstanceGroups {
			gp, _, err := d.placeGroup(p, g, nil, map[netip.Addr]bool{})
			require.NoError(t, err)
			p.groups = append(p.groups, gp)
		}
		return p, resolveLinks(p)
	}
	grp := func(name, jobs string) string {
		return "- name: " + name + "\n  instances: 1\n  vm_type: default\n  stemcell: default\n  networks: [{name: default}]\n  jobs: " + jobs + "\n"
	}
	p, err := build(grp("db", "[{name: srv, release: r, properties: {port: 7}}]") + grp("app", "[{name: cli, release: r}]"))
	require.NoError(t, err)
	l := p.groups[1].jobs[0].links["conn"]
	require.Equal(t, map[string]any{"port": 7}, l.Properties)
	require.Len(t, l.Instances, 1)
	require.Equal(t, "db", l.Instances[0].Name)
	require.Equal(t, p.groups[0].instances[0].inst.IP, l.Instances[0].Address)
	require.NotContains(t, p.groups[1].jobs[0].links, "opt", "an optional link without provider is absent")

	_, err = build(grp("db", "[{name: srv, release: r}, {name: other, release: r}]") + grp("app", "[{name: cli, release: r}]"))
	require.ErrorContains(t, err, "Failed to resolve link 'conn' with type 'db' from job 'cli' in instance group 'app'. Details below:\n    - Multiple link providers found:")

	// Explicit consumption by provider name (alias) picks one; blocking with the string nil removes a provider.
	p, err = build(grp("db", "[{name: srv, release: r, provides: {conn: {as: main}}}, {name: other, release: r}]") +
		grp("app", "[{name: cli, release: r, consumes: {conn: {from: main}}}]"))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"port": 5}, p.groups[1].jobs[0].links["conn"].Properties)
	_, err = build(grp("db", "[{name: srv, release: r, provides: {conn: nil}}]") + grp("app", "[{name: cli, release: r}]"))
	require.ErrorContains(t, err, "No link providers found")
	_, err = build(grp("app", "[{name: cli, release: r, consumes: {opt: {from: x}}}]") + grp("db", "[{name: srv, release: r}]"))
	require.ErrorContains(t, err, "Failed to resolve link 'opt'", "an optional link named explicitly must resolve")
}

func TestCountsAndWatchTimes(t *testing.T) {
	require.Equal(t, 2, manifest.Count{N: 25, Percent: true}.Of(10))
	require.Equal(t, 0, manifest.Count{N: 10, Percent: true}.Of(3))
	require.Equal(t, 3, manifest.Count{N: 5}.Of(3))
	_, p := testPlan(t, group("g", 1, "  networks: [{name: default}]\n  update: {max_in_flight: 50%, update_watch_time: ' 5 - 10 '}\n"))
	u := p.m.InstanceGroups[0].Update
	require.Equal(t, manifest.Count{N: 50, Percent: true}, u.MaxInFlight)
	require.Equal(t, manifest.Count{N: 1}, u.Canaries, "inherited")
	require.Equal(t, manifest.WatchTime{Min: 5, Max: 10}, u.UpdateWatch)
	require.Equal(t, manifest.WatchTime{Min: 1000, Max: 1000}, u.CanaryWatch)
	require.True(t, u.Serial, "serial defaults to true")
}

func TestInstancesGetTheirSubnetsNameservers(t *testing.T) {
	d, p := testPlan(t, group("g", 2, "  azs: [z1, z2]\n  networks: [{name: default}]\n"))
	cloud, err := manifest.ParseCloudConfig([]byte(`
azs: [{name: z1}, {name: z2}]
vm_types: [{name: default}]
networks:
- name: default
  subnets:
  - {range: 10.244.0.0/16, gateway: 10.244.0.1, azs: [z1, z2], dns: [10.244.0.9, 127.0.0.1]}
`))
	require.NoError(t, err)
	p.cloud = cloud
	gp, _, err := d.placeGroup(p, p.m.InstanceGroups[0], nil, map[netip.Addr]bool{})
	require.NoError(t, err)
	require.Len(t, gp.instances, 2)
	for _, ip := range gp.instances {
		require.Equal(t, []netip.Addr{netip.MustParseAddr("10.244.0.9"), netip.MustParseAddr("127.0.0.1")}, ip.nameservers())
	}

	// testCloud's subnet has no dns: no nameservers.
	d, p = testPlan(t, group("g", 1, "  azs: [z1]\n  networks: [{name: default}]\n"))
	gp, _, err = d.placeGroup(p, p.m.InstanceGroups[0], nil, map[netip.Addr]bool{})
	require.NoError(t, err)
	require.Empty(t, gp.instances[0].nameservers())
	require.Empty(t, (&instancePlan{}).nameservers())
}
