package deployer

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/director/manifest"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// errandPlan: service group etcd (jobs etcd, smoke-tests with bin/run) with instances e0 (started), e1 (stopped),
// e2 (no VM); errand group acceptance-tests (job acceptance-tests with bin/run) with instances a0, a1.
func errandPlan() (*plan, map[string]state.Instance) {
	jp := func(name string, run bool) *jobPlan {
		return &jobPlan{job: &release.Job{Name: name}, hasRun: run}
	}
	etcd := &groupPlan{g: &manifest.InstanceGroup{Name: "etcd", Lifecycle: manifest.LifecycleService}, jobs: []*jobPlan{jp("etcd", false), jp("smoke-tests", true)}}
	acc := &groupPlan{g: &manifest.InstanceGroup{Name: "acceptance-tests", Lifecycle: manifest.LifecycleErrand}, jobs: []*jobPlan{jp("acceptance-tests", true)}}
	saved := map[string]state.Instance{}
	for i, id := range []string{"e0", "e1", "e2"} {
		inst := state.Instance{Group: "etcd", ID: id, Index: i, State: "started", VMCID: "vm-" + id}
		switch id {
		case "e1":
			inst.State = "stopped"
		case "e2":
			inst.VMCID = ""
		}
		saved[id] = inst
		etcd.instances = append(etcd.instances, &instancePlan{group: etcd, inst: state.Instance{Group: "etcd", ID: id, Index: i, State: "started"}})
	}
	for i, id := range []string{"a0", "a1"} {
		acc.instances = append(acc.instances, &instancePlan{group: acc, inst: state.Instance{Group: "acceptance-tests", ID: id, Index: i, State: "started"}})
	}
	return &plan{groups: []*groupPlan{etcd, acc}}, saved
}

func TestSelectErrandRuns(t *testing.T) {
	hasVM := func(i state.Instance) bool { return i.VMCID != "" }
	for _, tc := range []struct {
		name    string
		errand  string
		targets []ErrandTarget
		want    []string // "id/job" with "+" for a created VM
		err     string
	}{
		{name: "a colocated errand on a stopped instance fails", errand: "smoke-tests", err: "Instance 'etcd/e1 (1)' is stopped"},
		{name: "colocated, one selected instance", errand: "smoke-tests", targets: []ErrandTarget{{Group: "etcd", ID: "e0"}}, want: []string{"e0/smoke-tests"}},
		{name: "colocated, group/first", errand: "smoke-tests", targets: []ErrandTarget{{Group: "etcd", ID: "first"}}, want: []string{"e0/smoke-tests"}},
		{name: "instances without a VM are skipped", errand: "smoke-tests", targets: []ErrandTarget{{Group: "etcd", ID: "e2"}}, err: "Errand 'smoke-tests' doesn't exist in deployment 'd'"},
		{name: "an errand group's job: its first instance, on a VM made for it", errand: "acceptance-tests", want: []string{"a0/acceptance-tests+"}},
		{name: "an errand group by name with targets", errand: "acceptance-tests", targets: []ErrandTarget{{Group: "acceptance-tests"}},
			err: "errand 'acceptance-tests' is an errand instance group: instances cannot be selected"},
		{name: "a job without bin/run is no errand", errand: "etcd", err: "Errand 'etcd' doesn't exist in deployment 'd'"},
		{name: "unknown", errand: "nope", err: "Errand 'nope' doesn't exist in deployment 'd'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, saved := errandPlan()
			runs, err := selectErrandRuns(p, saved, "d", tc.errand, tc.targets, hasVM)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, r := range runs {
				s := r.ip.inst.ID + "/" + r.job.job.Name
				if r.create {
					s += "+"
				}
				got = append(got, s)
			}
			require.Equal(t, tc.want, got)
			for _, r := range runs {
				if !r.create {
					require.True(t, strings.HasPrefix(r.ip.inst.VMCID, "vm-"), "service instances carry their saved state")
				}
			}
		})
	}
}
