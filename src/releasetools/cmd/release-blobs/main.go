// Command release-blobs makes the release's blobs (the Go toolchain and the Go module cache the packages compile
// from) under blobs/ and records them in config/blobs.yml. Unchanged blobs are not rebuilt. See package blobs.
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
)

func main() {
	repo := flag.String("repo", ".", "release repository (holds go.mod, config/ and blobs/)")
	goCmd := flag.String("go", "go", "go command whose GOROOT and module cache are used")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := log.New(os.Stderr, "release-blobs: ", 0)
	bs, err := blobs.Sync(ctx, blobs.Options{RepoDir: *repo, Go: *goCmd, Logf: logger.Printf})
	if err != nil {
		logger.Print(err)
		os.Exit(1)
	}
	for _, b := range bs {
		fmt.Printf("%s\t%d\t%s\n", b.Path, b.Size, b.SHA)
	}
}
