package manifest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseDeploymentErrorsNameTheKey(t *testing.T) {
	_, err := ParseDeployment([]byte(`name: d
releases: [{name: r}]
stemcells: [{alias: s, version: latest}]
update: {canaries: 1, max_in_flight: x}
networks: []
instance_groups:
- name: g
  instances: two
  stemcell: nope
  jobs: [{name: j, release: other}, {name: j, release: r}]
`))
	require.Error(t, err)
	for _, want := range []string{
		"deployment manifest should not contain cloud config properties: ['networks']",
		"releases[0]: 'version' is required",
		"stemcells[0]: either 'os' or 'name' is required",
		`update.max_in_flight: "x" is not a number or percentage`,
		"update: 'canary_watch_time' is required",
		"instance_groups 'g': 'instances' must be an integer",
		"instance_groups 'g': exactly one of 'vm_type' or 'vm_resources' is required",
		"instance_groups 'g': stemcell 'nope' is not defined in 'stemcells'",
		"instance_groups 'g': 'networks' is required",
		"instance_groups 'g' job 'j': release 'other' is not listed in 'releases'",
		"instance_groups 'g': job 'j' is listed twice",
	} {
		require.ErrorContains(t, err, want)
	}
}

func TestJobPropertiesPresenceAndLinks(t *testing.T) {
	d, err := ParseDeployment([]byte(`name: d
releases: [{name: r, version: 1}]
stemcells: [{alias: s, os: ubuntu-jammy, version: latest}]
update: {canaries: 1, max_in_flight: 1, canary_watch_time: 1000, update_watch_time: 1000}
instance_groups:
- name: g
  instances: 1
  vm_type: default
  stemcell: s
  networks: [{name: default}]
  jobs:
  - {name: a, release: r, properties: {}, consumes: {x: nil, y: {from: z}}}
  - {name: b, release: r}
`))
	require.NoError(t, err)
	jobs := d.InstanceGroups[0].Jobs
	require.True(t, jobs[0].HasProperties, "an empty properties hash replaces global and group properties")
	require.False(t, jobs[1].HasProperties)
	require.True(t, jobs[0].Consumes["x"].Blocked)
	require.Equal(t, "z", jobs[0].Consumes["y"].From)
	require.Equal(t, "1", d.Releases[0].Version, "numbers become strings")
}

func TestCloudConfig(t *testing.T) {
	c, err := ParseCloudConfig([]byte(`azs: [{name: z1}]
networks:
- name: n
  subnets:
  - {range: 10.0.0.0/24, gateway: 10.0.0.1, azs: [z1], reserved: [10.0.0.2-10.0.0.3], static: [10.0.0.10 - 10.0.0.11, 10.0.0.20/31]}
`))
	require.NoError(t, err)
	s := c.Networks[0].Subnets[0]
	require.Equal(t, "255.255.255.0", s.Netmask())
	require.Len(t, s.Static, 4)
	_, err = ParseCloudConfig([]byte(`networks:
- name: n
  type: dynamic
  subnets: [{range: 10.0.0.0/24, gateway: 10.0.1.1, static: [10.0.0.1]}]
`))
	require.ErrorContains(t, err, "type 'dynamic' is not supported")
	require.ErrorContains(t, err, "gateway 10.0.1.1 must be inside 10.0.0.0/24")
}

func TestCloudConfigDNS(t *testing.T) {
	c, err := ParseCloudConfig([]byte(`networks:
- name: n
  subnets:
  - {range: 10.0.0.0/24, gateway: 10.0.0.1, dns: [10.0.0.9, 127.0.0.1]}
  - {range: 10.0.1.0/24, gateway: 10.0.1.1}
`))
	require.NoError(t, err)
	require.Equal(t, "[10.0.0.9 127.0.0.1]", fmt.Sprint(c.Networks[0].Subnets[0].Nameservers()))
	require.Empty(t, c.Networks[0].Subnets[1].Nameservers())

	_, err = ParseCloudConfig([]byte(`networks:
- name: n
  subnets:
  - {range: 10.0.0.0/24, gateway: 10.0.0.1, dns: [10.0.0.9, dns.example.com, "fd00::53"]}
`))
	require.ErrorContains(t, err, `cloud config network 'n' subnets[0]: 'dns[1]' "dns.example.com" must be an IPv4 address`)
	require.ErrorContains(t, err, `cloud config network 'n' subnets[0]: 'dns[2]' "fd00::53" must be an IPv4 address`)
	require.NotContains(t, err.Error(), "dns[0]")
}

