package blobs

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSyncIsCachedAndIdempotent runs Sync on a small repository (one module requiring one module of this
// machine's cache) with the real toolchain: blobs are made once, a second run reuses them and changes no byte,
// other entries of config/blobs.yml are kept, a toolchain blob of another Go version is dropped, and a changed
// go.sum rebuilds the modules blob.
func TestSyncIsCachedAndIdempotent(t *testing.T) {
	if testing.Short() {
		t.Skip("archives the Go toolchain (about 10 s)")
	}
	repo := t.TempDir()
	root := repoRoot(t)
	write := func(rel, content string) {
		p := filepath.Join(repo, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	// go.sum lines of the one dependency, taken from this repository's go.sum.
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	var sumLines []string
	for _, l := range strings.Split(string(sum), "\n") {
		if strings.HasPrefix(l, "github.com/spf13/pflag v1.0.10 ") || strings.HasPrefix(l, "github.com/spf13/pflag v1.0.10/go.mod ") {
			sumLines = append(sumLines, l)
		}
	}
	require.Len(t, sumLines, 2)
	write("go.mod", "module example.com/r\n\ngo 1.26\n\nrequire github.com/spf13/pflag v1.0.10\n")
	write("go.sum", strings.Join(sumLines, "\n")+"\n")
	write("src/cmd/x/main.go", "package main\n\nimport \"github.com/spf13/pflag\"\n\nfunc main() { pflag.Parse() }\n")
	write("config/blobs.yml", "---\nother/thing.tgz:\n  size: 3\n  object_id: abc\n  sha: sha256:00\ngolang/go1.0.linux-amd64.tar.gz:\n  size: 1\n  sha: sha256:11\n")
	write("blobs/golang/go1.0.linux-amd64.tar.gz", "x")
	// A git checkout, as a release repository is: the go command derives the main module's version from the
	// commit, and that must not reach the modules blob (it would change with every commit).
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x"}} {
		out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
	}

	var logs []string
	o := Options{RepoDir: repo, MainPackages: []string{"./src/cmd/x"}, Logf: func(f string, a ...any) { logs = append(logs, f) }}
	first, err := Sync(context.Background(), o)
	require.NoError(t, err)
	require.Len(t, first, 2)
	for _, b := range first {
		require.False(t, b.Reused)
	}
	require.NoFileExists(t, filepath.Join(repo, "blobs/golang/go1.0.linux-amd64.tar.gz"))
	idx, err := ReadIndex(filepath.Join(repo, "config", "blobs.yml"))
	require.NoError(t, err)
	require.Equal(t, IndexEntry{Size: 3, ObjectID: "abc", SHA: "sha256:00"}, idx["other/thing.tgz"])
	require.NotContains(t, idx, "golang/go1.0.linux-amd64.tar.gz")
	for _, b := range first {
		require.Equal(t, IndexEntry{Size: b.Size, SHA: b.SHA}, idx[b.Path])
	}
	indexBefore, err := os.ReadFile(filepath.Join(repo, "config", "blobs.yml"))
	require.NoError(t, err)

	// The modules blob holds go.mod, go.sum and the dependency's download cache entries, nothing else.
	names := tarNames(t, filepath.Join(repo, "blobs", ModulesBlob))
	require.Contains(t, names, "go.mod")
	require.Contains(t, names, "go.sum")
	require.Contains(t, names, "modcache/cache/download/github.com/spf13/pflag/@v/v1.0.10.zip")
	require.Contains(t, names, "modcache/cache/download/github.com/spf13/pflag/@v/v1.0.10.mod")
	for _, n := range names {
		require.True(t, n == "go.mod" || n == "go.sum" || strings.HasPrefix(n, "modcache/cache/download/"), n)
		require.NotContains(t, n, ".lock")
		require.NotContains(t, n, "example.com/r/", "the main module's own version is not a download")
	}

	second, err := Sync(context.Background(), o)
	require.NoError(t, err)
	for i, b := range second {
		require.True(t, b.Reused, b.Path)
		require.Equal(t, first[i].SHA, b.SHA)
	}
	indexAfter, err := os.ReadFile(filepath.Join(repo, "config", "blobs.yml"))
	require.NoError(t, err)
	require.Equal(t, string(indexBefore), string(indexAfter))

	// A changed go.sum (here: its lines swapped) is a new input: the modules blob is rebuilt.
	write("go.sum", sumLines[1]+"\n"+sumLines[0]+"\n")
	third, err := Sync(context.Background(), o)
	require.NoError(t, err)
	require.True(t, third[0].Reused, "the toolchain did not change")
	require.False(t, third[1].Reused, "go.sum changed")
	require.NotEqual(t, first[1].SHA, third[1].SHA)
}

func tarNames(t *testing.T, p string) []string {
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		if h.Typeflag == tar.TypeReg {
			out = append(out, h.Name)
		}
	}
}
