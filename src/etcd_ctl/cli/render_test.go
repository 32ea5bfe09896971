package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
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
