package jobtemplates

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
	"github.com/etcd-release/etcd-release/src/releasetools/erb"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// validationTime is the "now" certificates are checked against, so the test does not depend on the clock.
var validationTime = time.Now()

var (
	repo         = filepath.Join("..", "..", "..")
	manifestsDir = filepath.Join(repo, "manifests")
	opsDir       = filepath.Join(manifestsDir, "operations")
)

var (
	setOnce sync.Once
	certSet *pki.Set
	setErr  error
)

// certVars are the variables scripts/generate-certs would write: certificates covering the static IPs of the
// sample manifests and the consul DNS names.
func certVars(t *testing.T) map[string]any {
	t.Helper()
	setOnce.Do(func() {
		var ips []net.IP
		for i := 2; i <= 6; i++ {
			ips = append(ips, net.ParseIP(fmt.Sprintf("10.244.0.%d", i)))
		}
		certSet, setErr = pki.GenerateClusterSet(pki.SetOptions{
			IPs:      ips,
			DNSNames: []string{"*.etcd.service.cf.internal", "etcd.service.cf.internal"},
		})
	})
	require.NoError(t, setErr)
	vars := map[string]any{}
	require.NoError(t, yaml.Unmarshal(certSet.VarsYAML(), &vars))
	vars["etcd_test_helper_password"] = "helper-password"
	return vars
}

func renderer(t *testing.T) *erb.Renderer {
	t.Helper()
	r, err := erb.NewRenderer("")
	require.NoError(t, err)
	return r
}

func jobSpec(t *testing.T, job string) *release.JobSpec {
	t.Helper()
	j, err := erb.LoadJob(filepath.Join(repo, "jobs", job))
	require.NoError(t, err)
	return j.Spec
}

// instance is one instance of a group as a director would place it.
type instance struct {
	index int
	id    string
	az    string
	ip    string
}

// placeInstances gives the group's instances their static IPs (or 10.244.1.<index+2>) and spreads them over the
// group's AZs round-robin.
func placeInstances(t *testing.T, group map[string]any) []instance {
	t.Helper()
	n, ok := group["instances"].(int)
	require.True(t, ok, "instances must be an integer")
	azs, _ := group["azs"].([]any)
	var static []any
	if nets, ok := group["networks"].([]any); ok && len(nets) > 0 {
		static, _ = nets[0].(map[string]any)["static_ips"].([]any)
	}
	if static != nil {
		require.Len(t, static, n, "instance group %v has %d instances but was allocated %d static IPs", group["name"], n, len(static))
	}
	var out []instance
	for i := range n {
		inst := instance{index: i, id: fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), ip: fmt.Sprintf("10.244.1.%d", i+2)}
		if static != nil {
			inst.ip = static[i].(string)
		}
		if len(azs) > 0 {
			inst.az = azs[i%len(azs)].(string)
		}
		out = append(out, inst)
	}
	return out
}

// etcdLink resolves the etcd job's `etcd` link as a director would: blocked by `nil`, explicit or implicit, the
// provider being the group's own etcd job (the only etcd_service provider in these manifests).
func etcdLink(t *testing.T, deployment, groupName string, job map[string]any, insts []instance, spec *release.JobSpec, props map[string]any) (erb.Link, bool) {
	t.Helper()
	if consumes, ok := job["consumes"].(map[string]any); ok {
		if v, ok := consumes["etcd"]; ok && v == "nil" {
			return erb.Link{}, false
		}
	}
	linkProps, err := erb.ResolveLinkProperties(spec, props, "etcd")
	require.NoError(t, err)
	l := erb.Link{
		Address:        fmt.Sprintf("q-s0.%s.default.%s.bosh", groupName, deployment),
		Properties:     linkProps,
		InstanceGroup:  groupName,
		DeploymentName: deployment,
		DefaultNetwork: "default",
		Domain:         "bosh",
	}
	for _, i := range insts {
		l.Instances = append(l.Instances, erb.LinkInstance{Name: groupName, Index: i.index, ID: i.id, AZ: i.az, Address: i.ip, Bootstrap: i.index == 0})
	}
	return l, true
}

