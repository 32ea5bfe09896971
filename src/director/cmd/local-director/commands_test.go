package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// TestManifestInputBuild builds deploy manifests from the repository's manifest and ops files, as `deploy -o -l
// -v` does: ops files first, then variables.
func TestManifestInputBuild(t *testing.T) {
	const manifest = "../../../../manifests/etcd.yml"
	ops := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, "../../../../manifests/operations/"+n)
		}
		return out
	}
	varFile := filepath.Join(t.TempDir(), "vars.yml")
	require.NoError(t, os.WriteFile(varFile, []byte("etcd_test_helper_password: secret\n"), 0o644))

	in := manifestInput{deployment: "etcd", opsFiles: ops("no-tls.yml", "1-node.yml", "test-helper.yml"), varFiles: []string{varFile}}
	out, err := in.build(manifest)
	require.NoError(t, err)
	require.NotContains(t, string(out), "((")
	var doc struct {
		InstanceGroups []struct {
			Instances int
			Jobs      []struct {
				Name       string
				Properties map[string]any
			}
		} `yaml:"instance_groups"`
	}
	require.NoError(t, yaml.Unmarshal(out, &doc))
	require.Equal(t, 1, doc.InstanceGroups[0].Instances)
	require.Equal(t, "secret", doc.InstanceGroups[0].Jobs[1].Properties["etcd_test_helper"].(map[string]any)["password"],
		"a variable the ops file introduced is interpolated")

	in = manifestInput{opsFiles: ops("no-tls.yml"), varKVs: []string{"unused=1"}}
	_, err = in.build(manifest)
	require.NoError(t, err, "-d is optional")

	for _, tc := range []struct {
		name string
		in   manifestInput
		want string
	}{
		{"-d must match the manifest's name", manifestInput{deployment: "other", opsFiles: ops("no-tls.yml")}, "-d other does not match the manifest's name 'etcd'"},
		{"an unresolved variable is an error", manifestInput{}, "etcd_ca_cert"},
		{"a failing ops file is named", manifestInput{opsFiles: []string{writeFile(t, "- {type: remove, path: /nope}")}}, "ops.yml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.in.build(manifest)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func writeFile(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "ops.yml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

func TestPrintInstances(t *testing.T) {
	var b strings.Builder
	require.NoError(t, printInstances(&b, []byte(
		`{"job_name":"etcd","id":"u1","index":0,"job_state":"running","az":"z1","ips":["10.244.0.2"],"vm_cid":"vm-1","bootstrap":true,"state":"started"}
{"job_name":"etcd","id":"u2","index":1,"job_state":null,"az":null,"ips":[],"vm_cid":null,"bootstrap":false,"state":"detached"}
`)))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 3)
	require.Equal(t, []string{"Instance", "Process", "State", "AZ", "IPs", "VM", "CID", "Bootstrap"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"etcd/u1", "(0)", "running", "z1", "10.244.0.2", "vm-1", "true"}, strings.Fields(lines[1]))
	require.Equal(t, []string{"etcd/u2", "(1)", "detached", "-", "-", "false"}, strings.Fields(lines[2]), "no VM: the saved state and dashes")
	require.Error(t, printInstances(&b, []byte("not json\n")))
}

func TestPrintErrandResults(t *testing.T) {
	for _, tc := range []struct {
		name, result string
		code         int
	}{
		{"all succeeded", `{"instance":{"group":"etcd","id":"u1"},"exit_code":0,"stdout":"ok","stderr":""}` + "\n", 0},
		{"one failed", `{"instance":{"group":"etcd","id":"u1"},"exit_code":0,"stdout":"ok","stderr":""}
{"instance":{"group":"etcd","id":"u2"},"exit_code":3,"stdout":"","stderr":"boom"}
`, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			code, err := printErrandResults(&b, []byte(tc.result))
			require.NoError(t, err)
			require.Equal(t, tc.code, code)
			require.Contains(t, b.String(), "Instance   etcd/u1\nExit Code  0\nStdout     ok\n")
		})
	}
}

func TestListenAddrs(t *testing.T) {
	bridge := netip.MustParsePrefix("10.244.0.1/16")
	for _, tc := range []struct {
		name   string
		listen []string
		want   []string
		err    string
	}{
		{name: "default: loopback and the bridge address", want: []string{"127.0.0.1:25555", "10.244.0.1:25555"}},
		{name: "loopback only", listen: []string{"127.0.0.1:8443"}, want: []string{"127.0.0.1:8443"}},
		{name: "another address is refused", listen: []string{"0.0.0.0:25555"}, err: `--listen "0.0.0.0:25555": serve on a loopback address or the VM bridge address 10.244.0.1 only`},
		{name: "a name is refused", listen: []string{"localhost:25555"}, err: "serve on a loopback address"},
		{name: "no port", listen: []string{"127.0.0.1"}, err: `--listen "127.0.0.1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ips, err := listenAddrs(tc.listen, 25555, bridge)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Len(t, ips, len(got), "one certificate SAN per address")
		})
	}
}
