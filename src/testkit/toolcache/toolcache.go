// Package toolcache builds real third-party tools the tests talk to (etcdctl; consul) from their Go module
// source, fetched through the Go module proxy, and caches the binaries under .cache/tools/<module>@<version>/ in the
// repository (git-ignored), so a machine builds each version once. Modules whose go.mod carries replace
// directives cannot be `go install`ed; the copy built here has them removed, which makes it resolve its
// dependencies from the proxy like any other module.
package toolcache

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// Tool names a binary built from a package of a module.
type Tool struct {
	Module  string // e.g. go.etcd.io/etcd/etcdctl/v3
	Version string // e.g. v3.6.16
	Package string // package path inside the module, "." for its root
	Binary  string // file name of the built binary
}

// Etcdctl is the real etcd v3 command-line client of the etcd version this repository pins.
var Etcdctl = Tool{Module: "go.etcd.io/etcd/etcdctl/v3", Version: "v3.6.16", Package: ".", Binary: "etcdctl"}

// Consul is the real HashiCorp consul agent (server and client in one binary) the consul DNS tests and the
// local director's consul jobs run. The consul module's go.mod carries replace directives for its in-repo
// submodules, so it cannot be `go install`ed; the build below removes them. It takes ~5 minutes on 2 cores.
var Consul = Tool{Module: "github.com/hashicorp/consul", Version: "v1.20.6", Package: ".", Binary: "consul"}

// SeaweedFS is a real S3-compatible object store (its `weed server -s3` runs a master, a volume server, a filer
// and the S3 gateway in one process); the backup tests upload snapshots to it and read them back. Its first
// build took 19 minutes on the 2 shared cores (a 230 MB binary).
var SeaweedFS = Tool{Module: "github.com/seaweedfs/seaweedfs", Version: "v0.0.0-20261109003541-7506e5f91cd6", Package: "./weed", Binary: "weed"}

// Path returns the cached binary, building it first if needed. root is the repository root (the cache lives
// in root/.cache/tools).
func (t Tool) Path(root string) (string, error) {
	dir := filepath.Join(root, ".cache", "tools", strings.ReplaceAll(t.Module, "/", "_")+"@"+t.Version)
	bin := filepath.Join(dir, t.Binary)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// go test runs test binaries in parallel, and several may need the same tool on a machine that has not built
	// it yet: the first takes the lock and builds, the others wait for it and then find the binary. Each call opens
	// the lock file anew, so goroutines of one process wait on each other the same way.
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := t.build(bin); err != nil {
		return "", fmt.Errorf("building %s@%s: %w", t.Module, t.Version, err)
	}
	return bin, nil
}

// lockFile takes an exclusive flock on path (created if needed), waiting while another process holds it.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

var replaceBlock = regexp.MustCompile(`(?ms)^replace \($.*?^\)$|^replace .*$`)

func (t Tool) build(bin string) error {
	out, err := exec.Command("go", "mod", "download", "-json", t.Module+"@"+t.Version).Output()
	if err != nil {
		return fmt.Errorf("go mod download: %w", err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return err
	}
	if info.Error != "" {
		return fmt.Errorf("go mod download: %s", info.Error)
	}
	src, err := os.MkdirTemp("", "toolcache-src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	if out, err := exec.Command("cp", "-r", info.Dir+"/.", src).CombinedOutput(); err != nil {
		return fmt.Errorf("copying module source: %v: %s", err, out)
	}
	if out, err := exec.Command("chmod", "-R", "u+w", src).CombinedOutput(); err != nil {
		return fmt.Errorf("chmod: %v: %s", err, out)
	}
	gomod := filepath.Join(src, "go.mod")
	b, err := os.ReadFile(gomod)
	if err != nil {
		return err
	}
	if err := os.WriteFile(gomod, replaceBlock.ReplaceAll(b, nil), 0o644); err != nil {
		return err
	}
	tmp := bin + ".tmp"
	cmd := exec.Command("go", "build", "-o", tmp, t.Package)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, stderr.String())
	}
	return os.Rename(tmp, bin)
}

// RepoRoot finds the repository root from the current directory (the directory holding go.mod).
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the etcd-release module")
	}
	return filepath.Dir(gomod), nil
}