func instanceContext(deployment, group string, inst instance, props map[string]any) erb.Context {
	return erb.Context{
		Deployment:    deployment,
		InstanceGroup: group,
		Index:         inst.index,
		ID:            inst.id,
		AZ:            inst.az,
		Bootstrap:     inst.index == 0,
		Address:       inst.ip,
		IP:            inst.ip,
		Networks: map[string]erb.Network{"default": {
			Type: "manual", IP: inst.ip, Netmask: "255.255.0.0", Gateway: "10.244.0.1", Default: []string{"dns", "gateway"},
		}},
		PersistentDisk: 1024,
		Release:        erb.ReleaseRef{Name: "etcd", Version: "0+dev.1"},
		Properties:     props,
	}
}

// rendered is one instance's rendered etcd job.
type rendered struct {
	inst  instance
	files map[string][]byte
	cfg   *config.Config
}

// renderEtcd renders the etcd job of the manifest's `etcd` group on every instance.
func renderEtcd(t *testing.T, manifest map[string]any) []rendered {
	t.Helper()
	r := renderer(t)
	deployment := manifest["name"].(string)
	group, err := InstanceGroup(manifest, "etcd")
	require.NoError(t, err)
	job, err := Job(group, "etcd")
	require.NoError(t, err)
	props, _ := job["properties"].(map[string]any)
	spec := jobSpec(t, "etcd")
	insts := placeInstances(t, group)
	link, linked := etcdLink(t, deployment, "etcd", job, insts, spec, props)
	var out []rendered
	for _, inst := range insts {
		c := instanceContext(deployment, "etcd", inst, props)
		if linked {
			c.Links = map[string]erb.Link{"etcd": link}
		}
		files, err := r.RenderDir(context.Background(), filepath.Join(repo, "jobs", "etcd"), c)
		require.NoError(t, err)
		cfg, err := config.Parse(files["config/etcd_ctl.json"])
		require.NoError(t, err, "%s", files["config/etcd_ctl.json"])
		out = append(out, rendered{inst: inst, files: files, cfg: cfg})
	}
	return out
}

func loadSample(t *testing.T, ops ...string) map[string]any {
	t.Helper()
	var paths []string
	for _, o := range ops {
		paths = append(paths, filepath.Join(opsDir, o+".yml"))
	}
	m, err := LoadManifest(filepath.Join(manifestsDir, "etcd.yml"), paths, certVars(t))
	require.NoError(t, err)
	return m
}

// checkMembers validates every instance's config and checks the desired members it derives.
func checkMembers(t *testing.T, rs []rendered, scheme string, hosts []string, source string) {
	t.Helper()
	for _, r := range rs {
		warnings, err := r.cfg.Validate(validationTime)
		require.NoError(t, err, "instance %d", r.inst.index)
		if scheme == "http" {
			// The no-tls ops file keeps etcd.client_ip at 0.0.0.0: pre-start warns about the plaintext port.
			require.Len(t, warnings, 1)
			require.Contains(t, warnings[0], "serves plaintext")
		} else {
			require.Empty(t, warnings)
		}
		members, err := r.cfg.DesiredMembers()
		require.NoError(t, err)
		var got []string
		for _, m := range members {
			got = append(got, m.PeerURL)
			require.Equal(t, m.Self, m.Host == hosts[r.inst.index], "member %s self flag on instance %d", m.Host, r.inst.index)
		}
		var want []string
		for _, h := range hosts {
			want = append(want, fmt.Sprintf("%s://%s:7001", scheme, h))
		}
		require.ElementsMatch(t, want, got, "instance %d", r.inst.index)
		require.Contains(t, r.cfg.PeerSource(), source)
		require.Equal(t, r.inst.index == 0, r.cfg.Instance.Bootstrap)
		require.Equal(t, "etcd", r.cfg.Instance.Deployment)
	}
}

func ips(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("10.244.0.%d", i+2))
	}
	return out
}

