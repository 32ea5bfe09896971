package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Validate checks everything that can be checked without touching the network or the data dir and returns
// every problem at once (errors.Join), each naming the property and what to do. Warnings (e.g. certificates
// close to expiry) are returned separately. It has no side effects.
func (c *Config) Validate(now time.Time) (warnings []string, err error) {
	var errs []error
	add := func(prop, format string, a ...any) {
		errs = append(errs, &PropertyError{Property: prop, Problem: fmt.Sprintf(format, a...)})
	}
	c.validateInstance(add)
	c.validateNetwork(add)
	checkRanges(c.Etcd, add)
	c.validatePeers(add)
	if c.Etcd.Consul.Enabled {
		c.validateConsul(add)
	}
	c.validateMetrics(add)
	warnings = append(warnings, c.validateMaintenance(add)...)
	c.validateBackup(add)
	warnings = append(warnings, c.validateHardening(add)...)
	c.validateAuth(add)
	if c.Paths.DataDir == "" {
		add("paths.data_dir", "is empty")
	}
	if c.Paths.RunDir == "" {
		add("paths.run_dir", "is empty")
	}

	if len(errs) == 0 {
		// Peer derivation and TLS checks need a sane base; report base problems first.
		if _, perr := c.DesiredMembers(); perr != nil {
			errs = append(errs, perr)
		}
		tw, terrs := c.validateTLS(now)
		warnings = append(warnings, tw...)
		errs = append(errs, terrs...)
		if len(terrs) == 0 {
			c.validatePeerAllowList(add)
		}
		mw, merrs := c.validateMetricsTLS(now)
		warnings = append(warnings, mw...)
		errs = append(errs, merrs...)
	}
	return warnings, errors.Join(errs...)
}

type addFunc = func(prop, format string, a ...any)

// validateInstance checks what the template renders from the instance spec.
func (c *Config) validateInstance(add addFunc) {
	if c.Instance.Name == "" {
		add("instance.name", "is empty; the template must render spec.name")
	}
	if c.Instance.Index < 0 {
		add("instance.index", "got %d, must be 0 or more", c.Instance.Index)
	}
	if c.Instance.Address == "" && c.Instance.IP == "" {
		add("instance.address", "is empty (and so is instance.ip); the template must render spec.address")
	}
}

// validateNetwork checks the raft timing, ports and listen addresses.
func (c *Config) validateNetwork(add addFunc) {
	e := c.Etcd
	if e.ElectionTimeoutInMilliseconds <= 0 {
		add("etcd.election_timeout_in_milliseconds", "got %d, must be positive (default 1000)", e.ElectionTimeoutInMilliseconds)
	} else if e.ElectionTimeoutInMilliseconds > 50000 {
		add("etcd.election_timeout_in_milliseconds", "got %d, etcd allows at most 50000", e.ElectionTimeoutInMilliseconds)
	} else if e.HeartbeatIntervalInMilliseconds > 0 && e.ElectionTimeoutInMilliseconds < 5*e.HeartbeatIntervalInMilliseconds {
		add("etcd.election_timeout_in_milliseconds", "got %d, must be at least 5 × etcd.heartbeat_interval_in_milliseconds (%d)", e.ElectionTimeoutInMilliseconds, 5*e.HeartbeatIntervalInMilliseconds)
	}
	checkPort := func(prop string, port int) {
		if port < 1 || port > 65535 {
			add(prop, "got %d, must be a TCP port between 1 and 65535", port)
		}
	}
	checkPort("etcd.client_port", e.ClientPort)
	checkPort("etcd.peer_port", e.PeerPort)
	checkIP := func(prop, v string) net.IP {
		ip := net.ParseIP(v)
		if ip == nil {
			add(prop, "got %q, must be an IP address to listen on (default 0.0.0.0)", v)
		}
		return ip
	}
	cip, pip := checkIP("etcd.client_ip", e.ClientIP), checkIP("etcd.peer_ip", e.PeerIP)
	if e.ClientPort == e.PeerPort && cip != nil && pip != nil && (cip.Equal(pip) || cip.IsUnspecified() || pip.IsUnspecified()) {
		add("etcd.peer_port", "is %d, the same as etcd.client_port on overlapping listen addresses; choose different ports", e.PeerPort)
	}
}