// TestInstanceGroupRules: each group rule, one manifest per rule, and the message naming the key.
func TestInstanceGroupRules(t *testing.T) {
	const head = "name: d\nreleases: [{name: r, version: 1}]\nstemcells: [{alias: s, os: ubuntu-jammy, version: latest}]\n" +
		"update: {canaries: 1, max_in_flight: 1, canary_watch_time: 1000, update_watch_time: 1000}\ninstance_groups:\n"
	const ok = "- name: g\n  instances: 1\n  vm_type: v\n  stemcell: s\n  networks: [{name: n}]\n  jobs: [{name: j, release: r}]\n"
	for _, tc := range []struct{ name, group, want string }{
		{"valid", ok, ""},
		{"negative instances", "- name: g\n  instances: -1\n  vm_type: v\n  stemcell: s\n  networks: [{name: n}]\n  jobs: []\n", "'instances' must not be negative"},
		{"missing instances", "- name: g\n  vm_type: v\n  stemcell: s\n  networks: [{name: n}]\n  jobs: []\n", "'instances' is required"},
		{"empty azs", ok + "  azs: []\n", "'azs' must not be empty when present"},
		{"both vm_type and vm_resources", ok + "  vm_resources: {cpu: 1}\n", "exactly one of 'vm_type' or 'vm_resources'"},
		{"bad lifecycle", ok + "  lifecycle: batch\n", "'lifecycle' must be 'service' or 'errand', got 'batch'"},
		{"negative disk", ok + "  persistent_disk: -5\n", "'persistent_disk' must be a non-negative integer (MB)"},
		{"two disk keys", ok + "  persistent_disk: 5\n  persistent_disk_type: small\n", "only one of 'persistent_disk', 'persistent_disk_type' and 'persistent_disks'"},
		{"multiple disks", ok + "  persistent_disks: [{name: a}]\n", "'persistent_disks' (multiple disks) is not supported"},
		{"several networks without defaults", "- name: g\n  instances: 1\n  vm_type: v\n  stemcell: s\n  networks: [{name: a}, {name: b}]\n  jobs: []\n",
			"with several networks exactly one must be the default for 'dns'"},
		{"several networks with defaults", "- name: g\n  instances: 1\n  vm_type: v\n  stemcell: s\n  networks: [{name: a, default: [dns, gateway]}, {name: b}]\n  jobs: []\n", ""},
		{"network not a hash", "- name: g\n  instances: 1\n  vm_type: v\n  stemcell: s\n  networks: [n]\n  jobs: []\n", "networks[0] must be a hash"},
		{"jobs missing", "- name: g\n  instances: 1\n  vm_type: v\n  stemcell: s\n  networks: [{name: n}]\n", "'jobs' is required"},
		{"custom providers", "- name: g\n  instances: 1\n  vm_type: v\n  stemcell: s\n  networks: [{name: n}]\n  jobs: [{name: j, release: r, custom_provider_definitions: []}]\n",
			"instance_groups 'g' job 'j': 'custom_provider_definitions' is not supported"},
		{"unnamed job", "- name: g\n  instances: 1\n  vm_type: v\n  stemcell: s\n  networks: [{name: n}]\n  jobs: [{release: r}]\n", "instance_groups 'g' jobs[0]: 'name' is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDeployment([]byte(head + tc.group))
			if tc.want == "" {
				require.NoError(t, err)
				require.Len(t, d.InstanceGroups, 1)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestCloudConfigRules(t *testing.T) {
	const net = "networks: [{name: n, subnets: [{range: 10.0.0.0/24, gateway: 10.0.0.1}]}]\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"valid", "azs: [{name: z1}]\nvm_types: [{name: v}]\ndisk_types: [{name: small, disk_size: 1024}]\n" + net, ""},
		{"duplicate az", "azs: [{name: z1}, {name: z1}]\n" + net, "cloud config azs: duplicate name 'z1'"},
		{"unnamed vm type", "vm_types: [{cloud_properties: {}}]\n" + net, "cloud config vm_types[0]: 'name' is required"},
		{"entry not a hash", "vm_types: [v]\n" + net, "cloud config vm_types[0]: must be a hash"},
		{"disk type without size", "disk_types: [{name: small}]\n" + net, "cloud config disk_types 'small': 'disk_size' must be a positive integer (MB)"},
		{"no networks", "azs: [{name: z1}]\n", "cloud config: 'networks' is required and must not be empty"},
		{"duplicate network", "networks: [{name: n, subnets: [{range: 10.0.0.0/24, gateway: 10.0.0.1}]}, {name: n, subnets: [{range: 10.0.1.0/24, gateway: 10.0.1.1}]}]\n",
			"cloud config networks: duplicate name 'n'"},
		{"network without subnets", "networks: [{name: n}]\n", "cloud config network 'n': needs at least one subnet"},
		{"subnet not a hash", "networks: [{name: n, subnets: [x]}]\n", "cloud config network 'n' subnets[0]: must be a hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCloudConfig([]byte(tc.doc))
			if tc.want == "" {
				require.NoError(t, err)
				require.Equal(t, map[string]int{"small": 1024}, c.DiskTypes)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}
