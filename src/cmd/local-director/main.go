// Command local-director serves the BOSH director API for this machine (see src/director). `serve` runs it in
// the foreground; its state (releases, stemcells, cloud config, tasks, credentials, CA) lives in --state-dir.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/api"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

type serveOptions struct {
	stateDir string
	listen   []string
	user     string
	password string
}

func main() {
	root := &cobra.Command{Use: "local-director", Short: "A single-machine BOSH director for etcd-release development and tests", SilenceUsage: true}
	o := &serveOptions{}
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the director API over HTTPS until interrupted",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return runServe(o) },
	}
	serve.Flags().StringVar(&o.stateDir, "state-dir", ".cache/local-director", "where the director keeps its state")
	serve.Flags().StringSliceVar(&o.listen, "listen", []string{"127.0.0.1:25555"}, "addresses to serve on (loopback or the VM bridge gateway only)")
	serve.Flags().StringVar(&o.user, "user", os.Getenv("LOCAL_DIRECTOR_USER"), "basic auth user (default: generated, saved in the state dir)")
	serve.Flags().StringVar(&o.password, "password", os.Getenv("LOCAL_DIRECTOR_PASSWORD"), "basic auth password")
	root.AddCommand(serve)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "local-director:", err)
		os.Exit(1)
	}
}

func runServe(o *serveOptions) error {
	lg, err := zap.NewProduction()
	if err != nil {
		return err
	}
	defer lg.Sync()
	var ips []net.IP
	for _, addr := range o.listen {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("--listen %q: %w", addr, err)
		}
		ip := net.ParseIP(host)
		if ip == nil || !(ip.IsLoopback() || ip.IsPrivate()) {
			return fmt.Errorf("--listen %q: serve on a loopback address or the VM bridge gateway only", addr)
		}
		ips = append(ips, ip)
	}
	store, err := state.Open(o.stateDir)
	if err != nil {
		return err
	}
	runner, err := tasks.NewRunner(store, lg)
	if err != nil {
		return err
	}
	creds, err := api.LoadOrCreateCredentials(o.stateDir, api.Credentials{User: o.user, Password: o.password})
	if err != nil {
		return err
	}
	tlsCfg, err := api.LoadOrCreateTLS(o.stateDir, ips)
	if err != nil {
		return err
	}
	srv := &api.Server{Name: "local-director", UUID: directorUUID(o.stateDir), Creds: creds, Store: store, Tasks: runner, Log: lg.Named("api")}
	hs := &http.Server{Handler: srv.Handler(), TLSConfig: tlsCfg, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, len(o.listen))
	for _, addr := range o.listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		go func() { errc <- hs.ServeTLS(ln, "", "") }()
		lg.Info("serving the director API", zap.String("url", "https://"+addr), zap.String("ca-cert", api.TLSPaths(o.stateDir).CACert), zap.String("user", creds.User))
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	return hs.Shutdown(sctx)
}

func directorUUID(stateDir string) string {
	path := stateDir + "/uuid"
	if b, err := os.ReadFile(path); err == nil {
		return string(b)
	}
	buf := make([]byte, 16)
	_, _ = rand.Read(buf)
	id := hex.EncodeToString(buf)
	_ = os.WriteFile(path, []byte(id), 0o600)
	return id
}
