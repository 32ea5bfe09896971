package erb

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

const propsSpec = `
name: etcd
properties:
  etcd.port: {default: 2379}
  etcd.require_ssl: {default: true}
  etcd.ca_cert: {description: "no default"}
  etcd.peers: {default: [a, b]}
  etcd.tls.opts: {default: {min: "1.2"}}
  top: {default: plain}
provides:
- name: etcd
  type: etcd
  properties: [etcd.port, etcd.ca_cert, etcd.tls.opts]
- name: bad
  type: etcd
  properties: [etcd.undeclared]
`

func mustSpec(t *testing.T, doc string) *release.JobSpec {
	t.Helper()
	s, err := release.ParseJobSpec([]byte(doc))
	require.NoError(t, err)
	return s
}

func yamlMap(t *testing.T, doc string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(doc), &m))
	return m
}

func TestResolveProperties(t *testing.T) {
	spec := mustSpec(t, propsSpec)
	cases := []struct {
		name    string
		raw     string
		want    string
		wantErr string
	}{
		{name: "nothing set: defaults, nil without default", raw: `{}`, want: `
etcd: {port: 2379, require_ssl: true, ca_cert: null, peers: [a, b], tls: {opts: {min: "1.2"}}}
top: plain`},
		{name: "nil raw is an empty hash", raw: ``, want: `
etcd: {port: 2379, require_ssl: true, ca_cert: null, peers: [a, b], tls: {opts: {min: "1.2"}}}
top: plain`},
		{name: "explicit null falls back to default; false is kept", raw: `
etcd: {port: null, require_ssl: false, ca_cert: PEM}`, want: `
etcd: {port: 2379, require_ssl: false, ca_cert: PEM, peers: [a, b], tls: {opts: {min: "1.2"}}}
top: plain`},
		{name: "undeclared keys are dropped; hash values replace defaults whole", raw: `
etcd: {port: 1, extra: x, tls: {opts: {max: "1.3"}, other: y}}
unrelated: {a: 1}`, want: `
etcd: {port: 1, require_ssl: true, ca_cert: null, peers: [a, b], tls: {opts: {max: "1.3"}}}
top: plain`},
		{name: "string where a hash is expected", raw: `etcd: "oops"`,
			wantErr: `Property 'etcd.port' expects a hash, but received 'String'`},
		{name: "integer deeper down", raw: `etcd: {tls: 3}`,
			wantErr: `Property 'etcd.tls.opts' expects a hash, but received 'Integer'`},
		{name: "array", raw: `etcd: [1]`, wantErr: `Property 'etcd.port' expects a hash, but received 'Array'`},
		{name: "boolean", raw: `etcd: {tls: true}`, wantErr: `Property 'etcd.tls.opts' expects a hash, but received 'TrueClass'`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var raw map[string]any
			if tc.raw != "" {
				raw = yamlMap(t, tc.raw)
			}
			got, err := ResolveProperties(spec, raw)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				var perr *PropertyTypeError
				require.True(t, errors.As(err, &perr))
				return
			}
			require.NoError(t, err)
			require.Equal(t, yamlMap(t, tc.want), got)
			again, err := ResolveProperties(spec, got)
			require.NoError(t, err)
			require.Equal(t, got, again, "resolving is idempotent")
		})
	}
}

func TestResolvePropertiesDoesNotAlias(t *testing.T) {
	spec := mustSpec(t, propsSpec)
	raw := yamlMap(t, `etcd: {peers: [x]}`)
	got, err := ResolveProperties(spec, raw)
	require.NoError(t, err)
	got["etcd"].(map[string]any)["peers"].([]any)[0] = "changed"
	require.Equal(t, "x", raw["etcd"].(map[string]any)["peers"].([]any)[0])
	got2, err := ResolveProperties(spec, nil)
	require.NoError(t, err)
	got2["etcd"].(map[string]any)["peers"].([]any)[0] = "changed"
	require.Equal(t, "a", spec.Properties["etcd.peers"].Default.([]any)[0], "spec defaults are copied")
}

func TestResolveLinkProperties(t *testing.T) {
	spec := mustSpec(t, propsSpec)
	got, err := ResolveLinkProperties(spec, yamlMap(t, `etcd: {port: null, ca_cert: PEM, require_ssl: false}`), "etcd")
	require.NoError(t, err)
	require.Equal(t, yamlMap(t, `etcd: {port: 2379, ca_cert: PEM, tls: {opts: {min: "1.2"}}}`), got)

	_, err = ResolveLinkProperties(spec, nil, "bad")
	require.EqualError(t, err, "Link property etcd.undeclared in template etcd is not defined in release spec")
	_, err = ResolveLinkProperties(spec, nil, "nope")
	require.ErrorContains(t, err, "does not provide a link named 'nope'")
	_, err = ResolveLinkProperties(spec, yamlMap(t, `etcd: 5`), "etcd")
	require.EqualError(t, err, `Property 'etcd.port' expects a hash, but received 'Integer'`)
}

func TestNestedErrorFormat(t *testing.T) {
	tmpl := func(file, line, msg string) error {
		return &TemplateError{Template: file, Line: line, Message: msg}
	}
	err := NewDeploymentError(
		&InstanceGroupError{InstanceGroup: "a", Errors: []error{
			&JobError{Job: "j1", Errors: []error{tmpl("x.erb", "1", "boom"), tmpl("y.erb", "(unknown)", "two\nlines")}},
			&JobError{Job: "j2", Errors: []error{tmpl("monit", "3", "Can't find link 'l'")}},
		}},
		nil,
		&InstanceGroupError{InstanceGroup: "b", Errors: []error{
			&JobError{Job: "j3", Errors: []error{tmpl("z.erb", "9", `Can't find property '["p"]'`)}},
		}},
	)
	require.Equal(t, `Unable to render instance groups for deployment. Errors are:
  - Unable to render jobs for instance group 'a'. Errors are:
    - Unable to render templates for job 'j1'. Errors are:
      - Error filling in template 'x.erb' (line 1: boom)
      - Error filling in template 'y.erb' (line (unknown): two
      lines)
    - Unable to render templates for job 'j2'. Errors are:
      - Error filling in template 'monit' (line 3: Can't find link 'l')
  - Unable to render jobs for instance group 'b'. Errors are:
    - Unable to render templates for job 'j3'. Errors are:
      - Error filling in template 'z.erb' (line 9: Can't find property '["p"]')`, err.Error())
	require.NoError(t, NewDeploymentError())
	require.NoError(t, NewDeploymentError(&InstanceGroupError{InstanceGroup: "ok"}))
}
