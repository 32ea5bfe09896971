package vm

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// nameservers are the addresses of a resolv.conf's nameserver lines, in order.
func nameservers(resolv string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^nameserver\s+(\S+)\s*$`).FindAllStringSubmatch(resolv, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestResolvConfIsPerVM(t *testing.T) {
	hostBefore, err := os.ReadFile("/etc/resolv.conf")
	require.NoError(t, err)
	t.Cleanup(func() { // should this test ever find the isolation broken, put the host's file back
		if now, err := os.ReadFile("/etc/resolv.conf"); err == nil && string(now) != string(hostBefore) {
			_ = os.WriteFile("/etc/resolv.conf", hostBefore, 0o644)
		}
	})
	tn := newTestNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	spec := tn.spec("dns", 12)
	spec.DNS = []netip.Addr{netip.MustParseAddr("10.244.0.9"), netip.MustParseAddr("127.0.0.1")}
	v, err := Create(ctx, spec)
	require.NoError(t, err)
	other := tn.create(tn.spec("nodns", 13))

	// The VM sees exactly its subnet's nameservers, in order, in a file that names it.
	got := mustExec(t, v, nil, "cat", "/etc/resolv.conf")
	require.Equal(t, []string{"10.244.0.9", "127.0.0.1"}, nameservers(got), "%s", got)
	require.Contains(t, got, "local director for VM "+v.ID())
	hostFile := filepath.Join("/etc/netns", v.ID(), "resolv.conf")
	st, err := os.Stat(hostFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())

	// Without dns entries: no nameserver at all, and nothing copied from the host.
	gotOther := mustExec(t, other, nil, "cat", "/etc/resolv.conf")
	require.Empty(t, nameservers(gotOther), "%s", gotOther)
	require.Contains(t, gotOther, "local director for VM "+other.ID())
	require.Contains(t, gotOther, "options ndots:1")
	for _, ns := range nameservers(string(hostBefore)) {
		require.NotContains(t, gotOther, ns)
	}

	// Inside the VM /etc/resolv.conf is a mount point (checked before anything writes to it).
	require.Contains(t, mustExec(t, v, nil, "cat", "/proc/self/mountinfo"), " /etc/resolv.conf ")

	// A job editing /etc/resolv.conf in place (as consul agents' pre-start does) edits the VM's file only.
	mustExec(t, v, nil, "sh", "-c", "echo nameserver 127.0.0.53 > /etc/resolv.conf")
	require.Equal(t, []string{"127.0.0.53"}, nameservers(mustExec(t, v, nil, "cat", "/etc/resolv.conf")))
	hostAfter, err := os.ReadFile("/etc/resolv.conf")
	require.NoError(t, err)
	require.Equal(t, string(hostBefore), string(hostAfter), "the host's /etc/resolv.conf must not change")
	onHost, err := os.ReadFile(hostFile)
	require.NoError(t, err)
	require.Equal(t, "nameserver 127.0.0.53\n", string(onHost), "the write lands in the VM's own file")
	require.Equal(t, gotOther, mustExec(t, other, nil, "cat", "/etc/resolv.conf"), "the other VM keeps its file")

	// Replacing it by a rename fails (it is a mount point) and leaves the host alone too.
	// (The new file has to be in /etc, on the host's file system, for mv to rename rather than copy.)
	tmp := "/etc/.resolv.conf." + v.ID()
	t.Cleanup(func() { _ = os.Remove(tmp) })
	_, stderr, code, err := v.Exec(ctx, []string{"sh", "-c",
		"echo nameserver 127.0.0.54 > " + tmp + " && mv -f " + tmp + " /etc/resolv.conf"}, nil, nil)
	require.NoError(t, err)
	require.NotEqual(t, 0, code, "rename over the bind-mounted resolv.conf must fail")
	require.Contains(t, strings.ToLower(string(stderr)), "busy")
	require.NoError(t, os.Remove(tmp))
	hostAfter, err = os.ReadFile("/etc/resolv.conf")
	require.NoError(t, err)
	require.Equal(t, string(hostBefore), string(hostAfter))

	// Attaching (a restarted director) leaves the running VM's file as it is.
	again := spec
	again.DNS = []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	_, err = Attach(ctx, again)
	require.NoError(t, err)
	onHost, err = os.ReadFile(hostFile)
	require.NoError(t, err)
	require.Equal(t, "nameserver 127.0.0.53\n", string(onHost))

	// Destroy removes /etc/netns/<id> and nothing else.
	require.NoError(t, v.Destroy(ctx))
	require.NoDirExists(t, filepath.Join("/etc/netns", v.ID()))
	require.DirExists(t, filepath.Join("/etc/netns", other.ID()))
	require.NoError(t, v.Destroy(ctx))
	hostAfter, err = os.ReadFile("/etc/resolv.conf")
	require.NoError(t, err)
	require.Equal(t, string(hostBefore), string(hostAfter))
}

func TestResolvConfOfFailedCreateIsRemoved(t *testing.T) {
	tn := newTestNet(t)
	spec := tn.spec("noboot", 14)
	spec.DNS = []netip.Addr{netip.MustParseAddr("10.244.0.9")}
	spec.BootTimeout = time.Nanosecond // the boot wait fails at once; Create tears the half-made VM down
	_, err := Create(context.Background(), spec)
	require.ErrorContains(t, err, "booting VM "+spec.ID)
	require.NoDirExists(t, filepath.Join("/etc/netns", spec.ID))
	require.NoFileExists(t, filepath.Join(netnsDir, spec.ID))
}

func TestSpecDNSMustBeIPv4(t *testing.T) {
	spec := Spec{ID: "x", Address: netip.MustParsePrefix("10.0.0.2/24"), Gateway: netip.MustParseAddr("10.0.0.1"),
		Bridge: "br0", DataDir: "/tmp/x"}
	require.NoError(t, spec.Validate())
	spec.DNS = []netip.Addr{netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("fd00::53"), {}}
	err := spec.Validate()
	require.ErrorContains(t, err, `dns[1] "fd00::53": must be an IPv4 address`)
	require.ErrorContains(t, err, `dns[2]`)
	require.NotContains(t, err.Error(), "dns[0]")
}

func TestResolvConfContent(t *testing.T) {
	require.Equal(t, "# Written by the local director for VM v1 from the dns list of its cloud-config subnet.\n"+
		"# Bind-mounted over /etc/resolv.conf in this VM only: edit it in place; renaming a file over it fails (EBUSY).\n"+
		"nameserver 10.0.0.9\nnameserver 127.0.0.1\n",
		string(resolvConf("v1", []netip.Addr{netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("127.0.0.1")})))
	empty := string(resolvConf("v1", nil))
	require.NotContains(t, empty, "nameserver ")
	require.Contains(t, empty, "\noptions ndots:1\n")
}
