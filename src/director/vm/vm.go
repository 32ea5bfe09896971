package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"
)

// Spec describes one VM.
type Spec struct {
	// ID is the VM cid. It also names the VM's network namespace, so it must be unique on the machine;
	// give all VMs of one director a common prefix so that Reap can find them after a crash.
	ID string
	// Address is the VM's IPv4 address with the network's prefix length, e.g. 10.244.0.2/16.
	Address netip.Prefix
	// Gateway is the VM's default route: the bridge's address or a subnet gateway the bridge carries too
	// (EnsureGateway).
	Gateway netip.Addr
	// OnLink, when it is wider than Address's prefix, is routed straight out of eth0 too: the bridge's whole
	// prefix, so VMs of different subnets on the same bridge reach each other without a router (the host
	// forwards nothing).
	OnLink netip.Prefix
	// Bridge is the host bridge the VM's veth is attached to (see EnsureBridge).
	Bridge string
	// DataDir is the host directory that becomes the VM's /var/vcap (the ephemeral disk). Destroy keeps it.
	DataDir string
	// DiskDir is the host directory mounted at /var/vcap/store (the persistent disk); empty = no disk.
	// Destroy keeps it: disks are deleted by the director, never by the VM.
	DiskDir string
	// DNS are the VM's nameservers, in order (the cloud-config subnet's dns list). Create writes them to
	// /etc/netns/<ID>/resolv.conf, which `ip netns exec` bind-mounts over the VM's /etc/resolv.conf; empty =
	// no nameserver lines. Attach ignores it (the file of a running VM is left as it is).
	DNS []netip.Addr
	// Hide are host directories the VM must not see (the director's state dir: its credentials, CA key and
	// every other VM's disks). A VM shares the host's root file system, so the init mounts an empty read-only
	// tmpfs over each, in the VM's own mount namespace, after /var/vcap and the disk are mounted from them.
	Hide []string

	// MonitInterval is monit's cycle (`set daemon`); default DefaultMonitInterval.
	MonitInterval time.Duration
	// RunSize is the size of the /var/vcap/data/sys/run tmpfs; default "16m" as on a stemcell.
	RunSize string
	// BootTimeout bounds Create's wait for monit to answer; default 30s.
	BootTimeout time.Duration
	// StopTimeout bounds Destroy's `monit stop` of all services; default 30s.
	StopTimeout time.Duration
	// Logger receives one line per decision; nil = no logs.
	Logger *zap.Logger
}

// DefaultMonitInterval is monit's default cycle in a local VM (a stemcell uses 10s; shorter here so that
// restarts of crashed jobs are quick in development and tests).
const DefaultMonitInterval = 2 * time.Second

var vmIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

func (s *Spec) setDefaults() {
	if s.MonitInterval <= 0 {
		s.MonitInterval = DefaultMonitInterval
	}
	if s.RunSize == "" {
		s.RunSize = "16m"
	}
	if s.BootTimeout <= 0 {
		s.BootTimeout = 30 * time.Second
	}
	if s.StopTimeout <= 0 {
		s.StopTimeout = 30 * time.Second
	}
	if s.Logger == nil {
		s.Logger = zap.NewNop()
	}
}

