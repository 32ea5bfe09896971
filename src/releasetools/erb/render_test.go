package erb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// newRenderer fails (never skips) when ruby is missing: rendering is only meaningful with the real interpreter.
func newRenderer(t *testing.T) *Renderer {
	t.Helper()
	r, err := NewRenderer("")
	require.NoError(t, err, "these tests need a real ruby (apt-get install -y ruby)")
	return r
}

func testContext() Context {
	return Context{
		Deployment:    "etcd-dep",
		InstanceGroup: "demo-group",
		Index:         2,
		ID:            "6b1c7a1e-0000-4000-8000-000000000002",
		AZ:            "",
		Bootstrap:     true,
		Address:       "10.244.0.4",
		IP:            "10.244.0.4",
		Networks: map[string]Network{
			"default":   {IP: "10.244.0.4", Netmask: "255.255.0.0", Gateway: "10.244.0.1", Default: []string{"dns", "gateway"}},
			"other-net": {IP: "10.245.0.9", Netmask: "255.255.255.0", Gateway: "10.245.0.1"},
		},
		PersistentDisk: 1024,
		Release:        ReleaseRef{Name: "etcd", Version: "0+dev.3"},
		Properties: map[string]any{
			"demo": map[string]any{
				"name":       "alpha",
				"port":       nil, // explicit null falls back to the default
				"undeclared": "never seen",
			},
			"other_job": map[string]any{"x": 1},
		},
		Links: map[string]Link{
			"peers": {
				Address:    "q-s0.demo-group.default.etcd-dep.bosh",
				Properties: map[string]any{"demo": map[string]any{"port": 4001, "tls": map[string]any{"ca": nil}}},
				Instances: []LinkInstance{
					{Name: "demo-group", Index: 0, ID: "id-0", AZ: "z1", Address: "10.244.0.2", Bootstrap: true},
					{Name: "demo-group", Index: 1, ID: "id-1", AZ: "z2", Address: "10.244.0.3"},
				},
			},
		},
	}
}

func TestRenderDemoJob(t *testing.T) {
	r := newRenderer(t)
	files, err := r.RenderDir(context.Background(), filepath.Join("testdata", "jobs", "demo"), testContext())
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"monit", "config/config.json", "config/spec.txt", "config/if_p.txt",
		"config/trim.txt", "config/links.txt"}, keys(files))

	t.Run("monit uses the same context", func(t *testing.T) {
		require.Equal(t, `check process demo-2
  with pidfile /var/vcap/sys/run/demo/demo.pid
  start program "/var/vcap/jobs/demo/bin/ctl start 4001"
  stop program "/var/vcap/jobs/demo/bin/ctl stop"
  group vcap
`, string(files["monit"]))
	})

	t.Run("p: defaults, first non-nil name, p default, undeclared dropped, floats stay floats", func(t *testing.T) {
		require.Equal(t, `{
  "name": "alpha",
  "port": 4001,
  "flag": false,
  "ratio": 1.0,
  "ca": "none",
  "list": [
    "a",
    "b"
  ],
  "undeclared": "dropped"
}
`, string(files["config/config.json"]))
	})

	t.Run("spec fields", func(t *testing.T) {
		require.Equal(t, `deployment=etcd-dep
name=demo-group legacy_name=demo-group
index=2 legacy_index=2
id=6b1c7a1e-0000-4000-8000-000000000002
az=nil
bootstrap=true
address=10.244.0.4
ip=10.244.0.4
networks=default,other-net
default.ip=10.244.0.4 netmask=255.255.0.0 gateway=10.244.0.1 default=dns,gateway
other.ip=10.245.0.9
persistent_disk=1024
release=etcd/0+dev.3
spec.properties.demo.port=4001
properties.demo.port=4001
`, string(files["config/spec.txt"]))
	})

	t.Run("if_p, else, else_if_p; false counts as set", func(t *testing.T) {
		require.Equal(t, "no ca\nport=4001 flag=false\nelse_if_p name=alpha\n", string(files["config/if_p.txt"]))
	})

	t.Run("trim mode -", func(t *testing.T) {
		require.Equal(t, "item 1\nitem 2\nitem 3\nindented tags vanish\nkept \nend\n", string(files["config/trim.txt"]))
	})

	t.Run("link, if_link, instances, link p/if_p, address", func(t *testing.T) {
		require.Equal(t, `peers.address=q-s0.demo-group.default.etcd-dep.bosh
peers.port=4001
peers.ca=no-ca
peers.if_p.port=4001
instance name=demo-group index=0 id=id-0 az=z1 address=10.244.0.2 bootstrap=true
instance name=demo-group index=1 id=id-1 az=z2 address=10.244.0.3 bootstrap=false
no db
`, string(files["config/links.txt"]))
	})
}

