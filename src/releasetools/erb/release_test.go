package erb

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// TestRenderJobsFromReleaseTarball is the director's path: build a release tarball, read it back, render its jobs,
// with the consumer's link built from the provider's spec.
func TestRenderJobsFromReleaseTarball(t *testing.T) {
	r := newRenderer(t)
	out := filepath.Join(t.TempDir(), "fixture.tgz")
	_, err := release.Build(filepath.Join("..", "release", "testdata", "repo"), out, release.BuildOptions{Version: "1"})
	require.NoError(t, err)
	rel, err := release.Read(out)
	require.NoError(t, err)

	server, ok := rel.Job("server")
	require.True(t, ok)
	serverProps := map[string]any{"server": map[string]any{"port": 9090, "name": "srv"}}
	c := testContext()
	c.Properties = serverProps
	files, err := r.Render(context.Background(), JobFromRelease(server), c)
	require.NoError(t, err)
	require.Equal(t, "#!/bin/bash\nexec /var/vcap/packages/app/bin/app --port 9090\n", string(files["bin/ctl"]))
	require.Equal(t, "{\"name\":\"srv\"}\n", string(files["config/config.json"]))
	require.Contains(t, string(files["monit"]), "check process server")

	linkProps, err := ResolveLinkProperties(server.Spec, serverProps, "server")
	require.NoError(t, err)
	client, ok := rel.Job("client")
	require.True(t, ok)
	c = testContext()
	c.Properties = nil
	c.Links = map[string]Link{"server": {Properties: linkProps, Instances: []LinkInstance{{Name: "server", ID: "x"}}}}
	files, err = r.Render(context.Background(), JobFromRelease(client), c)
	require.NoError(t, err)
	require.Equal(t, "#!/bin/bash\necho 9090\n", string(files["bin/run"]))
	require.Equal(t, "", string(files["monit"]))
}
