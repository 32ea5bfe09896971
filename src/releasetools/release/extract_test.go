package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type tarEntry struct {
	name, link, body string
	typ              byte
}

func tgzOf(t *testing.T, entries []tarEntry) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		require.NoError(t, tw.WriteHeader(hdr))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

// TestExtractStaysInsideThePackageDirectory replaces a package archive of a valid release (its digest updated, so
// only the extraction can refuse it) with crafted entries. Nothing may be written outside the directory.
func TestExtractStaysInsideThePackageDirectory(t *testing.T) {
	good, _ := build(t, fixture(t), BuildOptions{})
	cases := []struct {
		name    string
		entries []tarEntry
		wantErr string
	}{
		{"a chain of symlinks: a -> ., a/l -> .., a/l/x", []tarEntry{
			{name: "./packaging", body: "true", typ: tar.TypeReg},
			{name: "./a", link: ".", typ: tar.TypeSymlink},
			{name: "./a/l", link: "..", typ: tar.TypeSymlink},
			{name: "./a/l/x", body: "escaped", typ: tar.TypeReg},
		}, "may not reach outside the package directory"},
		{"a dot-dot entry name", []tarEntry{{name: "../x", body: "escaped", typ: tar.TypeReg}}, "escapes the package directory"},
		{"an absolute symlink", []tarEntry{{name: "./abs", link: "/etc", typ: tar.TypeSymlink}}, "points outside the package directory"},
		{"a symlink to the parent", []tarEntry{{name: "./up", link: "../..", typ: tar.TypeSymlink}}, "points outside the package directory"},
		{"a file through a symlink to the parent made by a directory symlink", []tarEntry{
			{name: "./d", link: ".", typ: tar.TypeSymlink},
			{name: "./d/d/e", link: "..", typ: tar.TypeSymlink},
			{name: "./d/e/x", body: "escaped", typ: tar.TypeReg},
		}, "may not reach outside the package directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := rewrite(t, good, func(files map[string][]byte) {
				old := sha1hex(files["./packages/app.tgz"])
				files["./packages/app.tgz"] = tgzOf(t, tc.entries)
				files["./release.MF"] = []byte(strings.Replace(string(files["./release.MF"]), old, sha1hex(files["./packages/app.tgz"]), 1))
			})
			r, err := Read(bad)
			require.NoError(t, err)
			app, ok := r.Package("app")
			require.True(t, ok)
			parent := t.TempDir()
			dir := filepath.Join(parent, "pkg", "app")
			err = app.Extract(dir)
			require.ErrorContains(t, err, tc.wantErr)
			for _, p := range []string{filepath.Join(parent, "x"), filepath.Join(parent, "pkg", "x"), "/x"} {
				_, err := os.Lstat(p)
				require.True(t, os.IsNotExist(err), "%s was written outside the package directory", p)
			}
		})
	}
}