// Validate returns every problem with the spec.
func (s Spec) Validate() error {
	var errs []error
	if !vmIDRE.MatchString(s.ID) {
		errs = append(errs, fmt.Errorf("id %q: must be 1-100 characters of [A-Za-z0-9_.-], starting alphanumeric", s.ID))
	}
	if !s.Address.IsValid() || !s.Address.Addr().Is4() {
		errs = append(errs, fmt.Errorf("address %q: must be an IPv4 address with prefix length", s.Address))
	} else if s.Address.Bits() < 8 || s.Address.Bits() > 30 {
		errs = append(errs, fmt.Errorf("address %s: prefix length must be between 8 and 30", s.Address))
	}
	if !s.Gateway.IsValid() || !s.Gateway.Is4() {
		errs = append(errs, fmt.Errorf("gateway %q: must be an IPv4 address", s.Gateway))
	} else if s.Address.IsValid() {
		if !s.Address.Masked().Contains(s.Gateway) {
			errs = append(errs, fmt.Errorf("gateway %s: not inside %s", s.Gateway, s.Address.Masked()))
		}
		if s.Gateway == s.Address.Addr() {
			errs = append(errs, fmt.Errorf("address %s: is the gateway", s.Address.Addr()))
		}
		if s.Address.Addr() == s.Address.Masked().Addr() || s.Address.Addr() == lastAddr(s.Address) {
			errs = append(errs, fmt.Errorf("address %s: is the network or broadcast address", s.Address))
		}
	}
	if err := validIfName(s.Bridge); err != nil {
		errs = append(errs, fmt.Errorf("bridge: %w", err))
	}
	if !filepath.IsAbs(s.DataDir) {
		errs = append(errs, fmt.Errorf("data dir %q: must be an absolute path", s.DataDir))
	}
	if s.DiskDir != "" && !filepath.IsAbs(s.DiskDir) {
		errs = append(errs, fmt.Errorf("disk dir %q: must be an absolute path or empty", s.DiskDir))
	}
	for i, a := range s.DNS {
		if !a.IsValid() || !a.Is4() {
			errs = append(errs, fmt.Errorf("dns[%d] %q: must be an IPv4 address", i, a))
		}
	}
	return errors.Join(errs...)
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ErrVMExists is returned by Create when a VM (network namespace) with the same id is already present.
var ErrVMExists = errors.New("a VM with this id already exists")

// VM is one running local VM.
type VM struct {
	spec     Spec
	initProc *process // `ip netns exec … unshare …`; nil for an attached VM
	initPID  int      // host pid of the VM's PID 1
	monit    *Monit
	log      *zap.Logger
}

// ID is the VM cid.
func (v *VM) ID() string { return v.spec.ID }

// IP is the VM's address.
func (v *VM) IP() netip.Addr { return v.spec.Address.Addr() }

// Spec is the spec the VM was created with (defaults filled in).
func (v *VM) Spec() Spec { return v.spec }

// InitPID is the host pid of the VM's init (PID 1 inside the VM).
func (v *VM) InitPID() int { return v.initPID }

// Alive reports whether the VM's init is still running.
func (v *VM) Alive() bool { return v.initPID != 0 && processAlive(v.initPID) }

// Monit is the client for the VM's monit.
func (v *VM) Monit() *Monit { return v.monit }

func (v *VM) netnsPath() string { return filepath.Join(netnsDir, v.spec.ID) }

// HostPath maps a path inside the VM (/var/vcap/…) to the host path that backs it, so the director can
// install jobs and packages and read logs without entering the VM. /var/vcap/store maps to the disk dir;
// the sys/run tmpfs exists only inside the VM.
func (v *VM) HostPath(vmPath string) (string, error) {
	clean := filepath.Clean(vmPath)
	rel, err := filepath.Rel(VcapRoot, clean)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || !filepath.IsAbs(clean) {
		return "", fmt.Errorf("%s is not under %s", vmPath, VcapRoot)
	}
	if rel == "store" || strings.HasPrefix(rel, "store/") {
		if v.spec.DiskDir == "" {
			return "", fmt.Errorf("%s: VM %s has no persistent disk", vmPath, v.spec.ID)
		}
		return filepath.Join(v.spec.DiskDir, strings.TrimPrefix(strings.TrimPrefix(rel, "store"), "/")), nil
	}
	for _, tmpfs := range []string{"data/sys/run", "sys/run"} {
		if rel == tmpfs || strings.HasPrefix(rel, tmpfs+"/") {
			return "", fmt.Errorf("%s is on the VM's tmpfs; use Exec", vmPath)
		}
	}
	if rel == "." {
		return v.spec.DataDir, nil
	}
	return filepath.Join(v.spec.DataDir, rel), nil
}

// Create builds and boots a VM: network namespace, veth pair on the bridge, then the VM init in new mount,
// PID and UTS namespaces, which mounts /var/vcap and runs monit. It returns once monit answers. On any
// failure everything already created is torn down again (the data and disk dirs are kept).
func Create(ctx context.Context, spec Spec) (_ *VM, err error) {
	if err := requireRoot(); err != nil {
		return nil, err
	}
	spec.setDefaults()
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("VM spec: %w", err)
	}
	log := spec.Logger.Named("vm").With(zap.String("vm", spec.ID))
	exe, tools, err := preflight(ctx, spec)
	if err != nil {
		return nil, err
	}
	boot, err := prepareLayout(spec.DataDir, spec.MonitInterval)
	if err != nil {
		return nil, fmt.Errorf("creating VM %s: preparing %s: %w", spec.ID, spec.DataDir, err)
	}
	if spec.DiskDir != "" {
		if err := os.MkdirAll(spec.DiskDir, 0o700); err != nil {
			return nil, fmt.Errorf("creating VM %s: persistent disk dir: %w", spec.ID, err)
		}
	}

	v := &VM{spec: spec, log: log}
	v.monit = newMonit(v, boot.password)
	defer func() {
		if err != nil {
			log.Warn("tearing down half-created VM", zap.String("reason", err.Error()))
			_ = teardown(context.Background(), spec.ID, v.initProc, log)
		}
	}()
	steps := networkSteps(spec.ID, vethName(spec.ID), spec.Bridge, spec.Address, spec.Gateway)
	if spec.OnLink.IsValid() && spec.OnLink.Bits() < spec.Address.Bits() && spec.OnLink.Contains(spec.Address.Addr()) {
		steps = append(steps, []string{"ip", "-n", spec.ID, "route", "add", spec.OnLink.Masked().String(), "dev", "eth0"})
	}
	for _, s := range steps {
		if _, err := runOK(ctx, s...); err != nil {
			return nil, fmt.Errorf("creating VM %s network: %w", spec.ID, err)
		}
	}
	// After `ip netns add`, so that a crash never leaves the directory without a namespace for Reap to find.
	if err := writeResolvConf(spec.ID, spec.DNS); err != nil {
		return nil, fmt.Errorf("creating VM %s: writing its resolv.conf: %w", spec.ID, err)
	}
	logPath, err := v.startInit(exe, tools)
	if err != nil {
		return nil, err
	}
	if err := v.boot(ctx, boot, logPath); err != nil {
		return nil, err
	}
	log.Info("VM created", zap.String("address", spec.Address.String()), zap.Int("init_pid", v.initPID),
		zap.String("data_dir", spec.DataDir), zap.String("disk_dir", spec.DiskDir),
		zap.String("reason", "create_vm"))
	return v, nil
}

