package deployer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/director/manifest"
	"github.com/etcd-release/etcd-release/src/director/state"
)

func TestUpdateBatches(t *testing.T) {
	g := func(name string, serial bool, lifecycle string) *groupPlan {
		return &groupPlan{g: &manifest.InstanceGroup{Name: name, Lifecycle: lifecycle, Update: manifest.Update{Serial: serial}}}
	}
	const svc, errand = manifest.LifecycleService, manifest.LifecycleErrand
	for _, tc := range []struct {
		name   string
		groups []*groupPlan
		want   string // batches separated by " | ", groups of a batch by ","
	}{
		{"all serial: one at a time", []*groupPlan{g("a", true, svc), g("b", true, svc)}, "a | b"},
		{"consecutive parallel groups form one batch", []*groupPlan{g("a", false, svc), g("b", false, svc), g("c", true, svc), g("d", false, svc)}, "a,b | c | d"},
		{"a serial group splits parallel runs", []*groupPlan{g("a", false, svc), g("b", true, svc), g("c", false, svc), g("d", false, svc)}, "a | b | c,d"},
		{"errand groups are skipped, without splitting a batch", []*groupPlan{g("a", false, svc), g("e", true, errand), g("b", false, svc)}, "a,b"},
		{"nothing to update", []*groupPlan{g("e", true, errand)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, b := range updateBatches(tc.groups) {
				var names []string
				for _, gp := range b {
					names = append(names, gp.g.Name)
				}
				got = append(got, strings.Join(names, ","))
			}
			require.Equal(t, tc.want, strings.Join(got, " | "))
		})
	}
}

func TestAZOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bootAZ string
		azs    []string
		want   []string
	}{
		{"the bootstrap AZ first, then by name", "z2", []string{"z3", "z1", "z2"}, []string{"z2", "z1", "z3"}},
		{"instances without an AZ right after the bootstrap AZ", "z2", []string{"z1", "", "z2"}, []string{"z2", "", "z1"}},
		{"the bootstrap AZ has no changes", "z2", []string{"z3", "z1"}, []string{"z1", "z3"}},
		{"no AZs at all", "", []string{""}, []string{""}},
		{"bootstrap without an AZ", "", []string{"z1", ""}, []string{"", "z1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, azOrder(tc.bootAZ, tc.azs))
		})
	}
}

// planned makes instance plans from "id/az" specs; a trailing "*" marks the bootstrap instance.
func planned(specs ...string) []*instancePlan {
	var out []*instancePlan
	for i, s := range specs {
		boot := strings.HasSuffix(s, "*")
		id, az, _ := strings.Cut(strings.TrimSuffix(s, "*"), "/")
		out = append(out, &instancePlan{inst: state.Instance{Group: "g", ID: id, Index: i, AZ: az, Bootstrap: boot}})
	}
	return out
}

func TestUpdateWaves(t *testing.T) {
	count := func(n int) manifest.Count { return manifest.Count{N: n} }
	pct := func(n int) manifest.Count { return manifest.Count{N: n, Percent: true} }
	for _, tc := range []struct {
		name     string
		changed  []*instancePlan
		canaries manifest.Count
		inFlight manifest.Count
		want     []string // "az canary? width: ids"
	}{
		{"one canary, then one at a time, AZ by AZ", planned("c/z1", "a/z2*", "b/z3"), count(1), count(1),
			[]string{"z2 canary 1: a", "z1 1: c", "z3 1: b"}},
		{"bootstrap first, then by uuid, not by index", planned("d/z1", "b/z1", "a/z1", "c/z1*"), count(1), count(2),
			[]string{"z1 canary 2: c", "z1 2: a b d"}},
		{"canaries only in the first AZ", planned("a/z1*", "b/z1", "c/z2", "d/z2"), count(2), count(5),
			[]string{"z1 canary 2: a b", "z2 2: c d"}},
		{"no canaries", planned("a/z1*", "b/z1"), count(0), count(1), []string{"z1 1: a b"}},
		{"more canaries than instances", planned("a/z1*", "b/z1"), count(5), count(1), []string{"z1 canary 1: a b"}},
		{"percentages count the AZ's changed instances and round down; max_in_flight at least 1", planned("a/z1*", "b/z1", "c/z1", "d/z1", "e/z2"), pct(50), pct(50),
			[]string{"z1 canary 2: a b", "z1 2: c d", "z2 1: e"}},
		{"instances without an AZ", planned("a/*", "b/"), count(1), count(1), []string{" canary 1: a", " 1: b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, w := range updateWaves(tc.changed, bootstrapAZ(tc.changed), manifest.Update{Canaries: tc.canaries, MaxInFlight: tc.inFlight}) {
				var ids []string
				for _, ip := range w.instances {
					ids = append(ids, ip.inst.ID)
				}
				kind := ""
				if w.canary {
					kind = " canary"
				}
				got = append(got, fmt.Sprintf("%s%s %d: %s", w.az, kind, w.width, strings.Join(ids, " ")))
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestUpdateDrainArgs(t *testing.T) {
	applied := &state.Applied{ConfigHash: "h1", Packages: map[string]string{"etcd_ctl": "1", "golang": "1"}}
	for _, tc := range []struct {
		name             string
		want             *state.Applied
		diskNow, diskNxt int
		args             []string
	}{
		{"nothing but a restart", &state.Applied{ConfigHash: "h1", Packages: map[string]string{"etcd_ctl": "1", "golang": "1"}}, 1024, 1024,
			[]string{"job_changed", "hash_unchanged"}},
		{"configuration changed", &state.Applied{ConfigHash: "h2", Packages: map[string]string{"etcd_ctl": "1", "golang": "1"}}, 1024, 1024,
			[]string{"job_changed", "hash_changed"}},
		{"changed and added packages, sorted", &state.Applied{ConfigHash: "h1", Packages: map[string]string{"etcd_ctl": "2", "golang": "1", "consul": "1"}}, 1024, 1024,
			[]string{"job_changed", "hash_unchanged", "consul", "etcd_ctl"}},
		{"a disk change is a shutdown drain", &state.Applied{ConfigHash: "h2", Packages: map[string]string{"etcd_ctl": "2"}}, 1024, 2048,
			[]string{"job_shutdown", "hash_unchanged"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			da := updateDrainArgs(applied, tc.want, tc.diskNow, tc.diskNxt)
			require.Equal(t, tc.args, da.args)
			require.Equal(t, tc.diskNow, da.diskNow)
			require.Equal(t, tc.diskNxt, da.diskNext)
		})
	}
	require.Equal(t, []string{"BOSH_VM_NEXT_STATE=delete", "BOSH_INSTANCE_NEXT_STATE=keep", "BOSH_DEPLOYMENT_NEXT_STATE=keep"}, nextState("delete", "keep", "keep"))
}

func TestMatchProviders(t *testing.T) {
	providers := []provider{{name: "etcd", typ: "etcd"}, {name: "etcd_z2", typ: "etcd"}, {name: "conn", typ: "db"}}
	names := func(ps []provider) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.name)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		typ      string
		explicit bool
		from     string
		want     []string
	}{
		{"implicit: by type only, deployment-wide", "etcd", false, "anything", []string{"etcd", "etcd_z2"}},
		{"explicit: type and name", "etcd", true, "etcd_z2", []string{"etcd_z2"}},
		{"explicit: the name must be of the type", "db", true, "etcd", nil},
		{"no provider of the type", "consul", false, "consul", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, names(matchProviders(providers, tc.typ, tc.explicit, tc.from)))
		})
	}
}
