package vm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initEnvVar carries the VM init's configuration (JSON) from Create to the re-executed binary. Its
// presence is what turns any binary that links this package into a VM init (see init below).
const initEnvVar = "LOCALBOSH_VM_INIT"

// initConfig is what the VM init needs; paths are host paths.
type initConfig struct {
	Hostname string `json:"hostname"`
	DataDir  string `json:"data_dir"`
	DiskDir  string `json:"disk_dir,omitempty"`
	RunSize  string `json:"run_size"`
	Monit    string `json:"monit"`
	// Hide: host directories covered by an empty read-only tmpfs (Spec.Hide).
	Hide []string `json:"hide,omitempty"`
}

// hookPath is the PATH the BOSH agent gives hook scripts; monit and everything it starts get it too.
const hookPath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

// init turns this process into a VM init when Create re-executed the binary for that purpose. It runs
// before main (and before a test binary's TestMain), so the director binary needs no hidden subcommand.
func init() {
	raw, ok := os.LookupEnv(initEnvVar)
	if !ok {
		return
	}
	os.Exit(vmInit(raw))
}

// vmInit is PID 1 of a VM. It runs inside the VM's network namespace and in fresh mount, PID and UTS
// namespaces (created by unshare). It mounts the VM's /var/vcap, starts monit in the foreground, restarts
// monit when it dies (as runsv does on a stemcell), and reaps every orphan. It never returns on success:
// the director ends a VM by SIGKILLing it, which makes the kernel kill everything in the PID namespace.
func vmInit(raw string) int {
	_ = os.Unsetenv(initEnvVar) // nothing started below must think it is an init
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s vm-init: %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
	var cfg initConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		logf("bad configuration: %v", err)
		return 2
	}
	if os.Getpid() != 1 {
		logf("must run as PID 1 of a new PID namespace, running as %d", os.Getpid())
		return 2
	}
	// PID 1 only receives signals it handles; ignoring them keeps a stray SIGTERM from ending the VM.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
	if err := setupVM(cfg); err != nil {
		logf("setting up the VM: %v", err)
		return 1
	}
	logf("VM %s up: /var/vcap from %s, store from %q", cfg.Hostname, cfg.DataDir, cfg.DiskDir)
	superviseMonit(cfg.Monit, logf)
	return 0
}

// setupVM mounts the VM's directories; the mount namespace is private, so the host sees none of it.
func setupVM(cfg initConfig) error {
	if cfg.Hostname != "" {
		if err := syscall.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("setting hostname: %w", err)
		}
	}
	// Belt and braces: unshare --propagation private already did this.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	if err := os.MkdirAll(VcapRoot, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount(cfg.DataDir, VcapRoot, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting %s on %s: %w", cfg.DataDir, VcapRoot, err)
	}
	if cfg.DiskDir != "" {
		store := filepath.Join(VcapRoot, "store")
		if err := syscall.Mount(cfg.DiskDir, store, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mounting persistent disk %s on %s: %w", cfg.DiskDir, store, err)
		}
	}
	run := filepath.Join(VcapRoot, "data", "sys", "run")
	opts := "mode=0755,size=" + cfg.RunSize
	if err := syscall.Mount("tmpfs", run, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mounting tmpfs on %s: %w", run, err)
	}
	for _, dir := range cfg.Hide {
		// The mounts above keep their sources; only the paths under dir become unreachable.
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		flags := uintptr(syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC)
		if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, "mode=0555,size=4k"); err != nil {
			return fmt.Errorf("hiding %s from the VM: %w", dir, err)
		}
	}
	return nil
}

// superviseMonit runs monit in the foreground, restarts it whenever it exits and reaps all other children
// (processes monit started are re-parented to PID 1 once their ctl script exits).
func superviseMonit(monitBinary string, logf func(string, ...any)) {
	monitPID := 0
	start := func() {
		alignMonitBootTime(filepath.Join(VcapRoot, strings.TrimPrefix(MonitStateFile, VcapRoot+"/")), logf)
		cmd := exec.Command(monitBinary, "-I", "-c", MonitRC)
		cmd.Env = []string{hookPath, "LANG=C", "HOME=/root"}
		cmd.Dir = "/"
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			logf("starting monit: %v", err)
			monitPID = 0
			return
		}
		monitPID = cmd.Process.Pid
		logf("monit started as pid %d", monitPID)
	}
	start()
	lastStart := time.Now()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ECHILD):
			// No children at all: monit could not be started. Try again shortly.
			time.Sleep(time.Second)
		case err != nil:
			logf("wait: %v", err)
			time.Sleep(time.Second)
			continue
		case pid != monitPID:
			continue
		default:
			logf("monit (pid %d) exited: %v", pid, describeWait(ws))
		}
		// Do not spin when monit cannot run (bad monitrc): at most one start per second.
		if d := time.Since(lastStart); d < time.Second {
			time.Sleep(time.Second - d)
		}
		start()
		lastStart = time.Now()
	}
}

func describeWait(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// alignMonitBootTime makes a restarted monit recognise its state file as one from the same boot, so that
// it restores every service's monitoring state instead of applying `onreboot nostart` to all of them.
// Monit stores the boot time it computed (wall clock seconds minus uptime seconds, both truncated) in
// the state file header and compares it with the value it computes at its next start; the
// two truncations make that value flip by one second depending on when monit starts, so a plain restart
// looks like a reboot about half of the time. The init writes the value the new monit is about to
// compute, at a moment well away from either clock's second boundary. State files of another format are
// left alone.
func alignMonitBootTime(stateFile string, logf func(string, ...any)) {
	f, err := os.OpenFile(stateFile, os.O_RDWR, 0)
	if err != nil {
		return // first start: nothing to restore
	}
	defer f.Close()
	var hdr [16]byte
	if n, _ := f.ReadAt(hdr[:], 0); n < len(hdr) {
		return
	}
	if binary.NativeEndian.Uint32(hdr[0:4]) != 0 || binary.NativeEndian.Uint32(hdr[4:8]) != 4 {
		logf("monit state file %s has an unknown format; not aligning its boot time", stateFile)
		return
	}
	var booted [8]byte
	bt := monitBootTime()
	logf("monit state file: boot time %d -> %d", binary.NativeEndian.Uint64(hdr[8:16]), bt)
	binary.NativeEndian.PutUint64(booted[:], uint64(bt))
	if _, err := f.WriteAt(booted[:], 8); err != nil {
		logf("aligning monit state file boot time: %v", err)
	}
}

// monitBootTime is the boot time monit computes when it starts within the next ~80ms.
func monitBootTime() int64 {
	const lo, hi = 20 * time.Millisecond, 900 * time.Millisecond
	safe := func(ts unix.Timespec) bool {
		return time.Duration(ts.Nsec) >= lo && time.Duration(ts.Nsec) < hi
	}
	for {
		var rt, bt unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_REALTIME, &rt)
		_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt)
		if safe(rt) && safe(bt) {
			return rt.Sec - bt.Sec // both truncated, as monit does
		}
		time.Sleep(10 * time.Millisecond)
	}
}
