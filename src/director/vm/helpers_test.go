package vm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// The test binary doubles as the programs the tests run inside VMs (a TCP server, a TCP client) and as a
// "director" that creates a VM and dies. The first argument picks the role.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "vmtest-serve":
			os.Exit(helperServe(os.Args[2]))
		case "vmtest-dial":
			os.Exit(helperDial(os.Args[2]))
		case "vmtest-orphan":
			os.Exit(helperOrphan(os.Args[2:]))
		}
	}
	os.Exit(m.Run())
}

// helperServe answers every connection on port with the hostname (the VM id) and closes it.
func helperServe(port string) int {
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	host, _ := os.Hostname()
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		fmt.Fprintf(c, "%s\n", host)
		c.Close()
	}
}

// helperDial prints the first line the server at addr sends, retrying for a few seconds.
func helperDial(addr string) int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil {
				fmt.Print(line)
				return 0
			}
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "dial", addr, err)
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// helperOrphan creates a VM and exits without destroying it, like a director that crashed.
// args: id address gateway bridge datadir
func helperOrphan(args []string) int {
	spec := Spec{ID: args[0], Address: netip.MustParsePrefix(args[1]), Gateway: netip.MustParseAddr(args[2]),
		Bridge: args[3], DataDir: args[4]}
	v, err := Create(context.Background(), spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(v.InitPID())
	return 0
}

// testNet is a bridge and subnet of its own for one test: bridge lbt<N>, 10.245.<N>.0/24, VM ids
// lbt<N>-<name>. Everything is reaped and deleted on cleanup.
type testNet struct {
	t      *testing.T
	n      int
	bridge string
	log    *zap.Logger
}

func requireRootT(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("these tests create network, mount and PID namespaces, veth pairs and bridges and must run as root "+
			"(uid 0) with monit, iproute2, util-linux and nftables installed; running as uid %d", os.Geteuid())
	}
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	requireRootT(t)
	ctx := context.Background()
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		n := 10 + rand.IntN(240)
		bridge := fmt.Sprintf("lbt%d", n)
		if l, err := linkShow(ctx, bridge); err != nil || l != nil {
			continue // someone else's test bridge
		}
		if err := EnsureBridge(ctx, bridge, fmt.Sprintf("10.245.%d.1/24", n)); err != nil {
			lastErr = err
			_ = DeleteBridge(ctx, bridge)
			continue
		}
		tn := &testNet{t: t, n: n, bridge: bridge, log: zaptest.NewLogger(t)}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := Reap(ctx, tn.prefix(), tn.log); err != nil {
				t.Errorf("reaping test VMs: %v", err)
			}
			if err := DeleteBridge(ctx, bridge); err != nil {
				t.Errorf("deleting test bridge: %v", err)
			}
		})
		return tn
	}
	t.Fatalf("could not set up a test bridge: %v", lastErr)
	return nil
}

func (tn *testNet) prefix() string { return fmt.Sprintf("lbt%d-", tn.n) }

func (tn *testNet) gatewayCIDR() string { return fmt.Sprintf("10.245.%d.1/24", tn.n) }

// spec is a VM spec on this test network; host is the last octet of the address.
func (tn *testNet) spec(name string, host int) Spec {
	return Spec{
		ID:            tn.prefix() + name,
		Address:       netip.MustParsePrefix(fmt.Sprintf("10.245.%d.%d/24", tn.n, host)),
		Gateway:       netip.MustParseAddr(fmt.Sprintf("10.245.%d.1", tn.n)),
		Bridge:        tn.bridge,
		DataDir:       filepath.Join(tn.t.TempDir(), "data"),
		MonitInterval: time.Second,
		Logger:        tn.log,
	}
}

// create boots a VM and destroys it on cleanup.
func (tn *testNet) create(spec Spec) *VM {
	tn.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := Create(ctx, spec)
	require.NoError(tn.t, err)
	tn.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(tn.t, v.Destroy(ctx))
	})
	tn.t.Cleanup(func() { // runs first: dump the VM's logs when the test failed
		if tn.t.Failed() {
			for _, p := range []string{"/var/vcap/bosh/log/vm-init.log", MonitLog} {
				if hp, err := v.HostPath(p); err == nil {
					tn.t.Logf("%s of %s:\n%s", p, v.ID(), tail(hp, 4096))
				}
			}
		}
	})
	return v
}

// mustExec runs a command in the VM and requires exit 0; it returns stdout.
func mustExec(t *testing.T, v *VM, env []string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stdout, stderr, code, err := v.Exec(ctx, argv, env, nil)
	require.NoError(t, err)
	require.Equal(t, 0, code, "%v: stdout=%s stderr=%s", argv, stdout, stderr)
	return string(stdout)
}

// readLine connects from the host and returns the first line the server sends.
func readLine(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return exe
}
