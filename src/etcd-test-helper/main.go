// Command etcd-test-helper serves the test helper job's HTTP API (see package testhelper).
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/etcd-release/etcd-release/src/etcd-test-helper/testhelper"
)

func main() {
	configPath := flag.String("config", "/var/vcap/jobs/etcd-test-helper/config/config.json", "configuration file")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := testhelper.Load(*configPath)
	if err != nil {
		log.Error("invalid configuration", "error", err.Error())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := testhelper.Serve(ctx, cfg, log); err != nil {
		log.Error("serving", "error", err.Error())
		os.Exit(1)
	}
}
