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