// preflight checks what creating the VM needs before anything is made: the bridge, a free namespace name, a
// usable host resolv.conf, this executable (the VM init) and the tools, whose paths it returns.
func preflight(ctx context.Context, spec Spec) (string, map[string]string, error) {
	if err := CheckBridgeGateway(ctx, spec.Bridge, spec.Gateway); err != nil {
		return "", nil, fmt.Errorf("creating VM %s: %w", spec.ID, err)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, spec.ID)); err == nil {
		return "", nil, fmt.Errorf("creating VM %s: %w (network namespace %s)", spec.ID, ErrVMExists, spec.ID)
	}
	if err := checkHostResolvConf(); err != nil {
		return "", nil, fmt.Errorf("creating VM %s: %w", spec.ID, err)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("creating VM %s: locating own executable for the VM init: %w", spec.ID, err)
	}
	tools := map[string]string{}
	for _, t := range []string{"ip", "unshare", "nsenter", "monit"} {
		p, err := exec.LookPath(toolPath(t))
		if err != nil {
			return "", nil, fmt.Errorf("creating VM %s: %s not found (install packages iproute2, util-linux, monit): %w", spec.ID, t, err)
		}
		tools[t] = p
	}
	return exe, tools, nil
}

// networkSteps are the `ip` commands that give a VM its network: a namespace ns, a veth pair with the host end on
// the bridge and eth0 inside, loopback up, the address and the default route via the gateway.
func networkSteps(ns, veth, bridge string, addr netip.Prefix, gateway netip.Addr) [][]string {
	return [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "link", "set", veth, "master", bridge},
		{"ip", "link", "set", veth, "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "addr", "add", addr.String(), "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "route", "add", "default", "via", gateway.String()},
	}
}

