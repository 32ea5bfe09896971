package recovery

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
)

// Inspect gathers a Target: is etcd running here, what the data dir holds, what the peers answer.
func Inspect(ctx context.Context, c *config.Config) (Target, error) {
	t := Target{DataDir: c.Paths.DataDir, Running: running(c)}
	var err error
	if t.HasMember, err = membership.HasData(c.Paths.DataDir); err != nil {
		return t, err
	}
	if t.Identity, err = membership.ReadIdentity(c.Paths.DataDir); err != nil {
		return t, err
	}
	entries, err := os.ReadDir(c.Paths.DataDir)
	if err != nil && !os.IsNotExist(err) {
		return t, fmt.Errorf("reading data dir: %w", err)
	}
	for _, e := range entries {
		t.Entries = append(t.Entries, e.Name())
	}
	desired, err := c.DesiredMembers()
	if err != nil {
		return t, err
	}
	t.Peers = membership.Probe(ctx, c, peers.Others(desired), 3*time.Second)
	return t, nil
}

// running says why etcd_ctl is running on this VM: a live pid in its pidfile, or something accepting
// connections on its client port.
func running(c *config.Config) string {
	if b, err := os.ReadFile(c.Paths.PidFile()); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			return fmt.Sprintf("pid %d in %s is alive", pid, c.Paths.PidFile())
		}
	}
	host := c.Etcd.ClientIP
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(c.Etcd.ClientPort))
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		return "something accepts connections on the client port " + addr
	}
	return ""
}
