// Package cluster is what the acceptance suite knows about an etcd deployment: its manifest (generated, or
// derived from a template), its TLS material, and the checks of its membership invariants made by talking to
// every member directly.
package cluster

import (
	"fmt"
	"maps"
	"net/netip"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/acceptance-tests/config"
)

// Group is the etcd instance group's name in every manifest the suite deploys; members are named <Group>-<index>.
const Group = "etcd"

// Ports of the etcd job (its spec's defaults).
const (
	ClientPort = 4001
	PeerPort   = 7001
)

// Manifest describes one deploy of a test deployment.
type Manifest struct {
	Name           string
	ReleaseVersion string
	Instances      int
	// IPs are the deployment's static IPs; the first Instances are used.
	IPs []netip.Addr
	// EtcdProperties are the etcd job's `etcd` properties (TLS settings and anything a scenario changes).
	EtcdProperties map[string]any
	HelperPassword string
	// HelperCert and HelperKey are the test helper's HTTPS certificate (etcd_test_helper.tls.*); empty: the
	// helper's self-signed default.
	HelperCert, HelperKey string
	// Consul, when set, deploys etcd in consul DNS mode as CF deployments ran it (manifests/operations/consul.yml):
	// a consul server instance group, a consul agent in client mode next to every member, members registered
	// with it and advertising <member>.ConsulDNSSuffix, the peer list from etcd.cluster instead of the etcd link.
	Consul *Consul
	// NoPersistentDisk deploys the group without a persistent disk (the data dir on the VM's own disk), so that
	// drain sees {"persistent_disk":0} in BOSH_JOB_STATE and BOSH_JOB_NEXT_STATE on every update.
	NoPersistentDisk bool
}

// Consul names the consul release (acceptance-tests/consul-release) a consul-mode deployment uses.
type Consul struct {
	Release string
	Version string
}

// Consul DNS names of a consul-mode deployment: members are <member>.ConsulDNSSuffix, the servers
// ConsulServerName.
const (
	ConsulDNSSuffix  = "etcd.service.cf.internal"
	ConsulServerName = "consul.service.cf.internal"
	ConsulGroup      = "consul"
)

// Generator renders manifests from the suite's config.
type Generator struct {
	Config config.Config
}

// Render returns the manifest YAML.
func (g Generator) Render(m Manifest) ([]byte, error) {
	if m.Instances > len(m.IPs) {
		return nil, fmt.Errorf("%d instances but only %d static IPs", m.Instances, len(m.IPs))
	}
	doc, err := g.base()
	if err != nil {
		return nil, err
	}
	c := g.Config
	doc["name"] = m.Name
	releases := []any{map[string]any{"name": c.Release.Name, "version": m.ReleaseVersion}}
	if m.Consul != nil {
		releases = append(releases, map[string]any{"name": m.Consul.Release, "version": m.Consul.Version})
	}
	doc["releases"] = releases
	doc["stemcells"] = []any{map[string]any{"alias": "default", "os": c.Stemcell.OS, "version": c.Stemcell.Version}}
	if _, ok := doc["update"]; !ok {
		doc["update"] = map[string]any{"canaries": 1, "max_in_flight": 1, "serial": true,
			"canary_watch_time": "1000-60000", "update_watch_time": "1000-60000"}
	}
	ips := make([]any, 0, m.Instances)
	for _, ip := range m.IPs[:m.Instances] {
		ips = append(ips, ip.String())
	}
	group := findGroup(doc)
	group["name"] = Group
	group["instances"] = m.Instances
	group["azs"] = anyList(c.AZs)
	group["vm_type"] = c.VMType
	group["stemcell"] = "default"
	delete(group, "persistent_disk")
	group["persistent_disk_type"] = c.PersistentDiskType
	if m.NoPersistentDisk {
		delete(group, "persistent_disk_type")
	}
	group["networks"] = []any{map[string]any{"name": c.Network, "static_ips": ips}}
	etcdProps := maps.Clone(m.EtcdProperties)
	etcdJob := map[string]any{
		"name":       "etcd",
		"release":    c.Release.Name,
		"provides":   map[string]any{"etcd": map[string]any{"as": "etcd"}},
		"consumes":   map[string]any{"etcd": map[string]any{"from": "etcd"}},
		"properties": map[string]any{"etcd": etcdProps},
	}
	var jobs []any
	if m.Consul != nil {
		// As manifests/operations/consul.yml: no etcd link (the string nil blocks it), members named by consul.
		etcdJob["consumes"] = map[string]any{"etcd": "nil"}
		etcdProps["advertise_urls_dns_suffix"] = ConsulDNSSuffix
		etcdProps["dns_health_check_host"] = ConsulServerName
		etcdProps["cluster"] = []any{map[string]any{"name": Group, "instances": m.Instances}}
		etcdProps["consul"] = map[string]any{"enabled": true}
		jobs = append(jobs, consulAgent(m.Consul, "client"))
		addConsulServers(doc, m.Consul, c)
	}
	group["jobs"] = append(jobs,
		etcdJob,
		map[string]any{
			"name":       "etcd-test-helper",
			"release":    c.Release.Name,
			"properties": map[string]any{"etcd_test_helper": helperProps(m, c)},
		},
	)
	return yaml.Marshal(doc)
}

