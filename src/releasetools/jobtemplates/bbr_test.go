package jobtemplates

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// TestBBREtcdJob renders the bbr-etcd job as BOSH would on the bootstrap and another instance: the backup
// script snapshots on the bootstrap instance only, every script is valid bash, the metadata is YAML bbr can
// read, and the job refuses to render without bbr.backup_one_restore_all (which bbr reads from the manifest).
func TestBBREtcdJob(t *testing.T) {
	r := renderer(t)
	dir := filepath.Join(repo, "jobs", "bbr-etcd")
	props := map[string]any{"bbr": map[string]any{"backup_one_restore_all": true}}

	boot, err := r.RenderDir(context.Background(), dir, instanceContext("etcd", "etcd", instance{index: 0, id: "a", ip: "10.244.0.2"}, props))
	require.NoError(t, err)
	checkScripts(t, boot)
	golden(t, "bbr-etcd-bootstrap", boot, true)
	require.Contains(t, string(boot["bin/bbr/backup"]), `"$ETCD_CTL" snapshot --config "$CONFIG" --dir "$BBR_ARTIFACT_DIRECTORY"`)
	require.Contains(t, string(boot["bin/bbr/restore"]), `restore --config "$CONFIG" --latest-in "$BBR_ARTIFACT_DIRECTORY" --force`)
	require.Contains(t, string(boot["bin/bbr/pre-restore-lock"]), "timeout=120")

	other, err := r.RenderDir(context.Background(), dir, instanceContext("etcd", "etcd", instance{index: 1, id: "b", ip: "10.244.0.3"}, props))
	require.NoError(t, err)
	checkScripts(t, other)
	require.NotContains(t, string(other["bin/bbr/backup"]), `"$ETCD_CTL" snapshot`)
	out, err := exec.Command("bash", "-c", string(other["bin/bbr/backup"])).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "not the bootstrap instance")
	require.Equal(t, boot["bin/bbr/restore"], other["bin/bbr/restore"], "every instance restores alike")

	meta, err := exec.Command("bash", "-c", string(boot["bin/bbr/metadata"])).Output()
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(meta, &m))
	require.Empty(t, m, "no lock ordering, no custom artifact names")

	for _, p := range []map[string]any{nil, {"bbr": map[string]any{"backup_one_restore_all": false}}} {
		_, err = r.RenderDir(context.Background(), dir, instanceContext("etcd", "etcd", instance{index: 0, id: "a", ip: "10.244.0.2"}, p))
		require.Error(t, err)
		require.True(t, strings.Contains(err.Error(), "bbr.backup_one_restore_all must be set to true"), "%v", err)
	}
}
