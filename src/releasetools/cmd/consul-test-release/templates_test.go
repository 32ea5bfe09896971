package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/releasetools/erb"
	"github.com/etcd-release/etcd-release/src/testkit/toolcache"
)

func agentContext(group string, index int, ip string, props map[string]any, links map[string]erb.Link) erb.Context {
	return erb.Context{
		Deployment: "etcd", InstanceGroup: group, Index: index, ID: fmt.Sprintf("0c7d4b52-1111-4000-8000-%012d", index),
		IP: ip, Address: ip, Networks: map[string]erb.Network{"default": {IP: ip, Default: []string{"dns", "gateway"}}},
		Release: erb.ReleaseRef{Name: "consul", Version: "1"}, Properties: props, Links: links,
	}
}

// The consul_agent templates render, with the real Ruby ERB, configurations the real consul agent accepts: a
// server that bootstraps alone and a client that joins the servers behind the consul link.
func TestConsulAgentTemplates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the consul agent")
	}
	root, err := toolcache.RepoRoot()
	require.NoError(t, err)
	consul, err := toolcache.Consul.Path(root)
	require.NoError(t, err)
	r, err := erb.NewRenderer("")
	require.NoError(t, err)
	dir := filepath.Join(root, "acceptance-tests", "consul-release", "jobs", "consul_agent")
	ctx := context.Background()

	mode := func(m string) map[string]any {
		return map[string]any{"consul": map[string]any{"agent": map[string]any{"mode": m}}}
	}
	server, err := r.RenderDir(ctx, dir, agentContext("consul", 0, "10.244.0.7", mode("server"), nil))
	require.NoError(t, err)
	client, err := r.RenderDir(ctx, dir, agentContext("etcd", 2, "10.244.0.4", mode("client"), map[string]erb.Link{
		"consul": {Instances: []erb.LinkInstance{{Name: "consul", Address: "10.244.0.7"}}},
	}))
	require.NoError(t, err)

	for name, files := range map[string]map[string][]byte{"server": server, "client": client} {
		var cfg map[string]any
		require.NoError(t, json.Unmarshal(files["config/config.json"], &cfg), name)
		p := filepath.Join(t.TempDir(), "config.json")
		require.NoError(t, os.WriteFile(p, files["config/config.json"], 0o644))
		out, err := exec.Command(consul, "validate", p).CombinedOutput()
		require.NoError(t, err, "consul validate (%s): %s", name, out)
		require.Equal(t, "cf.internal", cfg["domain"], name)
		require.Equal(t, "127.0.0.1", cfg["client_addr"], name)
		require.Equal(t, true, cfg["disable_update_check"], name, "no traffic leaves the machine")
		require.Contains(t, string(files["bin/pre-start"]), "nameserver 127.0.0.1")
	}
	var s, c map[string]any
	require.NoError(t, json.Unmarshal(server["config/config.json"], &s))
	require.NoError(t, json.Unmarshal(client["config/config.json"], &c))
	require.Equal(t, true, s["server"])
	require.EqualValues(t, 1, s["bootstrap_expect"])
	require.Equal(t, "consul-0", s["node_name"])
	require.Equal(t, false, c["server"])
	require.Equal(t, []any{"10.244.0.7"}, c["retry_join"])
	require.Equal(t, "etcd-2", c["node_name"])
	require.Equal(t, "10.244.0.4", c["bind_addr"])

	_, err = r.RenderDir(ctx, dir, agentContext("etcd", 0, "10.244.0.2", mode("client"), nil))
	require.ErrorContains(t, err, "consul.agent.servers.lan is empty and no consul link")
	_, err = r.RenderDir(ctx, dir, agentContext("etcd", 0, "10.244.0.2", mode("leader"), nil))
	require.ErrorContains(t, err, "consul.agent.mode must be server or client")
}