// validatePeers checks the legacy peer lists (etcd.cluster, etcd.machines).
func (c *Config) validatePeers(add addFunc) {
	for i, g := range c.Etcd.Cluster {
		if g.Name == "" {
			add(fmt.Sprintf("etcd.cluster[%d].name", i), "is empty; name the instance group")
		}
		if g.Instances < 0 {
			add(fmt.Sprintf("etcd.cluster[%d].instances", i), "got %d, must be 0 or more", g.Instances)
		}
	}
	for i, m := range c.Etcd.Machines {
		if problem := machineProblem(m); problem != "" {
			add(fmt.Sprintf("etcd.machines[%d]", i), "%s", problem)
		}
	}
}

// validateConsul checks the etcd.consul.* properties and the DNS suffix they depend on (only when enabled).
func (c *Config) validateConsul(add func(prop, format string, a ...any)) {
	e := c.Etcd
	if e.AdvertiseURLsDNSSuffix == "" {
		add("etcd.advertise_urls_dns_suffix", "is empty but etcd.consul.enabled is true; set it to <service>.service.<domain> "+
			"(e.g. etcd.service.cf.internal): members register as consul service <service> and are reached as <member>.<suffix>, or set etcd.consul.enabled to false")
	} else if _, _, ok := e.ConsulService(); !ok {
		add("etcd.advertise_urls_dns_suffix", "got %q, but with etcd.consul.enabled it must be <service>.service.<domain> (e.g. etcd.service.cf.internal), "+
			"the consul DNS name of the service members register under; fix the suffix or set etcd.consul.enabled to false", e.AdvertiseURLsDNSSuffix)
	}
	if u, err := url.Parse(e.Consul.AgentURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("etcd.consul.agent_url", "got %q, must be the http(s) URL of the colocated consul agent's HTTP API (default %s)", e.Consul.AgentURL, DefaultConsulAgentURL)
	}
}

// validateBackup checks the etcd.backup.* properties.
func (c *Config) validateBackup(add func(prop, format string, a ...any)) {
	b := c.Etcd.Backup
	if b.IntervalInMinutes < 0 {
		add("etcd.backup.interval_in_minutes", "got %d, must be 0 (scheduled snapshots off) or a number of minutes", b.IntervalInMinutes)
	}
	if b.KeepCount < 1 {
		add("etcd.backup.keep_count", "got %d, must be at least 1 (the newest snapshot is always kept)", b.KeepCount)
	}
	if b.KeepDays < 0 {
		add("etcd.backup.keep_days", "got %d, must be 0 (no age limit) or a number of days", b.KeepDays)
	}
	if b.Dir != "" && !filepath.IsAbs(b.Dir) {
		add("etcd.backup.dir", "got %q, must be an absolute path (or empty for /var/vcap/store/etcd-backups)", b.Dir)
	}
	seen := map[string]bool{}
	for i, k := range b.EncryptionKeys {
		prop := fmt.Sprintf("etcd.backup.encryption_keys[%d]", i)
		if k.ID == "" || len(k.ID) > 255 || seen[k.ID] {
			add(prop+".id", "got %q, must be a unique name of 1 to 255 bytes (it is written into every file the key encrypts)", k.ID)
		}
		seen[k.ID] = true
		if raw, err := base64.StdEncoding.DecodeString(k.Key.Value()); err != nil || len(raw) != 32 {
			add(prop+".key", "must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`), never a TLS key")
		}
	}
	if s3 := b.S3; s3.Endpoint != "" {
		if u, err := url.Parse(s3.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("etcd.backup.s3.endpoint", "got %q, must be an http:// or https:// URL of an S3-compatible store (or empty: no off-VM copies)", s3.Endpoint)
		}
		for prop, v := range map[string]string{"bucket": s3.Bucket, "access_key_id": s3.AccessKeyID, "secret_access_key": s3.SecretAccessKey.Value()} {
			if v == "" {
				add("etcd.backup.s3."+prop, "is empty but etcd.backup.s3.endpoint is set; set it (or clear the endpoint)")
			}
		}
		if s3.KeepCount < 0 || s3.KeepDays < 0 {
			add("etcd.backup.s3.keep_count", "keep_count and keep_days must be 0 (the local etcd.backup values) or positive")
		}
	}
	if d, data := filepath.Clean(c.BackupDir()), filepath.Clean(c.Paths.DataDir); d == data || strings.HasPrefix(d, data+"/") {
		add("etcd.backup.dir", "is %q, inside the data dir %s, which the documented wipe (rm -rf %s/*) empties; choose a directory outside it", d, data, data)
	}
}
