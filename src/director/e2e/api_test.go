package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/director/api"
	"github.com/etcd-release/etcd-release/src/director/client"
)

// TestAPIAgainstRunningDirector checks the director API's wire behaviour with a plain HTTP client against a
// running director with VMs: auth on every endpoint, /info, 302 to tasks, Range on task output, 404s.
func TestAPIAgainstRunningDirector(t *testing.T) {
	d := startDirector(t)
	ctx := context.Background()

	// The server certificate is RSA and covers 127.0.0.1; the CA signs it.
	certPEM, err := os.ReadFile(api.TLSPaths(d.stateDir).ServerCert)
	require.NoError(t, err)
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.Equal(t, x509.RSA, cert.PublicKeyAlgorithm)
	require.True(t, cert.IPAddresses[0].Equal([]byte{127, 0, 0, 1}))

	anon := *d.c
	anon.User, anon.Password = "", ""
	wrong := *d.c
	wrong.Password = "wrong"
	info, err := wrong.Info(ctx)
	require.NoError(t, err, "/info needs no auth")
	require.Nil(t, info.User, "bad credentials give user null")
	info, err = d.c.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, d.creds.User, *info.User)

	endpoints := [][2]string{
		{"GET", "/stemcells"}, {"POST", "/stemcells"}, {"GET", "/releases"}, {"POST", "/releases"}, {"POST", "/packages/matches"},
		{"POST", "/cloud_configs"}, {"POST", "/cloud_configs/diff"}, {"GET", "/configs"}, {"GET", "/deployments"},
		{"POST", "/deployments"}, {"POST", "/deployments/e2e/diff"}, {"DELETE", "/deployments/e2e"},
		{"GET", "/deployments/e2e/instances?format=full"}, {"GET", "/deployments/e2e/vms?format=full"},
		{"PUT", "/deployments/e2e/jobs/*?state=restart"}, {"POST", "/deployments/e2e/errands/smoke/runs"},
		{"GET", "/tasks"}, {"GET", "/tasks/1"}, {"GET", "/tasks/1/output?type=event"},
		{"GET", "/disks"}, {"DELETE", "/disks/disk-1"}, {"PUT", "/disks/disk-1/attachments?deployment=e2e&job=servers&instance_id=0"},
		{"GET", "/locks"}, {"GET", "/events"}, {"GET", "/events/1"}, {"GET", "/deployments/e2e/jobs/*/*/logs?type=job"},
		{"GET", "/resources/00000000-0000-0000-0000-000000000000"},
	}
	for _, e := range endpoints {
		for _, c := range []*client.Client{&anon, &wrong} {
			resp, _, err := c.Do(ctx, e[0], e[1], nil, strings.NewReader("{}"))
			require.NoError(t, err)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s %s", e[0], e[1])
		}
	}
	for _, e := range endpoints[10:16] {
		resp, body, err := d.c.Do(ctx, e[0], e[1], nil, strings.NewReader("{}"))
		require.NoError(t, err)
		if e[1] == "/deployments/e2e/diff" {
			require.Equal(t, http.StatusOK, resp.StatusCode, "a diff against no deployment")
			continue
		}
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "%s %s: %s", e[0], e[1], body)
	}

	d.setup()
	manifest := fmt.Sprintf(`name: e2e
releases: [{name: dirtest, version: latest}]
stemcells: [{alias: default, os: ubuntu-jammy, version: latest}]
update: {canaries: 1, max_in_flight: 1, canary_watch_time: 200-10000, update_watch_time: 200-10000}
instance_groups:
- name: servers
  instances: 1
  azs: [z1]
  vm_type: default
  stemcell: default
  networks: [{name: default}]
  jobs:
  - name: server
    release: dirtest
    properties: {server: {record_dir: %s}}
`, d.recordDir)
	resp, _, err := d.c.Do(ctx, "POST", "/deployments", map[string]string{"Content-Type": "text/yaml"}, strings.NewReader(manifest))
	require.NoError(t, err)
	require.Equal(t, http.StatusFound, resp.StatusCode, "exactly 302")
	loc := resp.Header.Get("Location")
	require.Regexp(t, `^/tasks/\d+$`, loc)
	id, _ := strconv.Atoi(strings.TrimPrefix(loc, "/tasks/"))
	_, err = d.wait(id)
	require.NoError(t, err)

	out := fmt.Sprintf("/tasks/%d/output?type=event", id)
	resp, all, err := d.c.Do(ctx, "GET", out, nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, line := range strings.Split(strings.TrimSpace(string(all)), "\n") {
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &e), line)
	}
	resp, part, err := d.c.Do(ctx, "GET", out, map[string]string{"Range": "bytes=10-"}, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, all[10:], part)
	resp, _, err = d.c.Do(ctx, "GET", out, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(all))}, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusRequestedRangeNotSatisfiable, resp.StatusCode, "nothing new")
	resp, _, err = d.c.Do(ctx, "GET", fmt.Sprintf("/tasks/%d/output?type=result", id), nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "a deploy has no result output")

	var task map[string]any
	resp, body, err := d.c.Do(ctx, "GET", loc, nil, nil)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(body, &task))
	require.Equal(t, "done", task["state"])
	require.Equal(t, "e2e", task["deployment"])
	for _, k := range []string{"id", "state", "description", "timestamp", "started_at", "result", "user", "deployment", "context_id"} {
		require.Contains(t, task, k)
	}

	var deps []map[string]any
	_, body, err = d.c.Do(ctx, "GET", "/deployments?exclude_configs=true", nil, nil)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(body, &deps))
	require.Len(t, deps, 1)
	require.Equal(t, "e2e", deps[0]["name"])
	require.Equal(t, []any{map[string]any{"name": "dirtest", "version": "1+dev.1"}}, deps[0]["releases"])

	var releases []map[string]any
	_, body, err = d.c.Do(ctx, "GET", "/releases", nil, nil)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(body, &releases))
	require.Equal(t, true, releases[0]["release_versions"].([]any)[0].(map[string]any)["currently_deployed"])

	// vms (plain list) and instances (task) agree; the errand list is empty.
	var vms []map[string]any
	_, body, err = d.c.Do(ctx, "GET", "/deployments/e2e/vms", nil, nil)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(body, &vms))
	require.Len(t, vms, 1)
	require.Equal(t, "servers", vms[0]["job"])
	require.Equal(t, []any{d.ip(20)}, vms[0]["ips"])
	insts := d.instances()
	require.Equal(t, "running", *insts["servers/0"].JobState)

	// Unknown instance and state are refused before a task starts.
	resp, _, err = d.c.Do(ctx, "PUT", "/deployments/e2e/jobs/nope?state=stopped", nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _, err = d.c.Do(ctx, "PUT", "/deployments/e2e/jobs/servers?state=paused", nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	// An errand that does not exist fails its task with a clear message.
	id, err = d.c.RunErrand(ctx, "e2e", "nope", false)
	require.NoError(t, err)
	tk, err := d.wait(id)
	require.Error(t, err)
	require.Contains(t, tk.Result, "Errand 'nope' doesn't exist in deployment 'e2e'")

	// stop: the process stops, the VM stays; job_state stopped.
	d.mustTask(d.c.ChangeState(ctx, "e2e", "servers", "stopped"))
	insts = d.instances()
	require.Equal(t, "stopped", insts["servers/0"].State)
	require.Equal(t, "stopped", *insts["servers/0"].JobState)
	require.NotNil(t, insts["servers/0"].VMCID)
	require.Equal(t, []string{"pre-start", "start", "post-start", "drain job_shutdown hash_unchanged", "stop"}, withoutEnv(d.records(insts["servers/0"].ID)))
	// deploy keeps a stopped instance stopped.
	d.mustTask(d.c.Deploy(ctx, []byte(manifest)))
	require.Equal(t, "stopped", *d.instances()["servers/0"].JobState)
	d.mustTask(d.c.ChangeState(ctx, "e2e", "*", "started"))
	require.Equal(t, "running", *d.instances()["servers/0"].JobState)
	require.Equal(t, []string{"pre-start", "start", "post-start"}, withoutEnv(d.records(insts["servers/0"].ID)))
	d.mustTask(d.c.DeleteDeployment(ctx, "e2e", false))
}
