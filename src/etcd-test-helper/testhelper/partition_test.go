package testhelper_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/etcd-release/etcd-release/src/etcd-test-helper/testhelper"
)

// netnsDialer dials from inside a network namespace: the socket is created on an OS thread that joined the
// namespace (and is thrown away afterwards), so the test process itself never leaves the host namespace.
func netnsDialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			f, err := os.Open("/var/run/netns/" + ns)
			if err != nil {
				ch <- result{err: err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{err: fmt.Errorf("setns: %w", err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
}

// TestPartitionInNetns runs the helper inside a network namespace of its own, so its iptables rules never touch
// the host's firewall, and checks that a partition drops traffic to and from the given peer only, keeps the API
// reachable, is idempotent, and that heal removes it.
func TestPartitionInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: creates a network namespace and iptables rules inside it")
	}
	ns := fmt.Sprintf("etr-th-%d", os.Getpid())
	exec.Command("ip", "netns", "del", ns).Run() // leftover of a killed run
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	ipCmd(t, "-n", ns, "addr", "add", "10.200.0.2/32", "dev", "lo") // the peer to cut off
	ipCmd(t, "-n", ns, "addr", "add", "10.200.0.3/32", "dev", "lo") // a peer that stays reachable

	dial := netnsDialer(ns)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	cfg := baseConfig(t, t.TempDir())
	cfg.ListenAddress = "0.0.0.0"
	h := startHelper(t, cfg, client, "ip", "netns", "exec", ns)

	reachable := func(ip string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		c, err := dial(ctx, "tcp", fmt.Sprintf("%s:%d", ip, cfg.Port))
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	require.True(t, reachable("10.200.0.2"))
	require.True(t, reachable("10.200.0.3"))

	var st testhelper.PartitionState
	require.Equal(t, http.StatusOK, h.do(t, "GET", "/partition", nil, &st))
	require.Empty(t, st.Rules)

	req := testhelper.PartitionRequest{Peers: []string{"10.200.0.2"}}
	for range 2 { // idempotent
		require.Equal(t, http.StatusOK, h.do(t, "POST", "/partition", req, &st))
		require.Equal(t, []string{
			"-A ETCD-TEST-HELPER -s 10.200.0.2/32 -j DROP",
			"-A ETCD-TEST-HELPER -d 10.200.0.2/32 -j DROP",
		}, st.Rules)
	}
	require.False(t, reachable("10.200.0.2"), "traffic to the partitioned peer must be dropped")
	require.True(t, reachable("10.200.0.3"))
	require.True(t, reachable("127.0.0.1"), "the API stays reachable")

	require.Equal(t, http.StatusOK, h.do(t, "GET", "/partition", nil, &st))
	require.Len(t, st.Rules, 2)

	require.Equal(t, http.StatusBadRequest, h.do(t, "POST", "/partition", testhelper.PartitionRequest{Peers: []string{"not-an-ip"}}, nil))
	require.Equal(t, http.StatusBadRequest, h.do(t, "POST", "/partition", testhelper.PartitionRequest{}, nil))

	require.Equal(t, http.StatusOK, h.do(t, "POST", "/heal", nil, &st))
	require.Empty(t, st.Rules)
	require.True(t, reachable("10.200.0.2"))

	// The host's firewall was never touched.
	out, err := exec.Command("iptables", "-w", "-S", testhelper.Chain).CombinedOutput()
	require.Error(t, err, "chain %s must not exist on the host: %s", testhelper.Chain, out)
}
