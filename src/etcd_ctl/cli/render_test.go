package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestRenderGolden renders every testdata/render/<case>/in.json and compares with want.txt.
func TestRenderGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/render/*")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			c, err := config.Load(filepath.Join(dir, "in.json"))
			require.NoError(t, err)
			var out bytes.Buffer
			require.NoError(t, Render(&out, c))
			want := filepath.Join(dir, "want.txt")
			if *update {
				require.NoError(t, os.WriteFile(want, out.Bytes(), 0o644))
			}
			exp, err := os.ReadFile(want)
			require.NoError(t, err, "run `go test ./src/etcd_ctl/cli -update` to create the golden file")
			require.Equal(t, string(exp), out.String())
		})
	}
}

// With etcd.machines across two instance groups both index-0 instances are BOSH bootstrap instances; only the
// deployment's creator (the first machine) renders a new-cluster plan.
func TestOfflinePlanOfTwoBootstrapInstances(t *testing.T) {
	for _, tt := range []struct {
		group, addr string
		want        string
	}{{"etcd_z1", "10.0.1.1", etcdserver.StateNew}, {"etcd_z2", "10.0.2.1", etcdserver.StateExisting}} {
		c := config.Default()
		c.Instance = config.Instance{Deployment: "d", Name: tt.group, Index: 0, Bootstrap: true, Address: tt.addr, IP: tt.addr}
		c.Etcd.Machines = []string{"10.0.1.1", "10.0.2.1"}
		plan, err := OfflinePlan(&c)
		if err != nil {
			t.Fatal(err)
		}
		if plan.State != tt.want {
			t.Errorf("%s: plan state %q, want %q", tt.group, plan.State, tt.want)
		}
	}
}
