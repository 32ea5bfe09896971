package vars

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestInterpolate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vars.yml")
	require.NoError(t, os.WriteFile(file, []byte("ca: {certificate: CERT, private_key: KEY}\nport: 4001\nlist: [a, b]\n"), 0o600))
	v := Vars{}
	require.NoError(t, v.LoadFile(file))
	require.NoError(t, v.Set("name=etcd"))
	require.Error(t, v.Set("novalue"))

	out, err := Interpolate([]byte("name: ((name))\nprops:\n  cert: ((ca.certificate))\n  port: ((port))\n  url: https://host:((port))/x\n  l: ((list))\n"), v)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, yaml.Unmarshal(out, &got))
	require.Equal(t, map[string]any{"name": "etcd", "props": map[string]any{
		"cert": "CERT", "port": 4001, "url": "https://host:4001/x", "l": []any{"a", "b"},
	}}, got)

	_, err = Interpolate([]byte("a: ((missing))\nb: x((other.key))y\nc: ((name))\n"), v)
	var ue *UnresolvedError
	require.True(t, errors.As(err, &ue))
	require.Equal(t, []string{"missing", "other.key"}, ue.Names)
	require.EqualError(t, err, "expected to find variables: missing, other.key")

	_, err = Interpolate([]byte("a: x((list))\n"), v)
	require.ErrorContains(t, err, "cannot be embedded")
}
