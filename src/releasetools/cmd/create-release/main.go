// Command create-release makes the release's blobs and a dev release tarball of this repository under
// dev_releases/ (see package devrelease). It prints the tarball's path.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/etcd-release/etcd-release/src/releasetools/blobs"
	"github.com/etcd-release/etcd-release/src/releasetools/devrelease"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

func main() {
	repo := flag.String("repo", ".", "release repository")
	out := flag.String("out", "", "tarball path (default dev_releases/<name>/<name>-<version>.tgz)")
	version := flag.String("version", "", "release version (default: the next <final>+dev.N)")
	sha2 := flag.Bool("sha2", false, "record sha256 digests instead of SHA-1")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := log.New(os.Stderr, "create-release: ", 0)
	path, m, err := devrelease.Create(ctx, *repo, devrelease.Options{
		Blobs: blobs.Options{Logf: logger.Printf},
		Build: release.BuildOptions{Version: *version, SHA256: *sha2},
		Out:   *out,
	})
	if err != nil {
		logger.Print(err)
		os.Exit(1)
	}
	logger.Printf("release %s/%s", m.Name, m.Version)
	fmt.Println(path)
}
