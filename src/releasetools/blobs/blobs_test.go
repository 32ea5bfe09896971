package blobs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

const modulePath = "github.com/etcd-release/etcd-release"

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	return root
}

func TestIndexRoundTripInBoshFormat(t *testing.T) {
	idx := map[string]IndexEntry{
		"golang/go1.26.8.linux-amd64.tar.gz": {Size: 10, SHA: "sha256:ab"},
		"etcd_ctl/go-modules.tgz":            {Size: 20, ObjectID: "1234-abcd", SHA: "sha256:cd"},
	}
	want := "---\n" +
		"etcd_ctl/go-modules.tgz:\n  size: 20\n  object_id: 1234-abcd\n  sha: sha256:cd\n" +
		"golang/go1.26.8.linux-amd64.tar.gz:\n  size: 10\n  sha: sha256:ab\n"
	require.Equal(t, want, string(FormatIndex(idx)))
	p := filepath.Join(t.TempDir(), "blobs.yml")
	require.NoError(t, WriteIndex(p, idx))
	got, err := ReadIndex(p)
	require.NoError(t, err)
	require.Equal(t, idx, got)
	require.Equal(t, "--- {}\n", string(FormatIndex(nil)))
}

func TestTarballIsDeterministic(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(src, "bin"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(src, "bin", "tool"), []byte("#!/bin/sh\n"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(src, "README"), []byte("hello"), 0o600))
	require.NoError(t, os.Symlink("bin/tool", filepath.Join(src, "link")))
	require.NoError(t, os.WriteFile(filepath.Join(src, "skip.lock"), nil, 0o600))

	write := func() ([]byte, string) {
		entries, err := collect(src, "go", func(rel string, _ os.DirEntry) bool { return strings.HasSuffix(rel, ".lock") })
		require.NoError(t, err)
		dst := filepath.Join(t.TempDir(), "out.tgz")
		size, sha, err := writeTarball(dst, entries)
		require.NoError(t, err)
		data, err := os.ReadFile(dst)
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), size)
		return data, sha
	}
	a, shaA := write()
	// Content-irrelevant changes: modes other than the executable bit and modification times.
	require.NoError(t, os.Chmod(filepath.Join(src, "README"), 0o640))
	require.NoError(t, os.Chtimes(filepath.Join(src, "README"), entryTime, entryTime.AddDate(3, 0, 0)))
	b, shaB := write()
	require.Equal(t, shaA, shaB)
	require.True(t, bytes.Equal(a, b))

	gz, err := gzip.NewReader(bytes.NewReader(a))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
		switch h.Name {
		case "go/bin/tool":
			require.EqualValues(t, 0o755, h.Mode)
		case "go/README":
			require.EqualValues(t, 0o644, h.Mode)
		case "go/link":
			require.Equal(t, "bin/tool", h.Linkname)
		}
		require.Equal(t, 0, h.Uid)
		require.True(t, h.ModTime.Equal(entryTime))
	}
	require.Equal(t, []string{"go/", "go/README", "go/bin/", "go/bin/tool", "go/link"}, names)
}

// packageFiles returns the `files` and `excluded_files` of packages/<name>/spec.
func packageFiles(t *testing.T, root, name string) *release.PackageSpec {
	data, err := os.ReadFile(filepath.Join(root, "packages", name, "spec"))
	require.NoError(t, err)
	s, err := release.ParsePackageSpec(data)
	require.NoError(t, err)
	return s
}

// depDirs lists, relative to src/, the directories of this module's packages a command depends on, and whether
// it needs any module other than this one.
func depDirs(t *testing.T, root, cmd string) (dirs []string, external []string) {
	c := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", cmd)
	c.Dir = root
	c.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOPROXY=off")
	out, err := c.Output()
	require.NoError(t, err, "%s", stderr(err))
	for _, p := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(p, modulePath+"/src/"); ok {
			dirs = append(dirs, rel)
		} else {
			external = append(external, p)
		}
	}
	return dirs, external
}

func stderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// The packages' `files` must list every package directory the command compiles from, or packaging fails on a VM.
func TestPackageFilesCoverGoDependencies(t *testing.T) {
	root := repoRoot(t)
	for _, tc := range []struct {
		pkg, cmd     string
		needsModules bool
	}{
		{"etcd_ctl", "./src/etcd_ctl", true},
		{"etcd-test-helper", "./src/etcd-test-helper", false},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			spec := packageFiles(t, root, tc.pkg)
			dirs, external := depDirs(t, root, tc.cmd)
			var want []string
			for _, d := range dirs {
				want = append(want, d+"/*.go")
			}
			if tc.needsModules {
				want = append(want, ModulesBlob)
				require.NotEmpty(t, external)
			} else {
				require.Empty(t, external, "packaging %s builds without a module cache; it may use the standard library only", tc.pkg)
			}
			slices.Sort(want)
			got := slices.Sorted(slices.Values(spec.Files))
			require.Equal(t, want, got, "packages/%s/spec files", tc.pkg)
			require.Equal(t, []string{"**/*_test.go"}, spec.ExcludedFiles)
			require.Equal(t, []string{"golang-1-linux"}, spec.Dependencies)
		})
	}
}

func TestToolchainBlobPath(t *testing.T) {
	require.Equal(t, "golang/go1.26.8.linux-amd64.tar.gz", ToolchainBlobPath("go1.26.8", "amd64"))
	spec := packageFiles(t, repoRoot(t), "golang-1-linux")
	require.Len(t, spec.Files, 1)
	ok, err := filepath.Match(spec.Files[0], ToolchainBlobPath("go1.26.8", "amd64"))
	require.NoError(t, err)
	require.True(t, ok)
}

// The acceptance-tests package compiles the suite's test binary from the two suite blobs plus the src/ packages
// the suite imports: its files must list exactly those.
func TestAcceptancePackageFilesCoverTheSuite(t *testing.T) {
	root := repoRoot(t)
	c := exec.Command("go", "list", "-deps", "-test", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./acceptance-tests")
	c.Dir = root
	c.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOPROXY=off")
	out, err := c.Output()
	require.NoError(t, err, "%s", stderr(err))
	want := []string{SuiteModulesBlob, SuiteSourceBlob}
	for _, p := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(p, modulePath+"/src/"); ok {
			want = append(want, rel+"/*.go")
		}
	}
	slices.Sort(want)
	spec := packageFiles(t, root, "acceptance-tests")
	require.Equal(t, want, slices.Sorted(slices.Values(spec.Files)))
	require.Equal(t, []string{"**/*_test.go"}, spec.ExcludedFiles)
	require.Equal(t, []string{"golang-1-linux"}, spec.Dependencies)
}
