// Command consul-test-release builds the test-only consul release (acceptance-tests/consul-release: a
// consul_agent job in server or client mode and a consul package) the acceptance suite colocates with etcd to
// test etcd-release's consul DNS mode the way CF deployments ran it. The consul binary is the one the tests
// build from its module source (package toolcache), added as the release's consul/consul blob in a staging copy
// of the release tree; the repository never holds it.
//
// The version is <consul version>+dev.<N>, N derived from the release's content, so an unchanged release keeps
// its version (and uploading it again is a no-op) while any change gives a new one. It prints the tarball's
// path and version.
package main

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/etcd-release/etcd-release/src/releasetools/blobs"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
	"github.com/etcd-release/etcd-release/src/testkit/toolcache"
)

func main() {
	out := flag.String("o", "", "tarball path (default .cache/consul-test-release/consul-<version>.tgz)")
	flag.Parse()
	logger := log.New(os.Stderr, "consul-test-release: ", 0)
	path, version, err := build(*out, logger)
	if err != nil {
		logger.Fatal(err)
	}
	fmt.Printf("%s\t%s\n", path, version)
}

func build(out string, logger *log.Logger) (string, string, error) {
	root, err := toolcache.RepoRoot()
	if err != nil {
		return "", "", err
	}
	src := filepath.Join(root, "acceptance-tests", "consul-release")
	logger.Printf("consul %s binary (built from source once per machine, ~5 minutes)", toolcache.Consul.Version)
	bin, err := toolcache.Consul.Path(root)
	if err != nil {
		return "", "", err
	}
	stage := filepath.Join(root, ".cache", "consul-test-release", "tree")
	if err := os.RemoveAll(stage); err != nil {
		return "", "", err
	}
	if err := copyTree(src, stage); err != nil {
		return "", "", fmt.Errorf("staging %s: %w", src, err)
	}
	blob := filepath.Join(stage, "blobs", "consul", "consul")
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return "", "", err
	}
	size, sum, err := copyFile(bin, blob, 0o755)
	if err != nil {
		return "", "", fmt.Errorf("adding the consul blob: %w", err)
	}
	idx := map[string]blobs.IndexEntry{"consul/consul": {Size: size, SHA: sum}}
	if err := blobs.WriteIndex(filepath.Join(stage, "config", "blobs.yml"), idx); err != nil {
		return "", "", err
	}
	content, err := treeDigest(stage)
	if err != nil {
		return "", "", err
	}
	version := fmt.Sprintf("%s+dev.%d", strings.TrimPrefix(toolcache.Consul.Version, "v"),
		binary.BigEndian.Uint32(content[:4])>>4)
	if out == "" {
		out = filepath.Join(root, ".cache", "consul-test-release", "consul-"+version+".tgz")
	}
	if _, err := os.Stat(out); err == nil {
		return out, version, nil // same content, same bytes
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", "", err
	}
	tmp := out + ".tmp"
	logger.Printf("building consul release %s", version)
	if _, err := release.Build(stage, tmp, release.BuildOptions{Version: version}); err != nil {
		os.Remove(tmp)
		return "", "", fmt.Errorf("building the consul release from %s: %w", stage, err)
	}
	return out, version, os.Rename(tmp, out)
}

// treeDigest is a SHA-1 over every file's path, mode and content under dir, in walk (lexical) order.
func treeDigest(dir string) ([]byte, error) {
	h := sha1.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%o\x00", rel, info.Mode().Perm())
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	})
	return h.Sum(nil), err
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		_, _, err = copyFile(p, target, info.Mode().Perm())
		return err
	})
}

// copyFile copies src to dst and returns the size and SHA-1 (hex) of what it copied.
func copyFile(src, dst string, mode fs.FileMode) (int64, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, "", err
	}
	defer in.Close()
	outF, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return 0, "", err
	}
	h := sha1.New()
	n, err := io.Copy(io.MultiWriter(outF, h), in)
	if cerr := outF.Close(); err == nil {
		err = cerr
	}
	return n, hex.EncodeToString(h.Sum(nil)), err
}