// startInit starts the VM init (this executable) inside the namespace with its own mount, PID and UTS
// namespaces; it logs to bosh/log/vm-init.log in the data dir, whose path it returns.
func (v *VM) startInit(exe string, tools map[string]string) (string, error) {
	spec := v.spec
	cfg, err := json.Marshal(initConfig{
		Hostname: spec.ID, DataDir: spec.DataDir, DiskDir: spec.DiskDir, RunSize: spec.RunSize, Monit: tools["monit"], Hide: spec.Hide,
	})
	if err != nil {
		return "", err
	}
	logPath := filepath.Join(spec.DataDir, "bosh", "log", "vm-init.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return "", fmt.Errorf("creating VM %s: %w", spec.ID, err)
	}
	cmd := exec.Command(tools["ip"], "netns", "exec", spec.ID,
		tools["unshare"], "--mount", "--pid", "--uts", "--fork", "--mount-proc", "--propagation", "private", exe)
	cmd.Env = []string{hookPath, initEnvVar + "=" + string(cfg)}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logFile, logFile
	v.initProc = newProcess(cmd)
	err = v.initProc.Start()
	logFile.Close()
	if err != nil {
		return "", fmt.Errorf("creating VM %s: %w", spec.ID, err)
	}
	return logPath, nil
}

// boot waits (within BootTimeout, and no longer than the init lives) for the init and its monit, then adds the
// job monit files a reused data dir already holds.
func (v *VM) boot(ctx context.Context, boot bootLayout, logPath string) error {
	spec := v.spec
	bootCtx, cancel := context.WithTimeout(ctx, spec.BootTimeout)
	defer cancel()
	go func() { // stop waiting as soon as the init dies
		select {
		case <-v.initProc.Done():
			cancel()
		case <-bootCtx.Done():
		}
	}()
	var err error
	if v.initPID, err = waitForInit(bootCtx, v.netnsPath()); err == nil {
		err = v.monit.WaitReady(bootCtx)
	}
	if err != nil {
		if v.initProc.Exited() {
			err = fmt.Errorf("VM init exited early; see %s: %s", logPath, tail(logPath, 2048))
		}
		return fmt.Errorf("booting VM %s: %w", spec.ID, err)
	}
	if !boot.deferJobs {
		return nil
	}
	v.log.Info("adding existing job monit files by reload", zap.String("reason",
		"the data dir already holds job monit files and a new VM starts no service until asked"))
	if err = writeMonitRC(spec.DataDir, spec.MonitInterval, true); err == nil {
		err = v.monit.Reload(bootCtx)
	}
	if err != nil {
		return fmt.Errorf("booting VM %s: %w", spec.ID, err)
	}
	return nil
}

