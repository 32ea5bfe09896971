package jobtemplates

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// bin/post-start takes nothing from properties: etcd.post_start_timeout_in_seconds reaches etcd_ctl only
// through the rendered JSON, where a wrong type or range is an error naming the property (never "10m" read
// by bash as 10 ms, never a string executed).
func TestPostStartTakesNoPropertyOnItsCommandLine(t *testing.T) {
	r := renderer(t)
	for name, tc := range map[string]struct {
		value   any
		wantErr string
	}{
		"default":        {value: nil},
		"a number":       {value: 900},
		"minutes string": {value: "10m", wantErr: "etcd.post_start_timeout_in_seconds: got a string, must be a number"},
		"a command":      {value: "1; touch /tmp/owned", wantErr: "etcd.post_start_timeout_in_seconds: got a string"},
		"zero":           {value: 0, wantErr: "etcd.post_start_timeout_in_seconds: got 0, must be between 1 and 86400"},
		"milliseconds":   {value: 600000, wantErr: "etcd.post_start_timeout_in_seconds: got 600000"},
	} {
		t.Run(name, func(t *testing.T) {
			etcd := map[string]any{"machines": []any{"10.244.0.2"}, "require_ssl": false, "peer_require_ssl": false}
			if tc.value != nil {
				etcd["post_start_timeout_in_seconds"] = tc.value
			}
			c := instanceContext("etcd", "etcd", instance{id: "00000000-0000-4000-8000-000000000001", az: "z1", ip: "10.244.0.2"}, map[string]any{"etcd": etcd})
			files, err := r.RenderDir(context.Background(), filepath.Join(repo, "jobs", "etcd"), c)
			require.NoError(t, err)
			script := string(files["bin/post-start"])
			require.NotContains(t, script, "<%")
			require.Equal(t, "exec /var/vcap/packages/etcd_ctl/bin/etcd_ctl wait-ready --config /var/vcap/jobs/etcd/config/etcd_ctl.json",
				strings.TrimSpace(script[strings.LastIndex(script, "\nexec "):]), "the command line is fixed")
			if tc.value != nil {
				require.NotContains(t, script, strings.TrimSpace(strings.Trim(toString(tc.value), `"`)))
			}
			cfg, err := config.Parse(files["config/etcd_ctl.json"])
			if err == nil {
				_, err = cfg.Validate(validationTime)
			}
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// etcd.machines entries with a port, a scheme or a typo fail pre-start naming the entry.
func TestMachinesEntriesAreHostsWithoutPort(t *testing.T) {
	r := renderer(t)
	cfg := renderEtcdWith(t, r, map[string]any{"etcd": map[string]any{
		"machines": []any{"10.244.0.2", "10.244.0.3:4001", "https://10.244.0.4"}, "require_ssl": false, "peer_require_ssl": false,
		"max_moved_aside": 0,
	}})
	_, err := cfg.Validate(validationTime)
	require.ErrorContains(t, err, `etcd.machines[1]: got "10.244.0.3:4001", a host with port 4001`)
	require.ErrorContains(t, err, `etcd.machines[2]: got "https://10.244.0.4", a URL`)
	require.ErrorContains(t, err, "etcd.max_moved_aside: got 0")
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	}
	return ""
}
