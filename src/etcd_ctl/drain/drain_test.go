package drain

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRequest(t *testing.T) {
	for name, tc := range map[string]struct {
		args      []string
		next      string
		goingAway bool
		pkgs      []string
		wantErr   string
	}{
		"update keeps the member":     {args: []string{"job_changed", "hash_changed", "etcd_ctl"}, next: `{"persistent_disk":1024}`, pkgs: []string{"etcd_ctl"}},
		"shutdown with disk kept":     {args: []string{"job_shutdown", "hash_unchanged"}, next: `{"persistent_disk":1024}`},
		"scale down deletes":          {args: []string{"job_shutdown", "hash_unchanged"}, next: `{"persistent_disk":0}`, goingAway: true},
		"new job":                     {args: []string{"job_new", "hash_new"}, next: `{"persistent_disk":2048}`},
		"status poll has no next":     {args: []string{"job_check_status", "hash_unchanged"}},
		"no next state is not delete": {args: []string{"job_shutdown", "hash_unchanged"}},
		"missing args":                {wantErr: "missing arguments"},
		"unknown kind":                {args: []string{"job_exploded"}, wantErr: `unknown first argument "job_exploded"`},
		"bad next state":              {args: []string{"job_shutdown"}, next: "{", wantErr: "BOSH_JOB_NEXT_STATE is not JSON"},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := ParseRequest(tc.args, tc.next)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.goingAway, r.GoingAway())
			require.Equal(t, tc.pkgs, r.Packages)
		})
	}
}

func TestPreStopRecordsDeploymentDeletion(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, PreStop(dir, "delete"))
	require.FileExists(t, DeploymentDeletedMarker(dir))
	require.NoError(t, PreStop(dir, "keep"))
	require.NoFileExists(t, DeploymentDeletedMarker(dir))
	require.NoError(t, PreStop(dir, ""), "no marker to remove is fine")
}
