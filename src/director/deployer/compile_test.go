package deployer

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// testRelease makes a release whose packages (in dependency order) have the given dependencies.
func testRelease(name string, pkgs ...[]string) *release.Release {
	rel := &release.Release{Manifest: release.Manifest{Name: name}}
	for _, p := range pkgs {
		rel.Packages = append(rel.Packages, &release.Package{Name: p[0], Version: "1", Dependencies: p[1:]})
	}
	return rel
}

func needsOf(rel *release.Release) []*need {
	var out []*need
	for _, p := range rel.Packages {
		out = append(out, &need{rel, p})
	}
	return out
}

func TestInDependencyOrder(t *testing.T) {
	// golang <- a, golang <- b, a+b <- app; c stands alone.
	rel := testRelease("r", []string{"golang"}, []string{"a", "golang"}, []string{"b", "golang"}, []string{"app", "a", "b"}, []string{"c"})
	for _, workers := range []int{1, 2, 8} {
		var mu sync.Mutex
		var finished []string
		var running, peak atomic.Int32
		err := inDependencyOrder(context.Background(), needsOf(rel), workers, func(_ context.Context, n *need) error {
			mu.Lock()
			for _, dep := range n.pkg.Dependencies {
				assert.Contains(t, finished, dep, "%s starts after its dependency %s (workers %d)", n.pkg.Name, dep, workers)
			}
			mu.Unlock()
			if r := running.Add(1); r > peak.Load() {
				peak.Store(r)
			}
			time.Sleep(10 * time.Millisecond)
			running.Add(-1)
			mu.Lock()
			finished = append(finished, n.pkg.Name)
			mu.Unlock()
			return nil
		})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"golang", "a", "b", "app", "c"}, finished)
		require.LessOrEqual(t, int(peak.Load()), workers, "at most workers at a time")
	}
}

func TestInDependencyOrderStopsAtTheFirstError(t *testing.T) {
	rel := testRelease("r", []string{"golang"}, []string{"a", "golang"}, []string{"app", "a"})
	var ran []string
	err := inDependencyOrder(context.Background(), needsOf(rel), 1, func(_ context.Context, n *need) error {
		ran = append(ran, n.pkg.Name)
		if n.pkg.Name == "golang" {
			return errors.New("packaging script failed")
		}
		return nil
	})
	require.EqualError(t, err, "packaging script failed")
	require.Equal(t, []string{"golang"}, ran, "dependents of a failed package never start")
}

func TestNeededPackagesAndOrder(t *testing.T) {
	rel := testRelease("r", []string{"golang"}, []string{"etcd_ctl", "golang"}, []string{"helper", "golang"}, []string{"unused"})
	job := &release.Job{Name: "etcd", Spec: &release.JobSpec{Packages: []string{"etcd_ctl"}}}
	gp := &groupPlan{jobs: []*jobPlan{{rel: rel, job: job}}}
	needed := neededPackages([]*groupPlan{gp})
	require.Equal(t, []string{"r/etcd_ctl", "r/golang"}, slices.Sorted(mapKeys(needed)), "the jobs' packages and their dependencies, nothing else")
	list := []*need{needed["r/etcd_ctl"], needed["r/golang"]}
	sortByDependencyOrder(list)
	require.Equal(t, "golang", list[0].pkg.Name)
	require.Equal(t, `[["golang","1"]]`, dependencyKey(rel, needed["r/etcd_ctl"].pkg))
}
