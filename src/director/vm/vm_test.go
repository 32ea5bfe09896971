package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTwoVMsNetworkAndIsolation(t *testing.T) {
	tn := newTestNet(t)
	a := tn.create(tn.spec("a", 2))
	b := tn.create(tn.spec("b", 3))
	exe := testExe(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A server run inside A as a monit-managed job ...
	installTestJob(t, a, "server", 8080)
	require.NoError(t, a.Monit().Reload(ctx))
	require.NoError(t, a.Monit().StartAll(ctx))

	// ... answers on A's bridge address, from the host ...
	require.NoError(t, Reachable(ctx, a.IP(), 8080))
	require.Equal(t, a.ID(), readLine(t, fmt.Sprintf("%s:8080", a.IP())))

	// ... and from VM B.
	out := mustExec(t, b, nil, exe, "vmtest-dial", fmt.Sprintf("%s:8080", a.IP()))
	require.Equal(t, a.ID(), strings.TrimSpace(out))

	// Each VM has its own address, hostname and loopback: B has nothing on 127.0.0.1:8080.
	require.Contains(t, mustExec(t, a, nil, "ip", "-4", "-o", "addr", "show", "dev", "eth0"), a.Spec().Address.String())
	require.Equal(t, b.ID(), strings.TrimSpace(mustExec(t, b, nil, "hostname")))
	_, _, code, err := b.Exec(ctx, []string{"/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"}, nil, nil)
	require.NoError(t, err)
	require.NotEqual(t, 0, code, "B must not see A's loopback listener")

	// /var/vcap is the VM's own data dir, not the host's and not the other VM's.
	mustExec(t, a, nil, "/bin/sh", "-c", "echo from-a > /var/vcap/data/marker")
	require.FileExists(t, filepath.Join(a.Spec().DataDir, "data", "marker"))
	require.NoFileExists(t, "/var/vcap/data/marker")
	require.NoFileExists(t, filepath.Join(b.Spec().DataDir, "data", "marker"))
	_, _, code, err = b.Exec(ctx, []string{"test", "-e", "/var/vcap/data/marker"}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 1, code)
	require.Contains(t, mustExec(t, a, nil, "mount"), "/var/vcap/data/sys/run type tmpfs")

	// Each VM sees only its own processes: the server is visible in A, not in B, and PID 1 is the VM init.
	grepServe := "grep -l vmtest-[s]erve /proc/[0-9]*/cmdline 2>/dev/null | wc -l"
	require.NotEqual(t, "0", strings.TrimSpace(mustExec(t, a, nil, "/bin/sh", "-c", grepServe)))
	require.Equal(t, "0", strings.TrimSpace(mustExec(t, b, nil, "/bin/sh", "-c", grepServe)))
	pids := strings.Fields(mustExec(t, b, nil, "/bin/sh", "-c", "ls /proc | grep -E '^[0-9]+$'"))
	require.Less(t, len(pids), 20, "B sees too many processes: %v", pids)
	require.Equal(t, "monit", strings.TrimSpace(mustExec(t, b, nil, "/bin/sh", "-c",
		"for p in /proc/[0-9]*; do [ \"$(cut -d' ' -f4 $p/stat)\" = 1 ] && cat $p/comm; done | grep monit")))

	// The hook environment.
	env := mustExec(t, a, []string{"BOSH_JOB_STATE={}"}, "env")
	require.Contains(t, env, "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n")
	require.Contains(t, env, "BOSH_JOB_STATE={}\n")
	require.NotContains(t, env, initEnvVar)

	// Exit codes and stdin come through.
	stdout, _, code, err := a.Exec(ctx, []string{"/bin/sh", "-c", "cat; exit 7"}, nil, strings.NewReader("in"))
	require.NoError(t, err)
	require.Equal(t, 7, code)
	require.Equal(t, "in", string(stdout))

	// A hook that leaves a daemon holding its stdout still returns promptly.
	start := time.Now()
	stdout, _, code, err = a.Exec(ctx, []string{"/bin/sh", "-c", "sleep 30 & echo started"}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 0, code)
	require.Equal(t, "started\n", string(stdout))
	require.Less(t, time.Since(start), 5*time.Second)

	// A missing program is a non-zero exit, not a Go error.
	_, stderr, code, err := a.Exec(ctx, []string{"/no/such/program"}, nil, nil)
	require.NoError(t, err)
	require.NotEqual(t, 0, code)
	require.Contains(t, string(stderr), "/no/such/program")

	// A cancelled Exec is stopped.
	shortCtx, shortCancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer shortCancel()
	start = time.Now()
	_, _, _, err = a.Exec(shortCtx, []string{"sleep", "30"}, nil, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestDestroyLeavesNothingAndIsIdempotent(t *testing.T) {
	tn := newTestNet(t)
	spec := tn.spec("gone", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := Create(ctx, spec)
	require.NoError(t, err)
	exe := testExe(t)
	mustExec(t, v, nil, "/bin/sh", "-c", fmt.Sprintf("nohup %s vmtest-serve 8080 >/dev/null 2>&1 &", exe))
	require.NoError(t, Reachable(ctx, v.IP(), 8080))
	pids, err := netnsProcs(v.netnsPath())
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(pids), 3) // unshare, init, monit, server

	_, err = Create(ctx, spec)
	require.ErrorIs(t, err, ErrVMExists)

	require.True(t, v.Alive())
	require.NoError(t, v.Destroy(ctx))
	require.False(t, v.Alive())
	require.NoFileExists(t, filepath.Join(netnsDir, spec.ID))
	l, err := linkShow(ctx, vethName(spec.ID))
	require.NoError(t, err)
	require.Nil(t, l, "veth must be gone")
	for _, pid := range pids {
		require.Eventually(t, func() bool { return !processAlive(pid) }, 5*time.Second, 20*time.Millisecond,
			"pid %d survived Destroy", pid)
	}
	require.DirExists(t, spec.DataDir, "data dir is the director's to delete")
	require.NoError(t, v.Destroy(ctx), "Destroy is idempotent")
	_, _, _, err = v.Exec(ctx, []string{"true"}, nil, nil)
	require.Error(t, err)
	state, _ := v.Monit().JobState(ctx)
	require.Equal(t, JobUnknown, state)
}

func TestReapCleansVMOfDeadDirector(t *testing.T) {
	tn := newTestNet(t)
	spec := tn.spec("orphan", 5)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A separate "director" process creates the VM and exits without deleting it.
	out, err := exec.CommandContext(ctx, testExe(t), "vmtest-orphan", spec.ID, spec.Address.String(),
		spec.Gateway.String(), spec.Bridge, spec.DataDir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	initPID, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err, "%s", out)
	require.True(t, processAlive(initPID))
	require.FileExists(t, filepath.Join("/etc/netns", spec.ID, "resolv.conf"))

	// A new director finds it ...
	ids, err := List(tn.prefix())
	require.NoError(t, err)
	require.Equal(t, []string{spec.ID}, ids)

	// ... can attach to it ...
	attached, err := Attach(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, initPID, attached.InitPID())
	state, _ := attached.Monit().JobState(ctx)
	require.Equal(t, JobRunning, state)

	// ... or reap it.
	reaped, err := Reap(ctx, tn.prefix(), tn.log)
	require.NoError(t, err)
	require.Equal(t, []string{spec.ID}, reaped)
	require.NoFileExists(t, filepath.Join(netnsDir, spec.ID))
	require.NoDirExists(t, filepath.Join("/etc/netns", spec.ID))
	l, err := linkShow(ctx, vethName(spec.ID))
	require.NoError(t, err)
	require.Nil(t, l)
	require.Eventually(t, func() bool { return !processAlive(initPID) }, 5*time.Second, 20*time.Millisecond)

	reaped, err = Reap(ctx, tn.prefix(), tn.log)
	require.NoError(t, err)
	require.Empty(t, reaped)
	_, err = Reap(ctx, "", tn.log)
	require.Error(t, err)
}

func TestPersistentDiskSurvivesRecreate(t *testing.T) {
	tn := newTestNet(t)
	disk := filepath.Join(t.TempDir(), "disk")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	first := tn.spec("disk1", 6)
	first.DiskDir = disk
	v1, err := Create(ctx, first)
	require.NoError(t, err)
	mustExec(t, v1, nil, "/bin/sh", "-c",
		"mkdir -p /var/vcap/store/etcd && echo member-data > /var/vcap/store/etcd/db && echo scratch > /var/vcap/data/scratch")
	require.Contains(t, mustExec(t, v1, nil, "mount"), " /var/vcap/store ")
	require.NoError(t, v1.Destroy(ctx))
	require.FileExists(t, filepath.Join(disk, "etcd", "db"), "Destroy keeps the disk")

	second := tn.spec("disk2", 6) // same IP, new VM cid, fresh ephemeral disk
	second.DiskDir = disk
	v2 := tn.create(second)
	require.Equal(t, "member-data\n", mustExec(t, v2, nil, "cat", "/var/vcap/store/etcd/db"))
	_, _, code, err := v2.Exec(ctx, []string{"test", "-e", "/var/vcap/data/scratch"}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 1, code, "the ephemeral disk is new")

	p, err := v2.HostPath("/var/vcap/store/etcd/db")
	require.NoError(t, err)
	require.Equal(t, filepath.Join(disk, "etcd", "db"), p)

	// Without a disk, /var/vcap/store is just a directory on the ephemeral disk.
	noDisk := tn.create(tn.spec("nodisk", 7))
	require.NotContains(t, mustExec(t, noDisk, nil, "mount"), " /var/vcap/store ")
	_, err = os.Stat(filepath.Join(noDisk.Spec().DataDir, "store"))
	require.NoError(t, err)
}

func TestEnsureBridge(t *testing.T) {
	tn := newTestNet(t)
	ctx := context.Background()
	// Idempotent.
	require.NoError(t, EnsureBridge(ctx, tn.bridge, tn.gatewayCIDR()))
	require.NoError(t, CheckBridge(ctx, tn.bridge, tn.gatewayCIDR()))
	// The forward guard is in place.
	out, err := exec.Command(toolPath("nft"), "list", "table", "inet", guardTable(tn.bridge)).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), fmt.Sprintf(`iifname "%s" oifname != "%s" drop`, tn.bridge, tn.bridge))
	// A second bridge may not take an overlapping subnet.
	other := tn.bridge + "x"
	err = EnsureBridge(ctx, other, fmt.Sprintf("10.245.%d.129/25", tn.n))
	require.Error(t, err)
	require.Contains(t, err.Error(), "overlaps")
	l, err := linkShow(ctx, other)
	require.NoError(t, err)
	require.Nil(t, l)
	// Bad input is refused before anything is touched.
	require.Error(t, EnsureBridge(ctx, "much-too-long-bridge", "10.246.0.1/24"))
	require.Error(t, EnsureBridge(ctx, "lbtbad", "10.246.0.1"))
	require.Error(t, CheckBridge(ctx, "lbtnothere", "10.246.0.1/24"))
	require.Error(t, CheckBridge(ctx, tn.bridge, "10.246.0.1/24"))
	// eth0 is not a bridge.
	require.Error(t, EnsureBridge(ctx, "lo", "10.246.0.1/24"))
}

func TestFirewallInsideVM(t *testing.T) {
	tn := newTestNet(t)
	a := tn.create(tn.spec("fwa", 10))
	b := tn.create(tn.spec("fwb", 11))
	exe := testExe(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mustExec(t, b, nil, "/bin/sh", "-c", fmt.Sprintf("nohup %s vmtest-serve 8080 >/dev/null 2>&1 &", exe))
	require.NoError(t, Reachable(ctx, b.IP(), 8080))
	mustExec(t, a, nil, exe, "vmtest-dial", fmt.Sprintf("%s:8080", b.IP()))

	// A partition made with nftables inside A cuts A off from B, and only A.
	mustExec(t, a, nil, "nft", "add table inet part; add chain inet part out { type filter hook output priority 0; }; "+
		fmt.Sprintf("add rule inet part out ip daddr %s drop", b.IP()))
	_, _, code, err := a.Exec(ctx, []string{"timeout", "3", exe, "vmtest-dial", fmt.Sprintf("%s:8080", b.IP())}, nil, nil)
	require.NoError(t, err)
	require.NotEqual(t, 0, code)
	require.Equal(t, b.ID(), readLine(t, fmt.Sprintf("%s:8080", b.IP())), "the host still reaches B")
	out, err := exec.Command(toolPath("nft"), "list", "tables").CombinedOutput()
	require.NoError(t, err)
	require.NotContains(t, string(out), "inet part", "the rule lives in A's namespace only")
	mustExec(t, a, nil, "nft", "delete table inet part")
	mustExec(t, a, nil, exe, "vmtest-dial", fmt.Sprintf("%s:8080", b.IP()))
}

// A VM shares the host's root file system; the directories in Spec.Hide (the director's state dir, which holds
// the VM's own data and disk dirs next to the director's credentials) are covered inside the VM, while its
// /var/vcap and /var/vcap/store, mounted from under them, keep working.
func TestHiddenHostDirsAreUnreachableInsideTheVM(t *testing.T) {
	tn := newTestNet(t)
	state := t.TempDir()
	secret := filepath.Join(state, "creds.json")
	require.NoError(t, os.WriteFile(secret, []byte(`{"password":"director"}`), 0o600))
	spec := tn.spec("hide", 8)
	spec.DataDir = filepath.Join(state, "vms", "hide")
	spec.DiskDir = filepath.Join(state, "disks", "d1")
	require.NoError(t, os.MkdirAll(spec.DiskDir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(spec.DiskDir, "db"), []byte("member-data\n"), 0o600))
	spec.Hide = []string{state}
	v := tn.create(spec)

	require.Equal(t, "member-data\n", mustExec(t, v, nil, "cat", "/var/vcap/store/db"), "the disk mounted from the hidden dir works")
	mustExec(t, v, nil, "/bin/sh", "-c", "echo scratch > /var/vcap/data/scratch")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, argv := range [][]string{{"cat", secret}, {"ls", filepath.Join(state, "vms")}, {"/bin/sh", "-c", "echo x > " + filepath.Join(state, "planted")}} {
		_, _, code, err := v.Exec(ctx, argv, nil, nil)
		require.NoError(t, err)
		require.NotEqual(t, 0, code, "%v inside the VM must fail", argv)
	}
	_, err := os.Stat(filepath.Join(state, "planted"))
	require.True(t, os.IsNotExist(err))
	require.FileExists(t, secret, "the host still sees its files")
	require.FileExists(t, filepath.Join(spec.DataDir, "data", "scratch"), "what the VM writes to /var/vcap lands in its data dir")
}
