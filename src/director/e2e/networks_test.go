package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTwoNetworks deploys on a cloud config shaped like the original etcd-release one: two manual networks on
// the director's one bridge, each with its own range and gateway (here the test bridge's /24 halved: `public`
// .0/25 with gateway .1, `private` .128/25 with gateway .129), servers on private and the client on public.
func TestTwoNetworks(t *testing.T) {
	d := startDirector(t)
	ctx := context.Background()
	d.setup()
	cc := fmt.Sprintf(`azs: [{name: z1}, {name: z2}]
vm_types: [{name: default}]
disk_types: [{name: small, disk_size: 64}]
networks:
- name: public
  type: manual
  subnets:
  - {range: 10.246.%[1]d.0/25, gateway: 10.246.%[1]d.1, azs: [z1, z2], static: [10.246.%[1]d.10 - 10.246.%[1]d.19], dns: [10.246.%[1]d.1]}
- name: private
  type: manual
  subnets:
  - {range: 10.246.%[1]d.128/25, gateway: 10.246.%[1]d.129, azs: [z1, z2], dns: [10.246.%[1]d.129]}
compilation: {workers: 2, az: z1, network: public, vm_type: default}
`, d.n)
	require.NoError(t, d.c.UpdateCloudConfig(ctx, []byte(cc)))
	m := strings.Replace(string(d.manifest(manifestOpts{servers: 2, port: 8080})), "  persistent_disk: 64\n  networks: [{name: default}]",
		"  persistent_disk: 64\n  networks: [{name: private}]", 1)
	m = strings.Replace(m, "networks: [{name: default, static_ips:", "networks: [{name: public, static_ips:", 1)
	m = strings.Replace(m, "networks: [{name: default}]", "networks: [{name: public}]", 1) // the errand group
	require.NotContains(t, m, "name: default}")
	d.mustTask(d.c.Deploy(ctx, []byte(m)))

	insts := d.instances()
	private := netip.MustParsePrefix(fmt.Sprintf("10.246.%d.128/25", d.n))
	s0, s1, c0 := insts["servers/0"], insts["servers/1"], insts["clients/0"]
	for _, s := range []instance{s0, s1} {
		require.True(t, private.Contains(netip.MustParseAddr(s.IPs[0])), "%s/%d on private: %v", s.JobName, s.Index, s.IPs)
		require.Equal(t, "running", *s.JobState)
	}
	require.Equal(t, d.ip(130), s0.IPs[0], "the lowest free address after private's gateway")
	require.Equal(t, []string{d.ip(10)}, c0.IPs, "the client's static IP on public")

	// Each VM has its subnet's netmask, its own gateway as default route and its subnet's dns.
	route := d.vmExec(s0, "ip", "-4", "route")
	require.Contains(t, route, "default via "+d.ip(129)+" dev eth0")
	require.Contains(t, d.vmExec(s0, "ip", "-4", "-o", "addr", "show", "dev", "eth0"), s0.IPs[0]+"/25")
	require.Contains(t, d.vmExec(c0, "ip", "-4", "route"), "default via "+d.ip(1)+" dev eth0")
	require.Contains(t, d.vmExec(s0, "cat", "/etc/resolv.conf"), "nameserver "+d.ip(129))
	// The bridge carries both gateways.
	out, err := exec.Command("ip", "-4", "-o", "addr", "show", "dev", d.bridge).CombinedOutput()
	require.NoError(t, err)
	require.Contains(t, string(out), d.ip(129)+"/25")
	require.Contains(t, string(out), d.ip(1)+"/24")

	// The client on public reaches a server on private across the subnets, on the bridge: a closed port answers
	// "connection refused" (an unreachable address would time out or say no route).
	v := d.dep.VM(*c0.VMCID)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, stderr, code, err := v.Exec(cctx, []string{"bash", "-c", "echo > /dev/tcp/" + s1.IPs[0] + "/1"}, nil, nil)
	require.NoError(t, err)
	require.NotEqual(t, 0, code)
	require.Contains(t, string(stderr), "Connection refused")

	d.mustTask(d.c.DeleteDeployment(ctx, "e2e", false))
}

func (d *director) vmExec(i instance, argv ...string) string {
	d.t.Helper()
	v := d.dep.VM(*i.VMCID)
	require.NotNil(d.t, v)
	stdout, stderr, code, err := v.Exec(context.Background(), argv, nil, nil)
	require.NoError(d.t, err)
	require.Equal(d.t, 0, code, "%v: %s", argv, stderr)
	return string(stdout)
}
