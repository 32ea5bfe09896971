package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

type fixture struct {
	t      *testing.T
	url    string
	client *http.Client
	creds  Credentials
	runner *tasks.Runner
	store  *state.Store
}

// newFixture serves the API over real HTTPS on 127.0.0.1 with a generated CA, as `local-director serve` does.
func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with the Server adjusted by tweak before it serves.
func newFixtureWith(t *testing.T, tweak func(*Server)) *fixture {
	dir := t.TempDir()
	store, err := state.Open(dir)
	require.NoError(t, err)
	runner, err := tasks.NewRunner(store, zap.NewNop())
	require.NoError(t, err)
	creds, err := LoadOrCreateCredentials(dir, Credentials{})
	require.NoError(t, err)
	tlsCfg, err := LoadOrCreateTLS(dir, nil)
	require.NoError(t, err)
	srv := &Server{Name: "local", UUID: "uuid-1", Creds: creds, Store: store, Tasks: runner, Log: zap.NewNop()}
	if tweak != nil {
		tweak(srv)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	require.NoError(t, err)
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close(); runner.Wait() })

	caPEM, err := os.ReadFile(TLSPaths(dir).CACert)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	return &fixture{t: t, url: "https://" + ln.Addr().String(), client: client, creds: creds, runner: runner, store: store}
}

func (f *fixture) do(method, path string, body io.Reader, auth bool, header map[string]string) (*http.Response, []byte) {
	req, err := http.NewRequest(method, f.url+path, body)
	require.NoError(f.t, err)
	if auth {
		req.SetBasicAuth(f.creds.User, f.creds.Password)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return resp, b
}

// waitTask follows a 302 to its task and polls it until it ends.
func (f *fixture) waitTask(resp *http.Response) map[string]any {
	require.Equal(f.t, http.StatusFound, resp.StatusCode)
	loc := resp.Header.Get("Location")
	require.True(f.t, strings.HasPrefix(loc, "/tasks/"), loc)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, b := f.do("GET", loc, nil, true, nil)
		var task map[string]any
		require.NoError(f.t, json.Unmarshal(b, &task))
		if st := task["state"]; st != "queued" && st != "processing" {
			return task
		}
		require.True(f.t, time.Now().Before(deadline), "task %s did not end", loc)
		time.Sleep(50 * time.Millisecond)
	}
}

func TestInfoAndAuth(t *testing.T) {
	f := newFixture(t)
	resp, b := f.do("GET", "/info", nil, false, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var info map[string]any
	require.NoError(t, json.Unmarshal(b, &info))
	require.Nil(t, info["user"])
	require.Equal(t, "basic", info["user_authentication"].(map[string]any)["type"])

	_, b = f.do("GET", "/info", nil, true, nil)
	require.NoError(t, json.Unmarshal(b, &info))
	require.Equal(t, f.creds.User, info["user"])

	req, _ := http.NewRequest("GET", f.url+"/info", nil)
	req.SetBasicAuth("admin", "wrong")
	r2, err := f.client.Do(req)
	require.NoError(t, err)
	r2.Body.Close()
	require.Equal(t, http.StatusOK, r2.StatusCode, "bad credentials on /info give user null, not 401")

	resp, _ = f.do("GET", "/stemcells", nil, false, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	req, _ = http.NewRequest("GET", f.url+"/releases", nil)
	req.SetBasicAuth(f.creds.User, "wrong")
	r3, err := f.client.Do(req)
	require.NoError(t, err)
	r3.Body.Close()
	require.Equal(t, http.StatusUnauthorized, r3.StatusCode)
}

func lightStemcell(t *testing.T, name, version string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for n, content := range map[string]string{
		"stemcell.MF": fmt.Sprintf("name: %s\nversion: %q\noperating_system: ubuntu-jammy\ncloud_properties: {}\n", name, version),
		"image":       "",
	} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(content))}))
		_, err := tw.Write([]byte(content))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

