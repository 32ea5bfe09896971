package toolcache

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A child process of TestParallelProcessesBuildOnce: it asks for etcdctl under the root it is given and prints
// the path.
func TestMain(m *testing.M) {
	if root := os.Getenv("TOOLCACHE_TEST_ROOT"); root != "" {
		bin, err := Etcdctl.Path(root)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(bin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// go test runs the test binaries of several packages at once; on a fresh machine more than one of them may need
// the same tool. Each must get the built binary (they once raced on the rename of the build's output).
func TestParallelProcessesBuildOnce(t *testing.T) {
	root := t.TempDir()
	const n = 3
	paths := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "TOOLCACHE_TEST_ROOT="+root)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, stderr.String())
			}
			paths[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "process %d", i)
		require.Equal(t, paths[0], paths[i])
	}
	require.Equal(t, filepath.Join(root, ".cache", "tools", "go.etcd.io_etcd_etcdctl_v3@"+Etcdctl.Version, "etcdctl"), paths[0])
	out, err := exec.Command(paths[0], "version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), strings.TrimPrefix(Etcdctl.Version, "v"))
	left, err := filepath.Glob(filepath.Join(filepath.Dir(paths[0]), "*.tmp"))
	require.NoError(t, err)
	require.Empty(t, left, "no build output is left behind")
}

// Path relies on the lock alone, also between goroutines of one process: each lockFile opens the file anew.
func TestLockFileExcludesWithinAProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".lock")
	unlock, err := lockFile(path)
	require.NoError(t, err)
	got := make(chan struct{})
	go func() {
		u, err := lockFile(path)
		if err == nil {
			defer u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a second lockFile took the lock while the first held it")
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the second lockFile did not get the lock after the first released it")
	}
}
