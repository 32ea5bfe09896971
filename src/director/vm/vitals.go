package vm

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Vitals are a VM's figures in the agent's get_state vitals format, which `bosh vms --vitals` prints: every
// figure a string except the uptime (cloudfoundry/bosh-cli director/vms.go VMInfoVitals; bosh-agent
// platform/vitals/service.go fills them). A namespace VM shares the host's kernel, so load, CPU and swap are the
// host's (as in any container); memory is the resident size of the VM's own processes, uptime that of its init,
// and the disks are the file systems holding the VM's root, ephemeral and persistent directories.
type Vitals struct {
	CPU    VitalsCPU             `json:"cpu"`
	Mem    VitalsMem             `json:"mem"`
	Swap   VitalsMem             `json:"swap"`
	Uptime VitalsUptime          `json:"uptime"`
	Load   []string              `json:"load"`
	Disk   map[string]VitalsDisk `json:"disk"`
}

// VitalsCPU is CPU use in percent over the sample.
type VitalsCPU struct {
	User string `json:"user"`
	Sys  string `json:"sys"`
	Wait string `json:"wait"`
}

// VitalsMem is used memory in kB and percent of the host's.
type VitalsMem struct {
	KB      string `json:"kb"`
	Percent string `json:"percent"`
}

// VitalsUptime is seconds since the VM booted.
type VitalsUptime struct {
	Secs uint64 `json:"secs"`
}

// VitalsDisk is used space and inodes in percent.
type VitalsDisk struct {
	Percent      string `json:"percent"`
	InodePercent string `json:"inode_percent"`
}

// cpuTimes are the aggregate jiffies of /proc/stat's cpu line.
type cpuTimes struct{ user, nice, system, idle, iowait, irq, softirq, steal uint64 }

func (c cpuTimes) total() uint64 {
	return c.user + c.nice + c.system + c.idle + c.iowait + c.irq + c.softirq + c.steal
}

// parseCPULine reads the first ("cpu ") line of /proc/stat.
func parseCPULine(stat string) (cpuTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	v := make([]uint64, 8)
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %w", err)
		}
		v[i] = n
	}
	return cpuTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}, nil
}

// cpuPercent is the share of user (with nice), system (with irq) and iowait time between two samples.
func cpuPercent(a, b cpuTimes) VitalsCPU {
	dt := float64(b.total() - a.total())
	if dt <= 0 {
		return VitalsCPU{User: "0.0", Sys: "0.0", Wait: "0.0"}
	}
	pct := func(x, y uint64) string { return strconv.FormatFloat(100*float64(y-x)/dt, 'f', 1, 64) }
	return VitalsCPU{
		User: pct(a.user+a.nice, b.user+b.nice),
		Sys:  pct(a.system+a.irq+a.softirq, b.system+b.irq+b.softirq),
		Wait: pct(a.iowait, b.iowait),
	}
}

// parseMeminfo returns the /proc/meminfo fields in kB.
func parseMeminfo(s string) map[string]uint64 {
	out := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err == nil {
			out[k] = n
		}
	}
	return out
}

// memVitals is used kB and its percent of total.
func memVitals(usedKB, totalKB uint64) VitalsMem {
	p := 0.0
	if totalKB > 0 {
		p = 100 * float64(usedKB) / float64(totalKB)
	}
	return VitalsMem{KB: strconv.FormatUint(usedKB, 10), Percent: strconv.FormatFloat(p, 'f', 0, 64)}
}

// diskVitals is the used share of blocks and inodes of a statfs result.
func diskVitals(blocks, bfree, files, ffree uint64) VitalsDisk {
	pct := func(used, total uint64) string {
		if total == 0 {
			return "0"
		}
		return strconv.FormatUint((100*used+total/2)/total, 10)
	}
	return VitalsDisk{Percent: pct(blocks-bfree, blocks), InodePercent: pct(files-ffree, files)}
}

// rssKB sums VmRSS of the given processes.
func rssKB(pids []int) uint64 {
	var sum uint64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		sum += parseMeminfo(string(b))["VmRSS"]
	}
	return sum
}

// startSecs is when a process started, in seconds after boot (/proc/PID/stat field 22, in clock ticks of 100 Hz,
// the value Linux exports to user space on every architecture it runs on).
func startSecs(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	return float64(ticks) / 100, err
}

func statfs(path string) (VitalsDisk, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return VitalsDisk{}, err
	}
	return diskVitals(st.Blocks, st.Bfree, st.Files, st.Ffree), nil
}

// HostCPU samples the host's CPU use over sample: one figure for every VM, since they share the kernel.
func HostCPU(ctx context.Context, sample time.Duration) (VitalsCPU, error) {
	read := func() (cpuTimes, error) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return cpuTimes{}, err
		}
		return parseCPULine(string(b))
	}
	a, err := read()
	if err != nil {
		return VitalsCPU{}, err
	}
	select {
	case <-ctx.Done():
		return VitalsCPU{}, ctx.Err()
	case <-time.After(sample):
	}
	b, err := read()
	if err != nil {
		return VitalsCPU{}, err
	}
	return cpuPercent(a, b), nil
}

// Vitals reads the VM's figures now, with cpu from HostCPU.
func (v *VM) Vitals(cpu VitalsCPU) (Vitals, error) {
	read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }
	mem := parseMeminfo(read("/proc/meminfo"))
	pids, err := netnsProcs(v.netnsPath())
	if err != nil {
		return Vitals{}, err
	}
	out := Vitals{CPU: cpu, Mem: memVitals(rssKB(pids), mem["MemTotal"]),
		Swap: memVitals(mem["SwapTotal"]-mem["SwapFree"], mem["SwapTotal"]), Load: strings.Fields(read("/proc/loadavg"))}
	if len(out.Load) > 3 {
		out.Load = out.Load[:3]
	}
	if up, err := strconv.ParseFloat(strings.Fields(read("/proc/uptime") + " 0")[0], 64); err == nil {
		if st, err := startSecs(v.initPID); err == nil && up > st {
			out.Uptime.Secs = uint64(up - st)
		}
	}
	out.Disk = map[string]VitalsDisk{}
	for name, dir := range map[string]string{"system": "/", "ephemeral": v.spec.DataDir, "persistent": v.spec.DiskDir} {
		if dir == "" {
			continue
		}
		if d, err := statfs(dir); err == nil {
			out.Disk[name] = d
		}
	}
	return out, nil
}