// Attach returns a handle on a VM that is already running (e.g. created by a previous director process),
// reading its monit credentials from its data dir.
func Attach(ctx context.Context, spec Spec) (*VM, error) {
	if err := requireRoot(); err != nil {
		return nil, err
	}
	spec.setDefaults()
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("VM spec: %w", err)
	}
	v := &VM{spec: spec, log: spec.Logger.Named("vm").With(zap.String("vm", spec.ID))}
	pid, err := findInit(v.netnsPath())
	if err != nil {
		return nil, fmt.Errorf("attaching VM %s: %w", spec.ID, err)
	}
	v.initPID = pid
	raw, err := os.ReadFile(hostPathIn(spec.DataDir, MonitUserFile))
	if err != nil {
		return nil, fmt.Errorf("attaching VM %s: reading monit credentials: %w", spec.ID, err)
	}
	user, password, ok := strings.Cut(strings.TrimSpace(string(raw)), ":")
	if !ok || user != MonitUser {
		return nil, fmt.Errorf("attaching VM %s: malformed %s", spec.ID, MonitUserFile)
	}
	v.monit = newMonit(v, password)
	if err := v.monit.WaitReady(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// Exec runs argv inside the VM (its network, mount, PID and UTS namespaces) as root with the environment
// the BOSH agent gives hook scripts (PATH=/usr/sbin:/usr/bin:/sbin:/bin) plus env ("K=V" entries), and
// returns its output and exit code (-1 when killed by a signal). err is set only when the command could
// not be run or ctx ended; on ctx's end the command gets SIGTERM and, after DefaultStopGrace, SIGKILL.
func (v *VM) Exec(ctx context.Context, argv []string, env []string, stdin io.Reader) (stdout, stderr []byte, exitCode int, err error) {
	if len(argv) == 0 {
		return nil, nil, -1, errors.New("exec: empty command")
	}
	if !v.Alive() {
		return nil, nil, -1, fmt.Errorf("exec in VM %s: the VM is not running", v.spec.ID)
	}
	full := []string{"nsenter", "--target", strconv.Itoa(v.initPID), "--net", "--mount", "--pid", "--uts", "--wd=/", "--"}
	full = append(full, argv...)
	cmdEnv := append([]string{hookPath, "HOME=/root", "LANG=C"}, env...)
	res, err := run(ctx, full, cmdEnv, stdin, DefaultStopGrace)
	return res.Stdout, res.Stderr, res.ExitCode, err
}

// Destroy stops all monit services (bounded by StopTimeout), kills the VM init — the kernel then kills
// every process of the VM — and removes the veth pair and the network namespace. Data and disk dirs are
// kept. It is idempotent.
func (v *VM) Destroy(ctx context.Context) error {
	if v.Alive() {
		stopCtx, cancel := context.WithTimeout(ctx, v.spec.StopTimeout)
		if err := v.monit.StopAll(stopCtx); err != nil {
			v.log.Warn("monit stop before delete failed; killing anyway", zap.String("reason", err.Error()))
		}
		cancel()
	}
	if err := teardown(ctx, v.spec.ID, v.initProc, v.log); err != nil {
		return err
	}
	v.log.Info("VM destroyed", zap.String("reason", "delete_vm"))
	return nil
}

// List returns the ids of all VMs (network namespaces) on this machine whose id starts with prefix, for
// a director to reconcile after a restart (Attach or Reap them).
func List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Reap tears down every VM whose id starts with prefix (network namespaces left by a director that died),
// killing their processes, and returns their ids. Data and disk dirs are not touched.
func Reap(ctx context.Context, prefix string, log *zap.Logger) ([]string, error) {
	if err := requireRoot(); err != nil {
		return nil, err
	}
	if prefix == "" {
		return nil, errors.New("reap: refusing an empty prefix")
	}
	if log == nil {
		log = zap.NewNop()
	}
	ids, err := List(prefix)
	if err != nil {
		return nil, err
	}
	var reaped []string
	var errs []error
	for _, id := range ids {
		if err := teardown(ctx, id, nil, log.Named("vm")); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("reaped VM", zap.String("vm", id), zap.String("reason", "left over from a previous director"))
		reaped = append(reaped, id)
	}
	return reaped, errors.Join(errs...)
}

// teardown kills everything in the VM's network namespace (its init first), then removes /etc/netns/<id>
// (the VM's resolv.conf) and deletes the veth and the namespace, in that order so that a leftover directory
// always has a namespace by which Reap finds it. Missing pieces are fine.
func teardown(ctx context.Context, id string, initProc *process, log *zap.Logger) error {
	nsPath := filepath.Join(netnsDir, id)
	if err := killNetnsProcesses(ctx, nsPath); err != nil {
		return fmt.Errorf("deleting VM %s: %w", id, err)
	}
	if initProc != nil {
		waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := initProc.Wait(waitCtx); err != nil && waitCtx.Err() != nil {
			initProc.Kill()
		}
		cancel()
	}
	if err := removeVMEtcDir(id); err != nil {
		return fmt.Errorf("deleting VM %s resolv.conf: %w", id, err)
	}
	veth := vethName(id)
	if link, err := linkShow(ctx, veth); err == nil && link != nil {
		if _, err := runOK(ctx, "ip", "link", "del", veth); err != nil {
			if l, _ := linkShow(ctx, veth); l != nil { // may have vanished with the namespace meanwhile
				return fmt.Errorf("deleting VM %s veth: %w", id, err)
			}
		}
	}
	if _, err := os.Stat(nsPath); err == nil {
		if _, err := runOK(ctx, "ip", "netns", "delete", id); err != nil {
			return fmt.Errorf("deleting VM %s network namespace: %w", id, err)
		}
	}
	log.Debug("VM torn down", zap.String("vm", id), zap.String("reason", "teardown"))
	return nil
}

// procInfo is one line of /proc this package cares about.
type procInfo struct {
	pid, ppid int
	comm      string
}

func listProcs() []procInfo {
	entries, _ := os.ReadDir("/proc")
	out := make([]procInfo, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(raw)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		out = append(out, procInfo{pid: pid, ppid: ppid, comm: s[open+1 : closing]})
	}
	return out
}

// netnsProcs lists the host pids of processes in the network namespace pinned at nsPath.
func netnsProcs(nsPath string) ([]int, error) {
	want, err := statNS(nsPath)
	if err != nil {
		return nil, err
	}
	var pids []int
	self := os.Getpid()
	for _, p := range listProcs() {
		if p.pid == self {
			continue // a thread of ours may be dialing monit inside the namespace right now
		}
		if got, err := statNS(fmt.Sprintf("/proc/%d/ns/net", p.pid)); err == nil && got == want {
			pids = append(pids, p.pid)
		}
	}
	return pids, nil
}

// nsPIDIsOne reports whether the host process pid is PID 1 of a nested PID namespace.
func nsPIDIsOne(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			return len(f) >= 2 && f[len(f)-1] == "1"
		}
	}
	return false
}