func TestRenderWithoutLinks(t *testing.T) {
	r := newRenderer(t)
	c := testContext()
	c.Links = nil
	c.AZ = "z1"
	files, err := r.RenderDir(context.Background(), filepath.Join("testdata", "jobs", "demo"), c)
	require.NoError(t, err)
	require.Equal(t, "no peers\nno db\n", string(files["config/links.txt"]))
	require.Contains(t, string(files["config/spec.txt"]), "az=\"z1\"\n")
}

func TestRenderExtractedJobArchive(t *testing.T) {
	r := newRenderer(t)
	files, err := r.RenderDir(context.Background(), filepath.Join("testdata", "jobs", "extracted"), testContext())
	require.NoError(t, err)
	require.Equal(t, "#!/bin/bash\necho \"hello from demo-group/6b1c7a1e-0000-4000-8000-000000000002\"\n", string(files["bin/ctl"]))
	require.Contains(t, string(files["monit"]), "check process extracted")
}

func TestRenderErrorsAreBOSHFormatted(t *testing.T) {
	r := newRenderer(t)
	c := testContext()
	_, err := r.RenderDir(context.Background(), filepath.Join("testdata", "jobs", "broken"), c)
	require.Error(t, err)

	var jerr *JobError
	require.True(t, errors.As(err, &jerr))
	require.Equal(t, "broken", jerr.Job)
	require.Equal(t, `Unable to render templates for job 'broken'. Errors are:
  - Error filling in template 'missing_property.erb' (line 4: Can't find property '["broken.unset"]')
  - Error filling in template 'missing_link.erb' (line 2: Can't find link 'nope')
  - Error filling in template 'nil_method.erb' (line 4: undefined method `+"`upcase'"+` for nil:NilClass)
  - Error filling in template 'link_property.erb' (line 1: Can't find property '["demo.missing"]')`, err.Error())

	var terr *TemplateError
	require.True(t, errors.As(err, &terr))
	require.Equal(t, "missing_property.erb", terr.Src)
	require.Equal(t, "4", terr.Line)
	require.Equal(t, "Bosh::Template::UnknownProperty", terr.RubyClass)

	dep := NewDeploymentError(
		&InstanceGroupError{InstanceGroup: "fine-group"},
		&InstanceGroupError{InstanceGroup: "etcd", Errors: []error{err}},
	)
	require.Equal(t, `Unable to render instance groups for deployment. Errors are:
  - Unable to render jobs for instance group 'etcd'. Errors are:
    - Unable to render templates for job 'broken'. Errors are:
      - Error filling in template 'missing_property.erb' (line 4: Can't find property '["broken.unset"]')
      - Error filling in template 'missing_link.erb' (line 2: Can't find link 'nope')
      - Error filling in template 'nil_method.erb' (line 4: undefined method `+"`upcase'"+` for nil:NilClass)
      - Error filling in template 'link_property.erb' (line 1: Can't find property '["demo.missing"]')`, dep.Error())
	require.True(t, errors.As(dep, &terr), "the tree unwraps down to the template errors")
}

