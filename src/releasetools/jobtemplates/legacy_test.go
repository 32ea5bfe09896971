package jobtemplates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/etcd-test-helper/testhelper"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/releasetools/erb"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// legacyGroup is one instance group of an original CF etcd-release manifest (etcd_z1, etcd_z2).
type legacyGroup struct {
	name  string
	az    string
	ips   []string
	first int // index of the group's first instance in the whole cluster (for IDs)
}

// renderLegacy renders the etcd job for every instance of the groups with the property hash as the original
// release's manifests carried it (no link: those manifests predate links).
func renderLegacy(t *testing.T, groups []legacyGroup, props map[string]any) []rendered {
	t.Helper()
	r := renderer(t)
	var out []rendered
	for _, g := range groups {
		for i, ip := range g.ips {
			inst := instance{index: i, id: fmt.Sprintf("00000000-0000-4000-8000-%012d", g.first+i+1), az: g.az, ip: ip}
			c := instanceContext("etcd", g.name, inst, props)
			c.Bootstrap = g.first == 0 && i == 0
			files, err := r.RenderDir(context.Background(), filepath.Join(repo, "jobs", "etcd"), c)
			require.NoError(t, err)
			cfg, err := config.Parse(files["config/etcd_ctl.json"])
			require.NoError(t, err, "%s", files["config/etcd_ctl.json"])
			checkScripts(t, files)
			out = append(out, rendered{inst: inst, files: files, cfg: cfg})
		}
	}
	return out
}

func yamlProps(t *testing.T, doc string) map[string]any {
	t.Helper()
	var v any
	require.NoError(t, yaml.Unmarshal([]byte(doc), &v))
	return release.Normalize(v).(map[string]any)
}

// The original release's 3-node-no-ssl manifest: two groups, static IPs listed in etcd.machines, no TLS.
func TestLegacyThreeNodeNoSSL(t *testing.T) {
	props := yamlProps(t, `
etcd:
  machines: [10.244.4.2, 10.244.4.3, 10.244.5.2]
  cluster:
  - {name: etcd_z1, instances: 2}
  - {name: etcd_z2, instances: 1}
  require_ssl: false
  peer_require_ssl: false
  heartbeat_interval_in_milliseconds: 50
  election_timeout_in_milliseconds: 1000
  enable_network_diagnostics: true
  network_diagnostics_duration_in_seconds: 10
  enable_debug_logging: true
`)
	rs := renderLegacy(t, []legacyGroup{
		{name: "etcd_z1", az: "z1", ips: []string{"10.244.4.2", "10.244.4.3"}},
		{name: "etcd_z2", az: "z2", ips: []string{"10.244.5.2"}, first: 2},
	}, props)
	want := []string{"http://10.244.4.2:7001", "http://10.244.4.3:7001", "http://10.244.5.2:7001"}
	for i, r := range rs {
		_, err := r.cfg.Validate(validationTime)
		require.NoError(t, err)
		members, err := r.cfg.DesiredMembers()
		require.NoError(t, err)
		var got []string
		for _, m := range members {
			got = append(got, m.PeerURL)
			if m.Self {
				require.Equal(t, r.inst.ip, m.Host, "instance %d", i)
			}
		}
		require.ElementsMatch(t, want, got)
		require.Contains(t, r.cfg.PeerSource(), "machines")
		require.True(t, r.cfg.Etcd.EnableDebugLogging)
		require.Equal(t, "http", r.cfg.Etcd.ClientScheme())
	}
}

// The original release's 3-node-with-ssl manifest: members advertise consul DNS names built from etcd.cluster and
// etcd.advertise_urls_dns_suffix; TLS for clients and peers.
func TestLegacyThreeNodeWithSSL(t *testing.T) {
	vars := certVars(t)
	props := map[string]any{"etcd": map[string]any{
		"cluster": []any{
			map[string]any{"name": "etcd_z1", "instances": 2},
			map[string]any{"name": "etcd_z2", "instances": 1},
		},
		"require_ssl":                        true,
		"peer_require_ssl":                   true,
		"advertise_urls_dns_suffix":          "etcd.service.cf.internal",
		"heartbeat_interval_in_milliseconds": 50,
		"ca_cert":                            vars["etcd_ca_cert"],
		"server_cert":                        vars["etcd_server_cert"],
		"server_key":                         vars["etcd_server_key"],
		"client_cert":                        vars["etcd_client_cert"],
		"client_key":                         vars["etcd_client_key"],
		"peer_ca_cert":                       vars["etcd_peer_ca_cert"],
		"peer_cert":                          vars["etcd_peer_cert"],
		"peer_key":                           vars["etcd_peer_key"],
		"dns_health_check_host":              "consul.service.cf.internal",
	}}
	rs := renderLegacy(t, []legacyGroup{
		{name: "etcd_z1", az: "z1", ips: []string{"10.244.4.2", "10.244.4.3"}},
		{name: "etcd_z2", az: "z2", ips: []string{"10.244.5.2"}, first: 2},
	}, props)
	hosts := []string{"etcd-z1-0.etcd.service.cf.internal", "etcd-z1-1.etcd.service.cf.internal", "etcd-z2-0.etcd.service.cf.internal"}
	for i, r := range rs {
		_, err := r.cfg.Validate(validationTime)
		require.NoError(t, err)
		members, err := r.cfg.DesiredMembers()
		require.NoError(t, err)
		var got []string
		for _, m := range members {
			got = append(got, m.Host)
			require.True(t, strings.HasPrefix(m.PeerURL, "https://"))
			if m.Self {
				require.Equal(t, hosts[i], m.Host)
			}
		}
		require.ElementsMatch(t, hosts, got)
		requirePEMFile(t, vars["etcd_client_key"], r.files["config/certs/client.key"])
	}
}