// findInit returns the host pid of the VM init: the process in the VM's network namespace that is PID 1
// of its own PID namespace.
func findInit(nsPath string) (int, error) {
	pids, err := netnsProcs(nsPath)
	if err != nil {
		return 0, err
	}
	for _, pid := range pids {
		if nsPIDIsOne(pid) {
			return pid, nil
		}
	}
	return 0, errors.New("no VM init found in the network namespace")
}

func waitForInit(ctx context.Context, nsPath string) (int, error) {
	var pid int
	err := retry.Poll(ctx, retry.Options{Interval: 20 * time.Millisecond}, func(context.Context) error {
		var err error
		pid, err = findInit(nsPath)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for the VM init: %w", err)
	}
	return pid, nil
}

// monitPID is the host pid of the monit daemon (a child of the VM init).
func (v *VM) monitPID() (int, error) {
	for _, p := range listProcs() {
		if p.ppid == v.initPID && p.comm == "monit" {
			return p.pid, nil
		}
	}
	return 0, fmt.Errorf("no monit process under the init of VM %s", v.spec.ID)
}

// killNetnsProcesses SIGKILLs every process in the namespace, the VM init first, until none is left.
func killNetnsProcesses(ctx context.Context, nsPath string) error {
	if _, err := os.Stat(nsPath); err != nil {
		return nil
	}
	if pid, err := findInit(nsPath); err == nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	var pids []int
	err := retry.Poll(ctx, retry.Options{Interval: 20 * time.Millisecond, Timeout: 10 * time.Second}, func(context.Context) error {
		var err error
		if pids, err = netnsProcs(nsPath); err != nil || len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return fmt.Errorf("processes %v in %s survive SIGKILL", pids, nsPath)
	})
	if errors.Is(err, retry.ErrTimeout) {
		return fmt.Errorf("processes %v in %s survive SIGKILL", pids, nsPath)
	}
	return err
}

func processAlive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(raw)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] != 'Z'
	}
	return true
}

// Reachable waits until a TCP connect to ip:port succeeds (a fresh bridge port may refuse briefly, and a
// job needs time to listen). Only use it for VM addresses on the bridge or loopback.
func Reachable(ctx context.Context, ip netip.Addr, port int) error {
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(port))
	err := retry.Poll(ctx, retry.Options{Interval: 100 * time.Millisecond}, func(ctx context.Context) error {
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", addr, err)
	}
	return nil
}

// tail returns at most n bytes from the end of a file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}
