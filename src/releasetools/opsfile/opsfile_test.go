package opsfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
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

func parse(t *testing.T, s string) any {
	t.Helper()
	var doc any
	require.NoError(t, yaml.Unmarshal([]byte(s), &doc))
	return doc
}

func writeOps(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ops.yml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

func TestApplyFiles(t *testing.T) {
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
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ApplyFiles(parse(t, base), []string{writeOps(t, tc.ops)})
			require.NoError(t, err)
			require.Equal(t, parse(t, tc.want), got)
		})
	}
}

func TestApplyFilesErrorsNameTheOperation(t *testing.T) {
	cases := []struct{ ops, want string }{
		{"- type: replace\n  path: /instance_groups/name=nope/instances\n  value: 1", `operation 0 (replace /instance_groups/name=nope/instances): no array element "name=nope"`},
		{"- type: replace\n  path: /missing/key\n  value: 1", `operation 0 (replace /missing/key): no key "missing"`},
		{"- type: move\n  path: /name", `unsupported operation type "move"`},
		{"- type: replace\n  path: name\n  value: x", "path must start with /"},
		{"type: replace", "not a list of operations"},
	}
	for _, tc := range cases {
		p := writeOps(t, tc.ops)
		_, err := ApplyFiles(parse(t, base), []string{p})
		require.Error(t, err)
		require.Contains(t, err.Error(), tc.want)
		require.Contains(t, err.Error(), p)
	}
	_, err := ApplyFiles(parse(t, base), []string{"/nonexistent/ops.yml"})
	require.ErrorContains(t, err, "reading ops file")
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

func TestRepositoryOpsFilesApplyToTheManifest(t *testing.T) {
	manifest, err := os.ReadFile("../../../manifests/etcd.yml")
	require.NoError(t, err)
	files, err := filepath.Glob("../../../manifests/operations/*.yml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		_, err := ApplyToYAML(manifest, []string{f})
		require.NoError(t, err, f)
	}
}