func TestStemcellUploadAndTaskOutput(t *testing.T) {
	f := newFixture(t)
	resp, b := f.do("POST", "/stemcell_uploads", strings.NewReader(`{"stemcell":{"name":"bosh-local","version":"1.0"}}`), true, map[string]string{"Content-Type": "application/json"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"needed":true}`, string(b))

	resp, _ = f.do("POST", "/stemcells", bytes.NewReader(lightStemcell(t, "bosh-local", "1.0")), true, map[string]string{"Content-Type": "application/x-compressed"})
	task := f.waitTask(resp)
	require.Equal(t, "done", task["state"], "%v", task)
	id := int(task["id"].(float64))

	_, b = f.do("GET", "/stemcells", nil, true, nil)
	require.Contains(t, string(b), `"name":"bosh-local"`)
	_, b = f.do("POST", "/stemcell_uploads", strings.NewReader(`{"stemcell":{"name":"bosh-local","version":"1.0"}}`), true, nil)
	require.JSONEq(t, `{"needed":false}`, string(b))

	// Event output: every line is JSON with a tags array; Range gives 206, then 416 once nothing is new.
	path := fmt.Sprintf("/tasks/%d/output?type=event", id)
	resp, all := f.do("GET", path, nil, true, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, line := range strings.Split(strings.TrimSpace(string(all)), "\n") {
		var ev map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
		_, isList := ev["tags"].([]any)
		require.True(t, isList, "tags is always an array: %s", line)
	}
	resp, part := f.do("GET", path, nil, true, map[string]string{"Range": "bytes=10-"})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, all[10:], part)
	resp, _ = f.do("GET", path, nil, true, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(all))})
	require.Equal(t, http.StatusRequestedRangeNotSatisfiable, resp.StatusCode)
	resp, _ = f.do("GET", fmt.Sprintf("/tasks/%d/output?type=result", id), nil, true, nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	_, b = f.do("GET", "/tasks?state=done&verbose=2", nil, true, nil)
	require.Contains(t, string(b), `"description":"create stemcell"`)
	resp, _ = f.do("GET", "/tasks/999", nil, true, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestBadStemcellFailsTheTask(t *testing.T) {
	f := newFixture(t)
	resp, _ := f.do("POST", "/stemcells", strings.NewReader("not a tarball"), true, nil)
	task := f.waitTask(resp)
	require.Equal(t, "error", task["state"])
	require.Contains(t, task["result"], "not a gzipped tarball")
	_, b := f.do("GET", fmt.Sprintf("/tasks/%d/output?type=event", int(task["id"].(float64))), nil, true, nil)
	require.Contains(t, string(b), `"error":{"code":100`)
}

func TestReleaseUpload(t *testing.T) {
	f := newFixture(t)
	tarball := filepath.Join(t.TempDir(), "r.tgz")
	_, err := release.Build("../../releasetools/release/testdata/repo", tarball, release.BuildOptions{Version: "1+dev.1"})
	require.NoError(t, err)
	_, b := f.do("POST", "/packages/matches", strings.NewReader("---\npackages: []\n"), true, map[string]string{"Content-Type": "text/yaml"})
	require.JSONEq(t, `[]`, string(b))
	body, err := os.ReadFile(tarball)
	require.NoError(t, err)
	resp, _ := f.do("POST", "/releases", bytes.NewReader(body), true, map[string]string{"Content-Type": "application/x-compressed"})
	task := f.waitTask(resp)
	require.Equal(t, "done", task["state"], "%v", task)
	_, b = f.do("GET", "/releases", nil, true, nil)
	var rels []struct {
		Name     string `json:"name"`
		Versions []struct {
			Version string `json:"version"`
		} `json:"release_versions"`
	}
	require.NoError(t, json.Unmarshal(b, &rels))
	require.Len(t, rels, 1)
	require.Equal(t, "1+dev.1", rels[0].Versions[0].Version)

	corrupt := append([]byte{}, body...)
	corrupt[len(corrupt)/2] ^= 0xff
	resp, _ = f.do("POST", "/releases", bytes.NewReader(corrupt), true, nil)
	require.Equal(t, "error", f.waitTask(resp)["state"])
}

func TestCloudConfigDiffAndUpdate(t *testing.T) {
	f := newFixture(t)
	cc := "networks:\n- name: default\n  type: manual\n"
	_, b := f.do("POST", "/cloud_configs/diff?name=default", strings.NewReader(cc), true, nil)
	require.JSONEq(t, `{"diff":[["networks:","added"],["- name: default","added"],["  type: manual","added"]]}`, string(b))
	resp, _ := f.do("POST", "/cloud_configs?name=default", strings.NewReader(cc), true, map[string]string{"Content-Type": "text/yaml"})
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	_, b = f.do("POST", "/cloud_configs/diff?name=default", strings.NewReader(cc), true, nil)
	require.JSONEq(t, `{"diff":[]}`, string(b))
	_, b = f.do("POST", "/cloud_configs/diff?name=default", strings.NewReader(strings.Replace(cc, "manual", "dynamic", 1)), true, nil)
	require.JSONEq(t, `{"diff":[["networks:",null],["- name: default",null],["  type: dynamic","added"],["  type: manual","removed"]]}`, string(b))
	resp, b = f.do("POST", "/cloud_configs?name=default", strings.NewReader("azs: []\n"), true, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(b), "'networks' is required")
}

func TestDeploymentEndpointsWithoutVMBackend(t *testing.T) {
	f := newFixture(t)
	resp, b := f.do("POST", "/deployments", strings.NewReader("name: x\n"), true, map[string]string{"Content-Type": "text/yaml"})
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, string(b), "without a VM backend")
	_, b = f.do("GET", "/deployments", nil, true, nil)
	require.JSONEq(t, `[]`, string(b))
	resp, _ = f.do("GET", "/deployments/x", nil, true, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	_, b = f.do("POST", "/deployments/x/diff?redact=true", strings.NewReader("name: x\n"), true, nil)
	require.JSONEq(t, `{"context":{"cloud_config_id":null,"runtime_config_ids":[]},"diff":[["name: x","added"]]}`, string(b))
}

func TestRestartedDirectorKeepsStateAndFailsInterruptedTasks(t *testing.T) {
	dir := t.TempDir()
	store, err := state.Open(dir)
	require.NoError(t, err)
	task, err := store.NewTask("deploy", "admin", "d", "")
	require.NoError(t, err)
	require.NoError(t, store.PutStemcell(state.Stemcell{Name: "s", Version: "1"}))
	store2, err := state.Open(dir)
	require.NoError(t, err)
	_, err = tasks.NewRunner(store2, zap.NewNop())
	require.NoError(t, err)
	got, err := store2.Task(task.ID)
	require.NoError(t, err)
	require.Equal(t, "error", got.State)
	require.Contains(t, got.Result, "restarted")
	sc, err := store2.Stemcells()
	require.NoError(t, err)
	require.Len(t, sc, 1)
}

// An upload over the limit is refused with 413 and a message naming the limit; nothing of it is kept.
func TestUploadOverTheLimitIsRefused(t *testing.T) {
	f := newFixtureWith(t, func(s *Server) { s.MaxUploadBytes = 1024 })
	for _, path := range []string{"/releases", "/stemcells"} {
		resp, b := f.do("POST", path, bytes.NewReader(make([]byte, 4096)), true, nil)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s: %s", path, b)
		require.Contains(t, string(b), "larger than the director's limit of 1024 bytes")
	}
	entries, err := os.ReadDir(filepath.Join(f.store.Dir(), "uploads"))
	require.NoError(t, err)
	require.Empty(t, entries, "the refused uploads were removed")
	resp, _ := f.do("POST", "/stemcells", bytes.NewReader(make([]byte, 512)), true, nil)
	require.Equal(t, "error", f.waitTask(resp)["state"], "an upload under the limit is accepted (and then fails as no tarball)")
}
