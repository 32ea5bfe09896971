package helper

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd-test-helper/testhelper"
)

// The client against the real etcd-test-helper handler (src/etcd-test-helper/testhelper), on a temporary /var/vcap.
func newHelper(t *testing.T) (*Client, string, string) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "store", "etcd", "member"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "store", "etcd", "etcd_ctl-member.json"), []byte("{}"), 0o600))
	etcdCtl := filepath.Join(root, "etcd_ctl")
	// etcd_ctl status prints its report and exits 2 when the cluster is unhealthy.
	require.NoError(t, os.WriteFile(etcdCtl, []byte("#!/bin/sh\necho '{\"cluster_id\":\"c1\",\"healthy\":false,\"members\":[{\"id\":\"a\",\"name\":\"etcd-0\"}]}'\nexit 2\n"), 0o755))
	cfg := testhelper.Default()
	cfg.Username, cfg.Password, cfg.VcapRoot = "acceptance", "pw", root
	cfg.Monit = []string{"echo", "monit"}
	cfg.EtcdCtl = etcdCtl
	srv := httptest.NewServer(testhelper.NewServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler())
	t.Cleanup(srv.Close)
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	p, _ := strconv.Atoi(port)
	return New(p, "acceptance", "pw"), host, root
}

func TestClientAgainstTheTestHelper(t *testing.T) {
	c, ip, root := newHelper(t)
	ctx := context.Background()
	require.True(t, c.Healthy(ctx, ip))

	res, err := c.Monit(ctx, ip, "etcd", "stop")
	require.NoError(t, err)
	require.Equal(t, "monit stop etcd\n", res.Stdout)

	w, err := c.Wipe(ctx, ip, "etcd")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"member", "etcd_ctl-member.json"}, w.Removed)
	entries, err := os.ReadDir(filepath.Join(root, "store", "etcd"))
	require.NoError(t, err)
	require.Empty(t, entries)

	st, err := c.Status(ctx, ip)
	require.Error(t, err, "an unhealthy cluster is an error")
	require.NotNil(t, st, "with its report")
	require.Equal(t, "c1", st.ClusterID)
	require.Equal(t, "etcd-0", st.Members[0].Name)

	_, err = c.Monit(ctx, ip, "etcd", "reboot")
	var he *Error
	require.True(t, errors.As(err, &he))
	require.Equal(t, 400, he.Status)
	require.Contains(t, he.Message, `invalid monit action "reboot"`)
}

func TestClientNamesWrongCredentialsAndMissingOperations(t *testing.T) {
	c, ip, _ := newHelper(t)
	bad := New(c.Port, "acceptance", "wrong")
	_, err := bad.Wipe(context.Background(), ip, "etcd")
	var he *Error
	require.True(t, errors.As(err, &he))
	require.Equal(t, 401, he.Status)

	if _, err := c.Kill(context.Background(), ip, "etcd"); err != nil {
		require.ErrorIs(t, err, ErrUnsupported, "a helper without the kill endpoint says so")
	}
}
