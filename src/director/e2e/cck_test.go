package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/vm"
)

// TestCloudCheck breaks instances the ways `bosh cck` finds — a VM gone, a disk gone, a monit that does not
// answer — and resolves them as `bosh cck --auto` and `--resolution reboot_vm` send it.
func TestCloudCheck(t *testing.T) {
	d := startDirector(t)
	ctx := context.Background()
	d.setup()
	d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 2, port: 8080})))
	insts := d.instances()
	s0, s1 := insts["servers/0"], insts["servers/1"]

	d.mustTask(d.c.ScanForProblems(ctx, "e2e"))
	probs, err := d.c.Problems(ctx, "e2e")
	require.NoError(t, err)
	require.Empty(t, probs, "a healthy deployment")

	// servers/0: its VM is killed and its disk directory moved away (the test keeps it; nothing is deleted);
	// servers/1: its monit is frozen.
	_, err = vm.Reap(ctx, *s0.VMCID, zap.NewNop())
	require.NoError(t, err)
	moved := filepath.Join(t.TempDir(), "disk")
	require.NoError(t, os.Rename(d.dep.DiskDir(s0.DiskCIDs[0]), moved))
	monit := monitPID(t, *s1.VMCID)
	require.NoError(t, syscall.Kill(monit, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(monit, syscall.SIGCONT) })

	d.mustTask(d.c.ScanForProblems(ctx, "e2e"))
	probs, err = d.c.Problems(ctx, "e2e")
	require.NoError(t, err)
	byType := map[string]int{}
	for _, p := range probs {
		byType[p.Type] = p.ID
		require.Equal(t, "servers", p.InstanceGroup)
		require.Equal(t, "ignore", *p.Resolutions[0].Name, "skip is always first")
	}
	require.Len(t, probs, 3, "%+v", probs)
	require.Contains(t, byType, "missing_vm")
	require.Contains(t, byType, "missing_disk")
	require.Contains(t, byType, "unresponsive_agent")
	for _, p := range probs {
		switch p.Type {
		case "missing_vm":
			require.Equal(t, "VM for 'servers/"+s0.ID+" (0)' with cloud ID '"+*s0.VMCID+"' missing.", p.Description)
		case "unresponsive_agent":
			require.Equal(t, "servers/"+s1.ID+" (1) ("+*s1.VMCID+") is not responding", p.Description)
			var names []string
			for _, r := range p.Resolutions {
				names = append(names, *r.Name)
			}
			require.Contains(t, names, "reboot_vm")
		}
	}

	reboot := "reboot_vm"
	d.mustTask(d.c.ResolveProblems(ctx, "e2e", map[string]*string{
		strconv.Itoa(byType["missing_vm"]): nil, strconv.Itoa(byType["missing_disk"]): nil, strconv.Itoa(byType["unresponsive_agent"]): &reboot,
	}))
	insts = d.instances()
	n0, n1 := insts["servers/0"], insts["servers/1"]
	require.Equal(t, "running", *n0.JobState)
	require.Equal(t, "running", *n1.JobState)
	require.NotEqual(t, *s0.VMCID, *n0.VMCID, "a recreated VM")
	require.NotEqual(t, s0.DiskCIDs, n0.DiskCIDs, "the missing disk's reference is gone; the deploy gave it a new disk")
	require.Equal(t, *s1.VMCID, *n1.VMCID, "a reboot keeps the VM")
	require.Equal(t, s1.DiskCIDs, n1.DiskCIDs)
	require.NotEqual(t, monit, monitPID(t, *n1.VMCID), "a new monit after the reboot")
	_, err = os.Stat(moved)
	require.NoError(t, err)

	d.mustTask(d.c.ScanForProblems(ctx, "e2e"))
	probs, err = d.c.Problems(ctx, "e2e")
	require.NoError(t, err)
	require.Empty(t, probs, "everything resolved")

	// A resolution the problem does not offer fails the task and changes nothing.
	_, err = vm.Reap(ctx, *n0.VMCID, zap.NewNop())
	require.NoError(t, err)
	d.mustTask(d.c.ScanForProblems(ctx, "e2e"))
	probs, err = d.c.Problems(ctx, "e2e")
	require.NoError(t, err)
	require.Len(t, probs, 1)
	id, err := d.c.ResolveProblems(ctx, "e2e", map[string]*string{strconv.Itoa(probs[0].ID): &reboot})
	require.NoError(t, err)
	task, err := d.wait(id)
	require.Error(t, err)
	require.Contains(t, task.Result, "has no resolution 'reboot_vm'")
	d.mustTask(d.c.DeleteDeployment(ctx, "e2e", true))
}

// monitPID finds the monit of a VM among the processes of its network namespace.
func monitPID(t *testing.T, cid string) int {
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	want, err := os.Stat("/run/netns/" + cid)
	require.NoError(t, err)
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "monit" {
			continue
		}
		ns, err := os.Stat("/proc/" + e.Name() + "/ns/net")
		if err == nil && os.SameFile(ns, want) {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	t.Fatalf("no monit in VM %s", cid)
	return 0
}