// Operator mistakes are caught before etcd starts, naming the property (config.Validate, which pre-start runs).
func TestInvalidPropertiesNameTheProperty(t *testing.T) {
	r := renderer(t)
	noPeers := renderEtcdWith(t, r, map[string]any{"etcd": map[string]any{"require_ssl": false, "peer_require_ssl": false}})
	_, err := noPeers.Validate(validationTime)
	require.Error(t, err)
	_, err = noPeers.DesiredMembers()
	require.Error(t, err, "no link, no etcd.machines, no etcd.cluster")

	noCerts := renderEtcdWith(t, r, map[string]any{"etcd": map[string]any{"machines": []any{"10.244.0.2"}}})
	_, err = noCerts.Validate(validationTime)
	require.ErrorContains(t, err, "etcd.ca_cert")
	require.ErrorContains(t, err, "etcd.server_cert")
	require.ErrorContains(t, err, "etcd.peer_cert")

	badTimes := renderEtcdWith(t, r, map[string]any{"etcd": map[string]any{
		"machines": []any{"10.244.0.2"}, "require_ssl": false, "peer_require_ssl": false,
		"heartbeat_interval_in_milliseconds": 0,
	}})
	_, err = badTimes.Validate(validationTime)
	require.ErrorContains(t, err, "etcd.heartbeat_interval_in_milliseconds")
}

func renderEtcdWith(t *testing.T, r *erb.Renderer, props map[string]any) *config.Config {
	t.Helper()
	c := instanceContext("etcd", "etcd", instance{id: "00000000-0000-4000-8000-000000000001", az: "z1", ip: "10.244.0.2"}, props)
	files, err := r.RenderDir(context.Background(), filepath.Join(repo, "jobs", "etcd"), c)
	require.NoError(t, err)
	cfg, err := config.Parse(files["config/etcd_ctl.json"])
	require.NoError(t, err)
	return cfg
}

// A property path through a non-hash fails the render with BOSH's error.
func TestEtcdPropertyOfWrongShape(t *testing.T) {
	r := renderer(t)
	c := instanceContext("etcd", "etcd", instance{id: "x", ip: "10.244.0.2"}, map[string]any{"etcd": "not a hash"})
	_, err := r.RenderDir(context.Background(), filepath.Join(repo, "jobs", "etcd"), c)
	var pte *erb.PropertyTypeError
	require.True(t, errors.As(err, &pte), "got %v", err)
}

func TestTestHelperJob(t *testing.T) {
	r := renderer(t)
	props := map[string]any{"etcd_test_helper": map[string]any{"username": "acceptance", "password": "pw"}}
	files, err := r.RenderDir(context.Background(), filepath.Join(repo, "jobs", "etcd-test-helper"), instanceContext("etcd", "etcd", instance{id: "x", ip: "10.244.0.2"}, props))
	require.NoError(t, err)
	checkScripts(t, files)
	require.Contains(t, string(files["monit"]), "/var/vcap/sys/run/etcd-test-helper/etcd-test-helper.pid")
	var cfg testhelper.Config
	require.NoError(t, json.Unmarshal(files["config/config.json"], &cfg))
	require.NoError(t, cfg.Validate())
	want := testhelper.Default()
	want.Username, want.Password, want.Monit = "acceptance", "pw", []string{}
	require.Equal(t, want, cfg)

	props["etcd_test_helper"].(map[string]any)["monit_command"] = []any{"/usr/bin/monit", "-c", "/etc/monitrc"}
	files, err = r.RenderDir(context.Background(), filepath.Join(repo, "jobs", "etcd-test-helper"), instanceContext("etcd", "etcd", instance{id: "x"}, props))
	require.NoError(t, err)
	cfg = testhelper.Config{}
	require.NoError(t, json.Unmarshal(files["config/config.json"], &cfg))
	require.Equal(t, []string{"/usr/bin/monit", "-c", "/etc/monitrc"}, cfg.Monit)

	// Without credentials the binary refuses to start, naming the properties.
	files, err = r.RenderDir(context.Background(), filepath.Join(repo, "jobs", "etcd-test-helper"), instanceContext("etcd", "etcd", instance{id: "x"}, nil))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(files["config/config.json"], &cfg))
	require.ErrorContains(t, cfg.Validate(), "etcd_test_helper.username")
}