func TestSampleManifests(t *testing.T) {
	vars := certVars(t)
	for _, tc := range []struct {
		name   string
		ops    []string
		scheme string
		hosts  []string
		source string
		tls    bool
		golden bool
	}{
		{"tls-3", nil, "https", ips(3), "link", true, true},
		{"no-tls-3", []string{"no-tls"}, "http", ips(3), "link", false, true},
		{"tls-1", []string{"1-node"}, "https", ips(1), "link", true, false},
		{"tls-5", []string{"5-node"}, "https", ips(5), "link", true, false},
		{"no-tls-1", []string{"no-tls", "1-node"}, "http", ips(1), "link", false, true},
		{"no-tls-5", []string{"no-tls", "5-node"}, "http", ips(5), "link", false, true},
		{"consul", []string{"consul"}, "https", []string{
			"etcd-0.etcd.service.cf.internal", "etcd-1.etcd.service.cf.internal", "etcd-2.etcd.service.cf.internal",
		}, "cluster", true, false},
		{"test-helper", []string{"test-helper"}, "https", ips(3), "link", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := renderEtcd(t, loadSample(t, tc.ops...))
			checkMembers(t, rs, tc.scheme, tc.hosts, tc.source)
			for _, r := range rs {
				checkScripts(t, r.files)
				if tc.tls {
					requirePEMFile(t, vars["etcd_ca_cert"], r.files["config/certs/ca.crt"])
					requirePEMFile(t, vars["etcd_client_cert"], r.files["config/certs/client.crt"])
					requirePEMFile(t, vars["etcd_client_key"], r.files["config/certs/client.key"])
					require.Equal(t, vars["etcd_server_cert"], r.cfg.Etcd.ServerCert)
					require.Equal(t, vars["etcd_server_key"], r.cfg.Etcd.ServerKey.Value())
					require.Equal(t, vars["etcd_peer_ca_cert"], r.cfg.Etcd.PeerCACert)
					require.Equal(t, vars["etcd_peer_key"], r.cfg.Etcd.PeerKey.Value())
				} else {
					require.Equal(t, "\n", string(r.files["config/certs/ca.crt"]))
					require.False(t, r.cfg.Etcd.RequireSSL)
					require.False(t, r.cfg.Etcd.PeerRequireSSL)
				}
			}
			if tc.golden {
				golden(t, tc.name, rs[0].files, !tc.tls)
			}
		})
	}
}

// requirePEMFile checks that a rendered file holds exactly the PEM of a variable (plus the template's newline).
func requirePEMFile(t *testing.T, want any, got []byte) {
	t.Helper()
	w, ok := want.(string)
	require.True(t, ok)
	require.NotEmpty(t, strings.TrimSpace(w))
	require.Equal(t, strings.TrimRight(w, "\n"), strings.TrimRight(string(got), "\n"))
}

// checkScripts runs `bash -n` on every rendered bin/ script.
func checkScripts(t *testing.T, files map[string][]byte) {
	t.Helper()
	for name, content := range files {
		if !strings.HasPrefix(name, "bin/") {
			continue
		}
		require.True(t, strings.HasPrefix(string(content), "#!/bin/bash\n"), "%s has a bash shebang", name)
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = strings.NewReader(string(content))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "bash -n %s: %s\n%s", name, out, content)
	}
}

// golden compares the rendered files with testdata/<case>/<dest path> (secrets only when withSecrets: rendered
// files holding TLS material are generated per run and checked above instead).
func golden(t *testing.T, name string, files map[string][]byte, withSecrets bool) {
	t.Helper()
	dir := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.RemoveAll(dir))
	}
	var names []string
	for n := range files {
		if !withSecrets && (strings.HasPrefix(n, "config/certs/") || n == "config/etcd_ctl.json") {
			continue
		}
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if *update {
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, files[n], 0o644))
			continue
		}
		want, err := os.ReadFile(p)
		require.NoError(t, err, "golden file missing; run go test ./src/releasetools/jobtemplates -update")
		require.Equal(t, string(want), string(files[n]), "%s differs from %s (go test ./src/releasetools/jobtemplates -update rewrites it)", n, p)
	}
}
