package deployer

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLogSources(t *testing.T) {
	for _, tc := range []struct {
		name  string
		types []string
		want  map[string]string
		err   string
	}{
		{"default is job", nil, map[string]string{"": "/var/vcap/data/sys/log"}, ""},
		{"job at the root", []string{"job"}, map[string]string{"": "/var/vcap/data/sys/log"}, ""},
		{"agent at the root", []string{"agent"}, map[string]string{"": "/var/vcap/bosh/log"}, ""},
		{"several in folders", []string{"agent", "job"}, map[string]string{"agent": "/var/vcap/bosh/log", "job": "/var/vcap/data/sys/log"}, ""},
		{"system is the host's", []string{"job", "system"}, nil, "log type 'system' is not supported by the local director: use job or agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := logSources(tc.types)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestLogSelected(t *testing.T) {
	for _, tc := range []struct {
		rel     string
		filters []string
		want    bool
	}{
		{"etcd/etcd.stdout.log", nil, true},
		{"etcd/etcd.stdout.log", []string{"etcd/*"}, true},
		{"etcd/etcd.stdout.log", []string{"consul/*"}, false},
		{"etcd/etcd.stdout.log", []string{"consul/*", "etcd/*.log"}, true},
		{"etcd/deep/x.log", []string{"**/*.log"}, true},
		{"etcd/x.txt", []string{"**/*.log"}, false},
	} {
		require.Equal(t, tc.want, logSelected(tc.rel, tc.filters), "%s %v", tc.rel, tc.filters)
	}
}
