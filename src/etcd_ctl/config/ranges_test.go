package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNumericPropertiesAreRangeChecked sets every integer property just outside and just inside its range.
func TestNumericPropertiesAreRangeChecked(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Properties)
		want string // "" = valid
	}{
		"post-start timeout 0":        {func(p *Properties) { p.PostStartTimeoutInSeconds = 0 }, "etcd.post_start_timeout_in_seconds: got 0, must be between 1 and 86400"},
		"post-start timeout negative": {func(p *Properties) { p.PostStartTimeoutInSeconds = -5 }, "etcd.post_start_timeout_in_seconds: got -5"},
		"post-start timeout in ms":    {func(p *Properties) { p.PostStartTimeoutInSeconds = 600000 }, "etcd.post_start_timeout_in_seconds: got 600000"},
		"post-start timeout 1":        {func(p *Properties) { p.PostStartTimeoutInSeconds = 1 }, ""},
		"post-start timeout a day":    {func(p *Properties) { p.PostStartTimeoutInSeconds = 86400 }, ""},
		"start timeout 0":             {func(p *Properties) { p.StartTimeoutInSeconds = 0 }, "etcd.start_timeout_in_seconds: got 0"},
		"start timeout too long":      {func(p *Properties) { p.StartTimeoutInSeconds = 86401 }, "etcd.start_timeout_in_seconds: got 86401"},
		"max moved aside 0":           {func(p *Properties) { p.MaxMovedAside = 0 }, "etcd.max_moved_aside: got 0, must be between 1 and 100"},
		"max moved aside 101":         {func(p *Properties) { p.MaxMovedAside = 101 }, "etcd.max_moved_aside: got 101"},
		"max moved aside 1":           {func(p *Properties) { p.MaxMovedAside = 1 }, ""},
		"join stall timeout 0":        {func(p *Properties) { p.JoinStallTimeoutInSeconds = 0 }, "etcd.join_stall_timeout_in_seconds: got 0, must be between 1 and 86400"},
		"join stall timeout 1":        {func(p *Properties) { p.JoinStallTimeoutInSeconds = 1 }, ""},
		"heartbeat too long": {func(p *Properties) {
			p.HeartbeatIntervalInMilliseconds = 10001
			p.ElectionTimeoutInMilliseconds = 50000
		}, "etcd.heartbeat_interval_in_milliseconds: got 10001"},
		"heartbeat at the limit": {func(p *Properties) {
			p.HeartbeatIntervalInMilliseconds = 10000
			p.ElectionTimeoutInMilliseconds = 50000
		}, ""},
		"negative quota": {func(p *Properties) { p.QuotaBackendBytes = -1 }, "etcd.quota_backend_bytes: got -1"},
		"consul wait 0": {func(p *Properties) {
			p.Consul.Enabled = true
			p.AdvertiseURLsDNSSuffix = "etcd.service.cf.internal"
			p.Consul.WaitTimeoutInSeconds = 0
		}, "etcd.consul.wait_timeout_in_seconds: got 0"},
		"consul ttl 2": {func(p *Properties) {
			p.Consul.Enabled = true
			p.AdvertiseURLsDNSSuffix = "etcd.service.cf.internal"
			p.Consul.CheckTTLInSeconds = 2
		}, "etcd.consul.check_ttl_in_seconds: got 2"},
		"consul off: its numbers idle": {func(p *Properties) { p.Consul.WaitTimeoutInSeconds = 0 }, ""},
		"defaults":                     {func(p *Properties) {}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(minimal))
			require.NoError(t, err)
			tc.edit(&c.Etcd)
			_, err = c.Validate(time.Now())
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestLargeQuotaWarns(t *testing.T) {
	c, err := Parse([]byte(minimal))
	require.NoError(t, err)
	c.Etcd.QuotaBackendBytes = 16 << 30
	warnings, err := c.Validate(time.Now())
	require.NoError(t, err)
	require.Len(t, warnings, 2)
	require.Contains(t, warnings[0], "etcd.quota_backend_bytes")
	require.Contains(t, warnings[1], "serves plaintext, without authentication of the client, on every interface", "minimal has etcd.require_ssl false")
}

// TestMachineProblem: etcd.machines entries are hosts or IPs without scheme or port.
func TestMachineProblem(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":                   "",
		"fd00::1":                    "",
		"etcd-0.etcd.service.consul": "",
		"etcd_z1-0.internal":         "",
		"host.":                      "",
		"":                           "is empty",
		"10.0.0.1:4001":              `a host with port 4001; give only "10.0.0.1"`,
		"etcd-0.internal:7001":       `a host with port 7001; give only "etcd-0.internal"`,
		"[fd00::1]:4001":             `a host with port 4001; give only "fd00::1"`,
		"[fd00::1]":                  "neither an IP address nor a host name",
		"https://10.0.0.1:4001":      "a URL; give only the host or IP",
		" 10.0.0.1":                  "leading or trailing spaces",
		"a..b":                       "not a valid host name",
		"-a.b":                       "not a valid host name",
		"a b":                        "contains ' '",
		"a/b":                        "contains '/'",
		strings.Repeat("a", 64):      "not a valid host name",
	} {
		t.Run(in, func(t *testing.T) {
			got := machineProblem(in)
			if want == "" {
				require.Empty(t, got)
				return
			}
			require.Contains(t, got, want)
		})
	}
}

// TestBadMachineEntryIsNamed: Validate (pre-start) names the entry instead of start waiting for it forever.
func TestBadMachineEntryIsNamed(t *testing.T) {
	c, err := Parse([]byte(minimal))
	require.NoError(t, err)
	c.Etcd.Machines[1] += ":4001"
	_, err = c.Validate(time.Now())
	require.ErrorContains(t, err, "etcd.machines[1]: got \""+c.Etcd.Machines[1]+"\", a host with port 4001")
}
