package opsfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	yamlv3 "gopkg.in/yaml.v3"
)

const base = `
name: etcd
releases:
- name: etcd
  version: latest
instance_groups:
- name: etcd
  instances: 3
  jobs:
  - name: etcd
    properties:
      etcd:
        require_ssl: true
`

// parse reads YAML with yaml.v3 into plain maps, so a result marshalled by yaml.v2 and an expectation written
// by hand compare as data, not as text.
func parse(t *testing.T, s []byte) any {
	t.Helper()
	var doc any
	require.NoError(t, yamlv3.Unmarshal(s, &doc))
	return doc
}

func writeOps(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ops.yml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

// TestApplyToYAMLPathSyntax covers the path forms the repository's ops files and operators use.
func TestApplyToYAMLPathSyntax(t *testing.T) {
	cases := []struct {
		name string
		ops  string
		want string // YAML of the expected result
	}{
		{"replace a value by matcher path", `
- type: replace
  path: /instance_groups/name=etcd/instances
  value: 5`, strings.Replace(base, "instances: 3", "instances: 5", 1)},
		{"optional path creates hashes", `
- type: replace
  path: /instance_groups/name=etcd/jobs/name=etcd/properties/etcd/consul?/enabled
  value: true`, strings.Replace(base, "require_ssl: true", "require_ssl: true\n        consul: {enabled: true}", 1)},
		{"append to an array", `
- type: replace
  path: /releases/-
  value: {name: consul-test, version: latest}`, strings.Replace(base, "  version: latest\n", "  version: latest\n- name: consul-test\n  version: latest\n", 1)},
		{"remove a key", `
- type: remove
  path: /instance_groups/name=etcd/jobs/name=etcd/properties/etcd/require_ssl`, strings.Replace(base, "      etcd:\n        require_ssl: true\n", "      etcd: {}\n", 1)},
		{"matcher with ? creates the element", `
- type: replace
  path: /instance_groups/name=consul?/instances
  value: 1`, base + "- name: consul\n  instances: 1\n"},
		{"index path", `
- type: replace
  path: /instance_groups/0/name
  value: etcd_z1`, strings.Replace(base, "- name: etcd\n  instances", "- name: etcd_z1\n  instances", 1)},
		{"insert before a matched element", `
- type: replace
  path: /instance_groups/name=etcd:before
  value: {name: consul, instances: 1}`, strings.Replace(base, "instance_groups:\n", "instance_groups:\n- name: consul\n  instances: 1\n", 1)},
		{"insert after an index", `
- type: replace
  path: /releases/0:after
  value: {name: consul, version: latest}`, strings.Replace(base, "  version: latest\n", "  version: latest\n- name: consul\n  version: latest\n", 1)},
		{"test passes, then replace", `
- type: test
  path: /name
  value: etcd
- type: replace
  path: /name
  value: etcd2`, strings.Replace(base, "name: etcd\nreleases", "name: etcd2\nreleases", 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ApplyToYAML([]byte(base), []string{writeOps(t, tc.ops)})
			require.NoError(t, err)
			require.Equal(t, parse(t, []byte(tc.want)), parse(t, got))
		})
	}
}

// TestApplyToYAMLErrors: go-patch's own messages (what `bosh deploy -o` prints), prefixed with the ops file.
func TestApplyToYAMLErrors(t *testing.T) {
	cases := []struct{ ops, want string }{
		{"- type: replace\n  path: /instance_groups/name=nope/instances\n  value: 1",
			"Expected to find exactly one matching array item for path '/instance_groups/name=nope' but found 0"},
		{"- type: replace\n  path: /missing/key\n  value: 1", "Expected to find a map key 'missing' for path '/missing'"},
		{"- type: move\n  path: /name", "Unknown operation [0] with type 'move'"},
		{"- type: replace\n  path: name\n  value: x", "Expected to start with '/'"},
		{"- type: test\n  path: /name\n  value: other", "Found value does not match expected value"},
		{"- type: replace\n  path: /missing/key\n  value: x\n  error: the manifest has no missing key", "Error 'the manifest has no missing key'"},
		{"type: replace", "not a list of operations"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			p := writeOps(t, tc.ops)
			_, err := ApplyToYAML([]byte(base), []string{p})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), p)
		})
	}
	_, err := ApplyToYAML([]byte(base), []string{"/nonexistent/ops.yml"})
	require.ErrorContains(t, err, "reading ops file")
	_, err = ApplyToYAML([]byte("a: [b"), []string{writeOps(t, "[]")})
	require.ErrorContains(t, err, "manifest is not YAML")
}

func TestApplyToYAMLKeepsVariables(t *testing.T) {
	p := writeOps(t, "- type: replace\n  path: /instance_groups/name=etcd/jobs/name=etcd/properties/etcd/ca_cert?\n  value: ((etcd_ca.certificate))")
	out, err := ApplyToYAML([]byte(base), []string{p})
	require.NoError(t, err)
	require.Contains(t, string(out), "ca_cert: ((etcd_ca.certificate))")

	same, err := ApplyToYAML([]byte(base), nil)
	require.NoError(t, err)
	require.Equal(t, base, string(same))
}