func TestRenderInlineCases(t *testing.T) {
	r := newRenderer(t)
	spec, err := release.ParseJobSpec([]byte(`
name: inline
templates:
  sub/dir/t.erb: out
properties:
  a.b: {default: 1}
  a.c: {}
`))
	require.NoError(t, err)
	cases := []struct {
		name    string
		monit   string
		tmpl    string
		props   map[string]any
		want    string
		wantErr string
	}{
		{name: "p with default for unset", tmpl: `<%= p("a.c", "dflt") %>`, want: "dflt"},
		{name: "p list falls through nil", tmpl: `<%= p(["a.c", "a.b"]) %>`, want: "1"},
		{name: "p list without default", tmpl: `<%= p(["a.c", "x.y"]) %>`,
			wantErr: `Error filling in template 't.erb' (line 1: Can't find property '["a.c", "x.y"]')`},
		{name: "monit error reported as monit", monit: "\n<%= p('nope') %>", tmpl: "ok",
			wantErr: `Error filling in template 'monit' (line 2: Can't find property '["nope"]')`},
		{name: "explicit raise", tmpl: "a\nb\n<% raise 'custom failure' %>",
			wantErr: `Error filling in template 't.erb' (line 3: custom failure)`},
		{name: "syntax error names the line", tmpl: "<% if true %>\nx\n",
			wantErr: `Error filling in template 't.erb' (line 3: inline/sub/dir/t.erb:3: syntax error`},
		{name: "exit is reported, not obeyed", tmpl: "<% exit 3 %>", wantErr: `Error filling in template 't.erb' (line 1: exit)`},
		{name: "stdout writes do not corrupt output", tmpl: `<% puts "noise"; STDOUT.write("more") %>fine`, want: "fine"},
		{name: "instance variables do not leak from monit", monit: "<% @x = 1 %>", tmpl: "<%= @x.inspect %>", want: "nil"},
		{name: "if_link else_if_link", tmpl: `<% if_link("nope") do |l| %>x<% end.else_if_link("peers") do |l| %><%= l.instances.size %><% end %>`, want: "2"},
		{name: "else_if_p falls to else", tmpl: `<% if_p("a.c") do %>x<% end.else_if_p("a.c") do %>y<% end %>`, want: ""},
		{name: "link if_p else", tmpl: `<% link("peers").if_p("demo.tls.ca") do |ca| %>x<% end.else do %>no-ca<% end %>`, want: "no-ca"},
		{name: "link p without default raises", tmpl: "\n<%= link('peers').p('demo.tls.ca') %>",
			wantErr: `Error filling in template 't.erb' (line 2: Can't find property '["demo.tls.ca"]')`},
		{name: "link instances bootstrap and az", tmpl: `<%= link("peers").instances.map { |i| [i.index, i.az, i.bootstrap].join(":") }.join(",") %>`,
			want: "0:z1:true,1:z2:false"},
		{name: "utf-8 text", tmpl: "héllo <%= p('a.b') %> ✓", want: "héllo 1 ✓"},
		{name: "properties resolved before rendering", tmpl: `<%= p("a").keys.sort.join(",") %>`,
			props: map[string]any{"a": map[string]any{"z": 1}}, want: "b,c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := &Job{Spec: spec, Monit: []byte(tc.monit), Templates: map[string][]byte{"sub/dir/t.erb": []byte(tc.tmpl)}}
			c := testContext()
			c.Properties = tc.props
			files, err := r.Render(context.Background(), job, c)
			if tc.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, string(files["out"]))
		})
	}
}

func TestRenderHonoursContext(t *testing.T) {
	r := newRenderer(t)
	spec, err := release.ParseJobSpec([]byte("name: slow\ntemplates: {t.erb: t}\n"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = r.Render(ctx, &Job{Spec: spec, Templates: map[string][]byte{"t.erb": []byte("<% sleep 30 %>")}}, Context{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 10*time.Second)
}

func TestLoadJobMissingFiles(t *testing.T) {
	_, err := LoadJob(filepath.Join("testdata", "jobs", "does-not-exist"))
	require.Error(t, err)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "spec"), "name: j\ntemplates: {a.erb: a}\n")
	_, err = LoadJob(dir)
	require.ErrorContains(t, err, "missing monit file")
	writeFile(t, filepath.Join(dir, "monit"), "")
	_, err = LoadJob(dir)
	require.ErrorContains(t, err, "missing template 'a.erb'")
}

func keys(m map[string][]byte) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

// TestRenderWithoutOstruct runs the demo job on a Ruby where `require 'ostruct'` fails (as on Rubies that ship it
// as a bundled gem), and expects the same files.
func TestRenderWithoutOstruct(t *testing.T) {
	r := newRenderer(t)
	want, err := r.RenderDir(context.Background(), filepath.Join("testdata", "jobs", "demo"), testContext())
	require.NoError(t, err)

	dir := t.TempDir()
	// Only the render script's own require fails; Ruby 3.1's json loads ostruct for itself.
	preload := filepath.Join(dir, "no_ostruct.rb")
	writeFile(t, preload, `module Kernel
  alias_method :require_before_test, :require
  def require(name)
    raise LoadError, 'simulated: ostruct is a bundled gem' if name == 'ostruct' && caller_locations(1, 1)[0].path == '-e'
    require_before_test(name)
  end
end
`)
	wrapper := filepath.Join(dir, "ruby")
	writeFile(t, wrapper, "#!/bin/sh\nexec "+r.Ruby()+" -r "+preload+" \"$@\"\n")
	require.NoError(t, os.Chmod(wrapper, 0o755))
	noOstruct, err := NewRenderer(wrapper)
	require.NoError(t, err)
	got, err := noOstruct.RenderDir(context.Background(), filepath.Join("testdata", "jobs", "demo"), testContext())
	require.NoError(t, err)
	require.Equal(t, stringsOf(want), stringsOf(got))

	spec, err := release.ParseJobSpec([]byte("name: s\ntemplates: {t.erb: t}\n"))
	require.NoError(t, err)
	files, err := noOstruct.Render(context.Background(), &Job{Spec: spec, Templates: map[string][]byte{
		"t.erb": []byte(`<%= spec.class.superclass %> <%= spec.networks.to_h.keys.sort.join(",") %> <%= spec["deployment"] %>`),
	}}, testContext())
	require.NoError(t, err)
	require.Equal(t, "FallbackStruct default,other-net etcd-dep", string(files["t"]))
}

func stringsOf(m map[string][]byte) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}