func TestAcceptanceTestsErrand(t *testing.T) {
	r := renderer(t)
	dir := filepath.Join(repo, "jobs", "acceptance-tests")
	props := map[string]any{"acceptance_tests": map[string]any{
		"director":    map[string]any{"url": "https://10.244.0.1:25555", "client": "admin", "client_secret": "s", "ca_cert": "PEM"},
		"scenarios":   []any{"deploy", "wipe"},
		"test_helper": map[string]any{"password": "pw"},
		"release":     map[string]any{"version": 7},
		"static_ips":  []any{"10.244.0.40 - 10.244.0.49"},
	}}
	files, err := r.RenderDir(context.Background(), dir, instanceContext("etcd-acceptance", "acceptance-tests", instance{id: "x"}, props))
	require.NoError(t, err)
	require.Equal(t, "", strings.TrimSpace(string(files["monit"])), "an errand has no monit processes")
	checkScripts(t, files)
	require.Contains(t, string(files["bin/run"]), "-ginkgo.label-filter=deploy\\ \\|\\|\\ wipe")
	require.Contains(t, string(files["bin/run"]), "ACCEPTANCE_CONFIG=$JOB_DIR/config/config.json")
	var cfg struct {
		Director struct {
			URL, Client, ClientSecret, CACert string
		}
		Release    struct{ Name, Version string }
		Scenarios  []string
		TestHelper struct {
			Port               int
			Username, Password string
		} `json:"test_helper"`
		Timeouts         map[string]int
		DeploymentPrefix string                         `json:"deployment_prefix"`
		StaticIPs        []string                       `json:"static_ips"`
		ReportDir        string                         `json:"report_dir"`
		PreviousRelease  struct{ Name, Version string } `json:"previous_release"`
		Consul           struct {
			Release struct{ Name, Version string }
		}
	}
	require.NoError(t, json.Unmarshal(files["config/config.json"], &cfg))
	require.Equal(t, "https://10.244.0.1:25555", cfg.Director.URL)
	require.Equal(t, "7", cfg.Release.Version)
	require.Equal(t, "etcd", cfg.Release.Name)
	require.Equal(t, []string{"deploy", "wipe"}, cfg.Scenarios)
	require.Equal(t, 8448, cfg.TestHelper.Port)
	require.Equal(t, "etcd-acceptance", cfg.DeploymentPrefix)
	require.Equal(t, 1800, cfg.Timeouts["deploy_in_seconds"])
	require.Equal(t, []string{"10.244.0.40 - 10.244.0.49"}, cfg.StaticIPs)
	require.Equal(t, "/var/vcap/sys/log/acceptance-tests/report", cfg.ReportDir)
	require.Equal(t, "etcd", cfg.PreviousRelease.Name)
	require.Equal(t, "", cfg.PreviousRelease.Version)
	require.Equal(t, "", cfg.Consul.Release.Name, "no consul release: the consul scenarios skip")
	require.Equal(t, "latest", cfg.Consul.Release.Version)

	// No scenarios: no label filter.
	delete(props["acceptance_tests"].(map[string]any), "scenarios")
	files, err = r.RenderDir(context.Background(), dir, instanceContext("etcd-acceptance", "acceptance-tests", instance{id: "x"}, props))
	require.NoError(t, err)
	require.NotContains(t, string(files["bin/run"]), "label-filter")
	checkScripts(t, files)

	// A required property missing: BOSH's error, naming the template and the property.
	delete(props["acceptance_tests"].(map[string]any), "director")
	_, err = r.RenderDir(context.Background(), dir, instanceContext("etcd-acceptance", "acceptance-tests", instance{id: "x"}, props))
	require.Error(t, err)
	require.Contains(t, err.Error(), "Unable to render templates for job 'acceptance-tests'. Errors are:")
	require.Contains(t, err.Error(), `Error filling in template 'config.json.erb' (line `)
	require.Contains(t, err.Error(), `Can't find property '["acceptance_tests.director.url"]'`)
}
