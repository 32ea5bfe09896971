package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// `restore` takes its snapshot from exactly one of --snapshot, --latest-in and --from-s3.
func TestRestoreSourceIsExactlyOne(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    restoreSource
		want string
	}{
		{"none", restoreSource{}, "--snapshot is required"},
		{"a file", restoreSource{file: "/s.db"}, ""},
		{"the newest in a dir", restoreSource{latestIn: "/d"}, ""},
		{"from s3", restoreSource{fromS3: "latest"}, ""},
		{"a file and a dir", restoreSource{file: "/s.db", latestIn: "/d"}, "give one of"},
		{"a file and s3", restoreSource{file: "/s.db", fromS3: "latest"}, "give one of"},
		{"all three", restoreSource{file: "/s.db", latestIn: "/d", fromS3: "x"}, "give one of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.check()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// --latest-in on a directory without snapshot metadata names the directory and changes nothing.
func TestRestoreLatestInAnEmptyDirNamesIt(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unrelated.txt"), []byte("x"), 0o600))
	_, err := restoreSnapshotPath(nil, restoreSource{latestIn: dir}, &bytes.Buffer{})
	require.ErrorContains(t, err, "--latest-in "+dir+": no snapshot with metadata there")
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 1)
}
