package deployer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// TestInstallPackagesAndJob installs into a VM data dir laid out as src/director/vm makes it, twice, and checks
// the /var/vcap the jobs see: modes, links, pruning.
func TestInstallPackagesAndJob(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"jobs", "packages", "monit/job", "data"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	compiled := func(name, digest string) *compiledPackage {
		dir := filepath.Join(t.TempDir(), digest)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "bin", name), []byte("#!/bin/sh\n"), 0o755))
		return &compiledPackage{Name: name, dir: dir}
	}
	ctx := context.Background()
	require.NoError(t, installPackages(ctx, root, map[string]*compiledPackage{"etcd_ctl": compiled("etcd_ctl", "d1"), "old": compiled("old", "o1")}))
	require.FileExists(t, filepath.Join(root, "packages", "old", "bin", "old"))
	require.NoError(t, installPackages(ctx, root, map[string]*compiledPackage{"etcd_ctl": compiled("etcd_ctl", "d2")}))
	require.FileExists(t, filepath.Join(root, "packages", "etcd_ctl", "bin", "etcd_ctl"))
	require.NoFileExists(t, filepath.Join(root, "packages", "old"), "a package no job lists any more is removed")
	target, err := os.Readlink(filepath.Join(root, "packages", "etcd_ctl"))
	require.NoError(t, err)
	require.Equal(t, "../data/packages/etcd_ctl/d2", target, "relative, so it resolves inside the VM too")

	jp := &jobPlan{job: &release.Job{Name: "etcd", Spec: &release.JobSpec{Packages: []string{"etcd_ctl"}}}}
	files := map[string][]byte{"bin/etcd_ctl": []byte("#!/bin/bash\n"), "config/etcd_ctl.json": []byte("{}"), "monit": []byte("check process etcd\n")}
	monit := filepath.Join(root, "monit", "job", "0000_etcd.monitrc")
	require.NoError(t, installJob(root, jp, files, "v1", monit))
	require.NoError(t, installJob(root, jp, files, "v2", monit))
	job := filepath.Join(root, "jobs", "etcd")
	for rel, mode := range map[string]os.FileMode{"bin/etcd_ctl": 0o750, "config/etcd_ctl.json": 0o640} {
		fi, err := os.Stat(filepath.Join(job, rel))
		require.NoError(t, err)
		require.Equal(t, mode, fi.Mode().Perm(), rel)
	}
	link, err := os.Readlink(filepath.Join(job, "packages", "etcd_ctl"))
	require.NoError(t, err)
	require.Equal(t, "/var/vcap/packages/etcd_ctl", link)
	versions, err := os.ReadDir(filepath.Join(root, "data", "jobs", "etcd"))
	require.NoError(t, err)
	require.Len(t, versions, 1, "older versions of the job are pruned")
	require.Equal(t, "v2", versions[0].Name())
	require.DirExists(t, filepath.Join(root, "data", "sys", "log", "etcd"))
	require.DirExists(t, filepath.Join(root, "data", "etcd"))
	b, err := os.ReadFile(monit)
	require.NoError(t, err)
	require.Equal(t, "check process etcd\n", string(b))
}