// lookup follows a path of keys and name= matchers through a parsed manifest.
func lookup(t *testing.T, doc any, path ...string) any {
	t.Helper()
	for _, p := range path {
		if name, ok := strings.CutPrefix(p, "name="); ok {
			var found any
			for _, e := range doc.([]any) {
				if e.(map[string]any)["name"] == name {
					found = e
				}
			}
			require.NotNil(t, found, "no element %s", p)
			doc = found
			continue
		}
		doc = doc.(map[string]any)[p]
	}
	return doc
}

// TestRepositoryOpsFilesApplyToTheManifest applies each of manifests/operations/*.yml to manifests/etcd.yml and
// checks what it is documented to change.
func TestRepositoryOpsFilesApplyToTheManifest(t *testing.T) {
	manifest, err := os.ReadFile("../../../manifests/etcd.yml")
	require.NoError(t, err)
	etcd := []string{"instance_groups", "name=etcd"}
	etcdJob := append(append([]string{}, etcd...), "jobs", "name=etcd")
	props := append(append([]string{}, etcdJob...), "properties", "etcd")
	checks := map[string]func(t *testing.T, doc any){
		"1-node.yml": func(t *testing.T, doc any) {
			require.Equal(t, 1, lookup(t, doc, append(etcd, "instances")...))
			require.Equal(t, []any{"z1"}, lookup(t, doc, append(etcd, "azs")...))
			require.Equal(t, []any{"10.244.0.2"}, lookup(t, doc, append(etcd, "networks", "name=default", "static_ips")...))
		},
		"5-node.yml": func(t *testing.T, doc any) {
			require.Equal(t, 5, lookup(t, doc, append(etcd, "instances")...))
			require.Len(t, lookup(t, doc, append(etcd, "networks", "name=default", "static_ips")...), 5)
		},
		"bbr.yml": func(t *testing.T, doc any) {
			jobs := lookup(t, doc, append(etcd, "jobs")...).([]any)
			bbr := jobs[len(jobs)-1].(map[string]any)
			require.Equal(t, "bbr-etcd", bbr["name"])
			require.Equal(t, map[string]any{"bbr": map[string]any{"backup_one_restore_all": true}}, bbr["properties"])
		},
		"consul.yml": func(t *testing.T, doc any) {
			groups := lookup(t, doc, "instance_groups").([]any)
			require.Equal(t, "consul", groups[0].(map[string]any)["name"], "the consul servers come first")
			jobs := lookup(t, doc, append(etcd, "jobs")...).([]any)
			require.Equal(t, "consul_agent", jobs[0].(map[string]any)["name"], "the agent is inserted before etcd")
			require.Equal(t, map[string]any{"etcd": "nil"}, lookup(t, doc, append(etcdJob, "consumes")...))
			require.Equal(t, true, lookup(t, doc, append(props, "consul", "enabled")...))
			require.Equal(t, "((etcd_ca_cert))", lookup(t, doc, append(props, "ca_cert")...), "kept")
			require.Equal(t, "consul", lookup(t, doc, "releases").([]any)[1].(map[string]any)["name"])
		},
		"metrics-https.yml": func(t *testing.T, doc any) {
			require.Equal(t, "https", lookup(t, doc, append(props, "metrics_scheme")...))
			require.Equal(t, "((etcd_metrics_ca_cert))", lookup(t, doc, append(props, "metrics_ca_cert")...))
			require.Equal(t, "((etcd_metrics_server_key))", lookup(t, doc, append(props, "metrics_server_key")...))
			require.Equal(t, "((etcd_ca_cert))", lookup(t, doc, append(props, "ca_cert")...), "the client CA is kept")
		},
		"no-tls.yml": func(t *testing.T, doc any) {
			require.Equal(t, map[string]any{"require_ssl": false, "peer_require_ssl": false}, lookup(t, doc, props...))
		},
		"test-helper.yml": func(t *testing.T, doc any) {
			jobs := lookup(t, doc, append(etcd, "jobs")...).([]any)
			require.Equal(t, "etcd-test-helper", jobs[len(jobs)-1].(map[string]any)["name"])
			require.Equal(t, "etcd_test_helper_password", lookup(t, doc, "variables").([]any)[0].(map[string]any)["name"])
		},
	}
	files, err := filepath.Glob("../../../manifests/operations/*.yml")
	require.NoError(t, err)
	require.Len(t, files, len(checks), "every ops file has a check here")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			check, ok := checks[filepath.Base(f)]
			require.True(t, ok, "no check for %s", f)
			out, err := ApplyToYAML(manifest, []string{f})
			require.NoError(t, err)
			check(t, parse(t, out))
		})
	}
	// Ops files compose in order, as with several -o flags.
	out, err := ApplyToYAML(manifest, []string{"../../../manifests/operations/no-tls.yml", "../../../manifests/operations/1-node.yml"})
	require.NoError(t, err)
	doc := parse(t, out)
	require.Equal(t, 1, lookup(t, doc, append(etcd, "instances")...))
	require.Equal(t, false, lookup(t, doc, append(props, "require_ssl")...))
}
