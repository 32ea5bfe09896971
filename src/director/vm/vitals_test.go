package vm

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCPULineAndPercent(t *testing.T) {
	a, err := parseCPULine("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n")
	require.NoError(t, err)
	b, err := parseCPULine("cpu  160 20 70 870 70 10 0 0 0 0\n")
	require.NoError(t, err)
	// 200 jiffies passed: user+nice 80 → 40 %, system+irq 30 → 15 %, iowait 20 → 10 %.
	require.Equal(t, VitalsCPU{User: "40.0", Sys: "15.0", Wait: "10.0"}, cpuPercent(a, b))
	require.Equal(t, VitalsCPU{User: "0.0", Sys: "0.0", Wait: "0.0"}, cpuPercent(a, a), "no time passed")
	_, err = parseCPULine("intr 1 2 3")
	require.Error(t, err)
}

func TestMemAndDiskVitals(t *testing.T) {
	m := parseMeminfo("MemTotal:       16000000 kB\nMemFree:  1 kB\nSwapTotal: 2000 kB\nSwapFree: 500 kB\nHugePages_Total:       0\n")
	require.Equal(t, uint64(16000000), m["MemTotal"])
	require.Equal(t, uint64(0), m["HugePages_Total"])
	for _, tc := range []struct {
		used, total uint64
		want        VitalsMem
	}{
		{1500, 2000, VitalsMem{KB: "1500", Percent: "75"}},
		{0, 0, VitalsMem{KB: "0", Percent: "0"}},
		{400000, 16000000, VitalsMem{KB: "400000", Percent: "2"}},
	} {
		require.Equal(t, tc.want, memVitals(tc.used, tc.total))
	}
	for _, tc := range []struct {
		blocks, bfree, files, ffree uint64
		want                        VitalsDisk
	}{
		{100, 60, 1000, 990, VitalsDisk{Percent: "40", InodePercent: "1"}},
		{3, 0, 0, 0, VitalsDisk{Percent: "100", InodePercent: "0"}},
		{1000, 1000, 10, 10, VitalsDisk{Percent: "0", InodePercent: "0"}},
	} {
		require.Equal(t, tc.want, diskVitals(tc.blocks, tc.bfree, tc.files, tc.ffree))
	}
}

// TestProcFiguresOfThisMachine reads the real /proc and statfs the vitals are made of.
func TestProcFiguresOfThisMachine(t *testing.T) {
	b, err := os.ReadFile("/proc/stat")
	require.NoError(t, err)
	c, err := parseCPULine(string(b))
	require.NoError(t, err)
	require.Positive(t, c.total())
	require.Positive(t, rssKB([]int{os.Getpid()}), "this test process has resident memory")
	st, err := startSecs(os.Getpid())
	require.NoError(t, err)
	up, _ := os.ReadFile("/proc/uptime")
	upSecs, err := strconv.ParseFloat(strings.Fields(string(up))[0], 64)
	require.NoError(t, err)
	require.LessOrEqual(t, st, upSecs, "a process started after boot")
	d, err := statfs("/")
	require.NoError(t, err)
	require.NotEmpty(t, d.Percent)
}
