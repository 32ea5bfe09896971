package config

import (
	"fmt"
	"net"
	"strings"
)

// Bounds of the numeric properties that etcd does not bound itself. A day is far beyond any sane wait, and
// catches a value given in milliseconds or minutes by mistake.
const (
	MaxTimeoutInSeconds          = 86400
	MaxPostStartTimeoutInSeconds = MaxTimeoutInSeconds
	MaxMaxMovedAside             = 100
	// maxHeartbeatInMilliseconds keeps 5 × heartbeat within etcd's 50000 ms election timeout limit.
	maxHeartbeatInMilliseconds = 10000
)

// numericRange is one integer property and the range it must lie in.
type numericRange struct {
	prop     string
	value    int64
	min, max int64
	hint     string
}

// numericRanges lists every integer property of the job that etcd_ctl uses. etcd.heartbeat_interval_in_
// milliseconds and etcd.election_timeout_in_milliseconds get their relation checked in Validate; the ports
// are checked there too.
func numericRanges(e Properties) []numericRange {
	r := []numericRange{
		{"etcd.heartbeat_interval_in_milliseconds", int64(e.HeartbeatIntervalInMilliseconds), 1, maxHeartbeatInMilliseconds, "default 50"},
		{"etcd.start_timeout_in_seconds", int64(e.StartTimeoutInSeconds), 1, MaxTimeoutInSeconds, "default 300"},
		{"etcd.post_start_timeout_in_seconds", int64(e.PostStartTimeoutInSeconds), 1, MaxPostStartTimeoutInSeconds, "default 600"},
		{"etcd.max_moved_aside", int64(e.MaxMovedAside), 1, MaxMaxMovedAside, fmt.Sprintf("default %d; the newest copy is always kept", DefaultMaxMovedAside)},
		{"etcd.quota_backend_bytes", e.QuotaBackendBytes, 0, 1 << 50, "0 means etcd's default of 2 GiB"},
	}
	r = append(r, numericRange{"etcd.join_stall_timeout_in_seconds", int64(e.JoinStallTimeoutInSeconds), 1, MaxTimeoutInSeconds,
		fmt.Sprintf("default %d; a member that keeps catching up is never given up on", DefaultJoinStallTimeoutInSeconds)})
	if e.Consul.Enabled {
		r = append(r,
			numericRange{"etcd.consul.wait_timeout_in_seconds", int64(e.Consul.WaitTimeoutInSeconds), 1, MaxTimeoutInSeconds, "default 300"},
			numericRange{"etcd.consul.check_ttl_in_seconds", int64(e.Consul.CheckTTLInSeconds), 3, MaxTimeoutInSeconds, "the check is refreshed every TTL/3; default 30"})
	}
	return r
}

// checkRanges reports every integer property outside its range, naming it.
func checkRanges(e Properties, add func(prop, format string, a ...any)) {
	for _, r := range numericRanges(e) {
		if r.value < r.min || r.value > r.max {
			add(r.prop, "got %d, must be between %d and %d (%s)", r.value, r.min, r.max, r.hint)
		}
	}
}

// machineProblem says what is wrong with one etcd.machines entry ("" when it is fine). Entries are the
// addresses members are reached at, combined with etcd.client_port and etcd.peer_port: a host name or an IP,
// without a scheme or a port. A bad entry would otherwise make start wait forever for a peer that cannot exist.
func machineProblem(m string) string {
	switch {
	case m == "":
		return "is empty; list the address (IP or host name) of every etcd VM"
	case strings.TrimSpace(m) != m:
		return fmt.Sprintf("got %q, which has leading or trailing spaces; remove them", m)
	case strings.Contains(m, "://"):
		return fmt.Sprintf("got %q, a URL; give only the host or IP (the scheme comes from etcd.require_ssl / etcd.peer_require_ssl, the ports from etcd.client_port / etcd.peer_port)", m)
	case net.ParseIP(m) != nil:
		return ""
	}
	if host, port, err := net.SplitHostPort(m); err == nil {
		return fmt.Sprintf("got %q, a host with port %s; give only %q (the ports come from etcd.client_port and etcd.peer_port)", m, port, host)
	}
	if strings.Contains(m, ":") || strings.HasPrefix(m, "[") {
		return fmt.Sprintf("got %q, which is neither an IP address nor a host name; write an IPv6 address without brackets or port", m)
	}
	if len(m) > 253 {
		return fmt.Sprintf("got a %d-character name; a host name has at most 253", len(m))
	}
	for _, label := range strings.Split(strings.TrimSuffix(m, "."), ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Sprintf("got %q, not a valid host name (empty, over-long or dash-edged label %q)", m, label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Sprintf("got %q, which contains %q; a host name has letters, digits, '-' and '.' only", m, r)
			}
		}
	}
	return ""
}
