package deployer

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/director/state"
)

func TestDetectProblems(t *testing.T) {
	insts := []state.Instance{
		{Group: "etcd", ID: "a", Index: 0, VMCID: "vm-a", DiskCID: "disk-a", DiskSize: 1024},
		{Group: "etcd", ID: "b", Index: 1, VMCID: "vm-b", DiskCID: "disk-b", DiskSize: 1024},
		{Group: "etcd", ID: "c", Index: 2, VMCID: "vm-c"},
		{Group: "etcd", ID: "d", Index: 3, DiskCID: "disk-d", State: "detached"},
		{Group: "smoke", ID: "e", Index: 0},
	}
	for _, tc := range []struct {
		name string
		obs  map[string]observation
		want []string
	}{
		{"all healthy", map[string]observation{"a": {true, true, true}, "b": {true, true, true}, "c": {true, true, false}, "d": {false, false, true}}, nil},
		{"VM gone", map[string]observation{"a": {false, false, true}, "b": {true, true, true}, "c": {true, true, false}, "d": {false, false, true}},
			[]string{"missing_vm etcd VM for 'etcd/a (0)' with cloud ID 'vm-a' missing."}},
		{"monit silent", map[string]observation{"a": {true, true, true}, "b": {true, false, true}, "c": {true, true, false}, "d": {false, false, true}},
			[]string{"unresponsive_agent etcd etcd/b (1) (vm-b) is not responding"}},
		{"VM and disk gone; a detached instance's disk gone", map[string]observation{"a": {false, false, false}, "b": {true, true, true}, "c": {true, true, false}, "d": {false, false, false}},
			[]string{"missing_vm etcd VM for 'etcd/a (0)' with cloud ID 'vm-a' missing.", "missing_disk etcd Disk 'disk-a' (etcd/a (0), 1024M) is missing",
				"missing_disk etcd Disk 'disk-d' (etcd/d (3), 0M) is missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := detectProblems(insts, func(i state.Instance) observation { return tc.obs[i.ID] })
			var lines []string
			for n, p := range got {
				require.Equal(t, n+1, p.ID, "ids count from 1")
				require.Equal(t, problemResolutions[p.Type], p.Resolutions)
				lines = append(lines, p.Type+" "+p.InstanceGroup+" "+p.Description)
			}
			require.Equal(t, tc.want, lines)
		})
	}
}

func TestChooseResolution(t *testing.T) {
	str := func(s string) *string { return &s }
	missingVM := Problem{ID: 1, Type: "missing_vm", Resolutions: problemResolutions["missing_vm"]}
	unresponsive := Problem{ID: 2, Type: "unresponsive_agent", Resolutions: problemResolutions["unresponsive_agent"]}
	missingDisk := Problem{ID: 3, Type: "missing_disk", Resolutions: problemResolutions["missing_disk"]}
	for _, tc := range []struct {
		p    Problem
		name *string
		want string
		err  string
	}{
		{missingVM, nil, "recreate_vm", ""},
		{unresponsive, nil, "recreate_vm", ""},
		{missingDisk, nil, "delete_disk_reference", ""},
		{unresponsive, str("reboot_vm"), "reboot_vm", ""},
		{missingVM, str("ignore"), "ignore", ""},
		{missingVM, str("reboot_vm"), "", "problem 1 (missing_vm) has no resolution 'reboot_vm': use one of [ignore recreate_vm"},
	} {
		got, err := chooseResolution(tc.p, tc.name)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
}
