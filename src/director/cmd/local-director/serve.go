package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/api"
	"github.com/etcd-release/etcd-release/src/director/deployer"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
	"github.com/etcd-release/etcd-release/src/director/vm"
)

type serveOptions struct {
	stateDir   string
	listen     []string
	user       string
	password   string
	bridge     string
	bridgeCIDR string
	vmPrefix   string
	port       int
	// orphanRetention is how long orphaned disks are kept (0 = until `bosh delete-disk`).
	orphanRetention time.Duration
	// maxUploadMB bounds release and stemcell uploads.
	maxUploadMB int64
}

func newServeCommand() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the director API over HTTPS and run deployments' VMs on this machine, until interrupted",
		Long: `serve needs root: every instance is a "VM" made of network, mount and PID namespaces on the bridge
--bridge (created with --bridge-cidr as its address if missing). VM traffic never leaves that bridge: no
forwarding, no NAT. The API listens on 127.0.0.1 and on the bridge address (port --port); the CA certificate and
the credentials are written to --state-dir (director-ca.crt, creds.json). VMs keep running when serve stops; the
next serve re-attaches them.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runServe(o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.stateDir, "state-dir", ".cache/local-director", "where the director keeps its state")
	f.StringSliceVar(&o.listen, "listen", nil, "addresses to serve on (default 127.0.0.1 and the bridge address, on --port)")
	f.IntVar(&o.port, "port", 25555, "API port")
	f.StringVar(&o.user, "user", os.Getenv("LOCAL_DIRECTOR_USER"), "basic auth user (default: generated, saved in the state dir)")
	f.StringVar(&o.password, "password", os.Getenv("LOCAL_DIRECTOR_PASSWORD"), "basic auth password")
	f.StringVar(&o.bridge, "bridge", "lbosh0", "the host bridge the VMs are attached to")
	f.StringVar(&o.bridgeCIDR, "bridge-cidr", "10.244.0.1/16", "the bridge's address: the VMs' gateway and subnet")
	f.StringVar(&o.vmPrefix, "vm-prefix", "lbosh", "prefix of every VM id (network namespace name) of this director")
	f.Int64Var(&o.maxUploadMB, "max-upload-mb", api.DefaultMaxUploadBytes>>20, "largest release or stemcell upload accepted, in MiB")
	f.DurationVar(&o.orphanRetention, "orphaned-disk-retention", deployer.DefaultOrphanRetention,
		"how long the disks of deleted instances are kept for `bosh attach-disk` before they are deleted (0 = until `bosh delete-disk`)")
	return cmd
}

func runServe(o *serveOptions) error {
	if os.Geteuid() != 0 {
		return vm.ErrNotRoot
	}
	// Before anything is set up or served: a director without ruby or monit would answer /info and fail every
	// deploy, and scripts/deploy shows this error from the log at once.
	if err := vm.CheckHostTools(); err != nil {
		return fmt.Errorf("refusing to serve: %w", err)
	}
	lg, err := zap.NewProduction()
	if err != nil {
		return err
	}
	defer func() { _ = lg.Sync() }()
	cidr, err := netip.ParsePrefix(o.bridgeCIDR)
	if err != nil {
		return fmt.Errorf("--bridge-cidr %q: %w", o.bridgeCIDR, err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if err := vm.EnsureBridge(ctx, o.bridge, o.bridgeCIDR); err != nil {
		return fmt.Errorf("refusing to serve: the VM bridge cannot be set up: %w", err)
	}
	listen, ips, err := listenAddrs(o.listen, o.port, cidr)
	if err != nil {
		return err
	}
	srv, tlsCfg, err := openDirector(ctx, o, cidr, ips, lg)
	if err != nil {
		return err
	}
	go cleanOrphansEvery(ctx, time.Hour, srv.Deployer, o.orphanRetention, lg)
	hs := &http.Server{Handler: srv.Handler(), TLSConfig: tlsCfg, ReadHeaderTimeout: 30 * time.Second}
	return serveUntilDone(ctx, hs, listen, func(addr string) {
		lg.Info("serving the director API", zap.String("url", "https://"+addr), zap.String("ca-cert", api.TLSPaths(srv.Store.Dir()).CACert),
			zap.String("user", srv.Creds.User), zap.String("bridge", o.bridge), zap.String("reason", "serve"))
	})
}

// cleanOrphansEvery deletes the orphaned disks older than retention at start and then every interval, as the
// director's scheduled orphaned-disk cleanup does.
func cleanOrphansEvery(ctx context.Context, interval time.Duration, dep *deployer.Deployer, retention time.Duration, lg *zap.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := dep.CleanupOrphans(time.Now(), retention); err != nil {
			lg.Warn("orphaned disk cleanup failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// listenAddrs decides where to serve: the --listen addresses, or by default 127.0.0.1 and the bridge address on
// port. Only loopback and the bridge address are allowed (the director API must not face other networks); the
// IPs are the server certificate's SANs.
func listenAddrs(listen []string, port int, bridge netip.Prefix) ([]string, []net.IP, error) {
	if len(listen) == 0 {
		listen = []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("%s:%d", bridge.Addr(), port)}
	}
	var ips []net.IP
	for _, addr := range listen {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, nil, fmt.Errorf("--listen %q: %w", addr, err)
		}
		ip := net.ParseIP(host)
		if ip == nil || !(ip.IsLoopback() || ip.Equal(net.IP(bridge.Addr().AsSlice()))) {
			return nil, nil, fmt.Errorf("--listen %q: serve on a loopback address or the VM bridge address %s only", addr, bridge.Addr())
		}
		ips = append(ips, ip)
	}
	return listen, ips, nil
}

// openDirector opens the state dir, re-attaches the running VMs and loads (or creates) the credentials and the
// TLS certificate: everything the API server needs.
func openDirector(ctx context.Context, o *serveOptions, cidr netip.Prefix, ips []net.IP, lg *zap.Logger) (*api.Server, *tls.Config, error) {
	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return nil, nil, err
	}
	stateDir, err := filepath.Abs(o.stateDir)
	if err != nil {
		return nil, nil, err
	}
	store, err := state.Open(stateDir)
	if err != nil {
		return nil, nil, err
	}
	runner, err := tasks.NewRunner(store, lg)
	if err != nil {
		return nil, nil, err
	}
	dep, err := deployer.New(deployer.Config{StateDir: stateDir, Bridge: o.bridge, BridgeCIDR: cidr, VMPrefix: o.vmPrefix, Log: lg}, store)
	if err != nil {
		return nil, nil, err
	}
	if err := dep.Recover(ctx); err != nil {
		return nil, nil, fmt.Errorf("re-attaching VMs: %w", err)
	}
	creds, err := api.LoadOrCreateCredentials(stateDir, api.Credentials{User: o.user, Password: o.password})
	if err != nil {
		return nil, nil, err
	}
	tlsCfg, err := api.LoadOrCreateTLS(stateDir, ips)
	if err != nil {
		return nil, nil, err
	}
	srv := &api.Server{Name: "local-director", UUID: directorUUID(stateDir), Creds: creds, Store: store, Tasks: runner, Deployer: dep, Log: lg.Named("api"), MaxUploadBytes: o.maxUploadMB << 20}
	return srv, tlsCfg, nil
}

// serveUntilDone serves hs on every address until ctx ends or a listener fails, then shuts down gracefully.
func serveUntilDone(ctx context.Context, hs *http.Server, listen []string, serving func(addr string)) error {
	errc := make(chan error, len(listen))
	for _, addr := range listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		go func() { errc <- hs.ServeTLS(ln, "", "") }()
		serving(addr)
	}
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
	path := filepath.Join(stateDir, "uuid")
	if b, err := os.ReadFile(path); err == nil {
		return string(b)
	}
	buf := make([]byte, 16)
	_, _ = rand.Read(buf)
	id := hex.EncodeToString(buf)
	_ = os.WriteFile(path, []byte(id), 0o600)
	return id
}