// consulAgent is the consul_agent job in mode server or client; clients join the servers through the
// consul_servers link.
func consulAgent(cs *Consul, mode string) map[string]any {
	job := map[string]any{
		"name":       "consul_agent",
		"release":    cs.Release,
		"properties": map[string]any{"consul": map[string]any{"agent": map[string]any{"mode": mode, "domain": "cf.internal"}}},
	}
	if mode == "server" {
		job["provides"] = map[string]any{"consul": map[string]any{"as": "consul_servers"}}
	} else {
		job["provides"] = map[string]any{"consul": "nil"}
		job["consumes"] = map[string]any{"consul": map[string]any{"from": "consul_servers"}}
	}
	return job
}

// addConsulServers puts a one-instance consul server group (dynamic IP) before the etcd group, so that a serial
// deploy has consul answering before the first member starts.
func addConsulServers(doc map[string]any, cs *Consul, c config.Config) {
	server := map[string]any{
		"name":      ConsulGroup,
		"instances": 1,
		"azs":       anyList(c.AZs[:1]),
		"vm_type":   c.VMType,
		"stemcell":  "default",
		"networks":  []any{map[string]any{"name": c.Network}},
		"jobs":      []any{consulAgent(cs, "server")},
	}
	groups, _ := doc["instance_groups"].([]any)
	out := []any{server}
	for _, g := range groups {
		if gm, ok := g.(map[string]any); ok && gm["name"] == ConsulGroup {
			continue
		}
		out = append(out, g)
	}
	doc["instance_groups"] = out
}

// base is the template (config manifest_template) or an empty document.
func (g Generator) base() (map[string]any, error) {
	doc := map[string]any{}
	if g.Config.ManifestTemplate == "" {
		return doc, nil
	}
	b, err := os.ReadFile(g.Config.ManifestTemplate)
	if err != nil {
		return nil, fmt.Errorf("manifest_template: %w", err)
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("manifest_template %s: %w", g.Config.ManifestTemplate, err)
	}
	return doc, nil
}

// findGroup returns the template's etcd instance group (or its only group), adding one if there is none.
func findGroup(doc map[string]any) map[string]any {
	groups, _ := doc["instance_groups"].([]any)
	for _, g := range groups {
		if m, ok := g.(map[string]any); ok && (m["name"] == Group || len(groups) == 1) {
			return m
		}
	}
	m := map[string]any{}
	doc["instance_groups"] = append(groups, m)
	return m
}

func anyList(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// Endpoints are the client URLs of members at ips.
func Endpoints(ips []string, tls bool) []string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = fmt.Sprintf("%s://%s:%d", scheme, ip, ClientPort)
	}
	return out
}

func helperProps(m Manifest, c config.Config) map[string]any {
	props := map[string]any{"port": c.TestHelper.Port, "username": c.TestHelper.Username, "password": m.HelperPassword}
	if m.HelperCert != "" {
		props["tls"] = map[string]any{"cert": m.HelperCert, "key": m.HelperKey}
	}
	return props
}
