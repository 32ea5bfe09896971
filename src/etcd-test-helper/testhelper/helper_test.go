package testhelper_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd-test-helper/testhelper"
	"github.com/etcd-release/etcd-release/src/testkit/freeport"
)

var helperBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "etcd-test-helper-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helperBin = filepath.Join(dir, "etcd-test-helper")
	out, err := exec.Command("go", "build", "-o", helperBin, "..").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building etcd-test-helper: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helper is a running etcd-test-helper process.
type helper struct {
	url    string
	client *http.Client
	cfg    testhelper.Config
}

// startHelper runs the real binary with cfg (written as its config file); prefix runs it through another command
// (e.g. `ip netns exec NS`). It waits until GET /healthz answers.
func startHelper(t *testing.T, cfg testhelper.Config, client *http.Client, prefix ...string) *helper {
	t.Helper()
	dir := t.TempDir()
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(cfgPath, data, 0o600))
	argv := append(append([]string{}, prefix...), helperBin, "--config", cfgPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("etcd-test-helper logs:\n%s", logs.String())
		}
	})
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	scheme := "http"
	if !cfg.Plaintext {
		scheme = "https"
	}
	h := &helper{url: fmt.Sprintf("%s://127.0.0.1:%d", scheme, cfg.Port), client: client, cfg: cfg}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(h.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		select {
		case <-exited:
			t.Fatalf("etcd-test-helper exited: %s", logs.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "etcd-test-helper did not answer: %v\n%s", err, logs.String())
		time.Sleep(50 * time.Millisecond)
	}
}

// do sends an authenticated request and decodes the JSON answer into out (if not nil).
func (h *helper) do(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	return h.doAuth(t, method, path, body, out, func(r *http.Request) { r.SetBasicAuth(h.cfg.Username, h.cfg.Password) })
}

func (h *helper) doAuth(t *testing.T, method, path string, body any, out any, auth func(*http.Request)) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	require.NoError(t, err)
	if auth != nil {
		auth(req)
	}
	resp, err := h.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(data, out), "%s", data)
	}
	if resp.StatusCode != http.StatusOK {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	return resp.StatusCode
}

func baseConfig(t *testing.T, root string) testhelper.Config {
	cfg := testhelper.Default()
	cfg.ListenAddress = "127.0.0.1"
	cfg.Port = freeport.For(t)
	cfg.Username, cfg.Password, cfg.Token = "admin", "s3cret", "tok3n"
	cfg.VcapRoot = root
	cfg.Plaintext = true
	return cfg
}

func TestAuth(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "store", "etcd"), 0o700))
	h := startHelper(t, baseConfig(t, root), nil)

	require.Equal(t, http.StatusUnauthorized, h.doAuth(t, "POST", "/store/etcd/wipe", nil, nil, nil))
	require.Equal(t, http.StatusUnauthorized, h.doAuth(t, "POST", "/store/etcd/wipe", nil, nil,
		func(r *http.Request) { r.SetBasicAuth("admin", "wrong") }))
	require.Equal(t, http.StatusUnauthorized, h.doAuth(t, "GET", "/partition", nil, nil,
		func(r *http.Request) { r.Header.Set("Authorization", "Bearer wrong") }))
	require.Equal(t, http.StatusOK, h.doAuth(t, "POST", "/store/etcd/wipe", nil, nil,
		func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok3n") }))
	require.Equal(t, http.StatusOK, h.do(t, "POST", "/store/etcd/wipe", nil, nil))
}

func TestConfigValidation(t *testing.T) {
	cfg := testhelper.Default()
	cfg.Port = 0
	cfg.TLSCert = "x"
	err := cfg.Validate()
	require.ErrorContains(t, err, "etcd_test_helper.port: got 0")
	require.ErrorContains(t, err, "etcd_test_helper.username and etcd_test_helper.password")
	require.ErrorContains(t, err, "etcd_test_helper.tls.cert and etcd_test_helper.tls.key")

	// The binary refuses to start on an invalid config and says why.
	p := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(p, []byte(`{"port": 8448}`), 0o600))
	out, err := exec.Command(helperBin, "--config", p).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "etcd_test_helper.username")
}

func TestWipe(t *testing.T) {
	root := t.TempDir()
	store := filepath.Join(root, "store", "etcd")
	require.NoError(t, os.MkdirAll(filepath.Join(store, "member", "wal"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(store, "member", "wal", "0.wal"), []byte("x"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(store, ".hidden"), []byte("x"), 0o600))
	// A job whose store dir points outside the store, and a file next to the store that must survive.
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "precious"), []byte("x"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "store", "evil")))
	require.NoError(t, os.WriteFile(filepath.Join(root, "keep"), []byte("x"), 0o600))

	h := startHelper(t, baseConfig(t, root), nil)
	var res testhelper.WipeResult
	require.Equal(t, http.StatusOK, h.do(t, "POST", "/store/etcd/wipe", nil, &res))
	require.Equal(t, []string{"member"}, res.Removed)
	entries, err := os.ReadDir(store)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the dot file is left, as after rm -rf store/etcd/*")
	require.Equal(t, ".hidden", entries[0].Name())

	for _, job := range []string{"evil", "..", "%2e%2e", "etcd%2F..", "..%2Fkeep", "nope"} {
		code := h.do(t, "POST", "/store/"+job+"/wipe", nil, nil)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusNotFound}, code, "job %q", job)
	}
	require.FileExists(t, filepath.Join(outside, "precious"))
	require.FileExists(t, filepath.Join(root, "keep"))
}

// TestMonit drives a real monit daemon (its own control file, httpd on a free loopback port) through the helper.
func TestMonit(t *testing.T) {
	monit, err := exec.LookPath("monit")
	require.NoError(t, err, "monit is required (apt-get install monit)")
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "sleeper.pid")
	rc := filepath.Join(dir, "monitrc")
	require.NoError(t, os.WriteFile(rc, []byte(fmt.Sprintf(`set daemon 1
set pidfile %[1]s/monit.pid
set idfile %[1]s/monit.id
set statefile %[1]s/monit.state
set httpd port %[2]d and use address 127.0.0.1
    allow admin:pw
check process sleeper with pidfile %[3]s
  start program = "/bin/bash -c 'sleep 600 >/dev/null 2>&1 & echo $! > %[3]s'"
  stop program = "/bin/bash -c 'kill $(cat %[3]s); rm -f %[3]s'"
  mode manual
`, dir, freeport.For(t), pidfile)), 0o600))
	daemon := exec.Command(monit, "-c", rc, "-I")
	var logs bytes.Buffer
	daemon.Stdout, daemon.Stderr = &logs, &logs
	require.NoError(t, daemon.Start())
	t.Cleanup(func() {
		exec.Command(monit, "-c", rc, "stop", "all").Run()
		daemon.Process.Signal(os.Interrupt)
		daemon.Wait()
		if b, err := os.ReadFile(pidfile); err == nil {
			var pid int
			fmt.Sscan(string(b), &pid)
			if pid > 0 {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
		if t.Failed() {
			t.Logf("monit:\n%s", logs.String())
		}
	})

	cfg := baseConfig(t, t.TempDir())
	cfg.Monit = []string{monit, "-c", rc}
	h := startHelper(t, cfg, nil)

	running := func() bool {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return false
		}
		var pid int
		fmt.Sscan(string(b), &pid)
		return pid > 0 && exec.Command("kill", "-0", fmt.Sprint(pid)).Run() == nil
	}
	// monit's CLI needs the daemon's httpd; retry until it is up.
	require.Eventually(t, func() bool { return h.do(t, "POST", "/monit/sleeper/start", nil, nil) == http.StatusOK },
		15*time.Second, 200*time.Millisecond)
	require.Eventually(t, running, 15*time.Second, 100*time.Millisecond)
	// Let monit finish the start action (and see the process) before asking for a restart.
	require.Eventually(t, func() bool {
		out, _ := exec.Command(monit, "-c", rc, "summary", "sleeper").CombinedOutput()
		return bytes.Contains(out, []byte("OK"))
	}, 15*time.Second, 200*time.Millisecond)
	first, _ := os.ReadFile(pidfile)

	require.Equal(t, http.StatusOK, h.do(t, "POST", "/monit/sleeper/restart", nil, nil))
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(pidfile)
		return running() && !bytes.Equal(b, first)
	}, 20*time.Second, 100*time.Millisecond)

	require.Equal(t, http.StatusOK, h.do(t, "POST", "/monit/sleeper/stop", nil, nil))
	require.Eventually(t, func() bool { return !running() }, 15*time.Second, 100*time.Millisecond)

	require.Equal(t, http.StatusBadRequest, h.do(t, "POST", "/monit/sleeper/kill", nil, nil))
	require.Equal(t, http.StatusBadRequest, h.do(t, "POST", "/monit/..%2Fx/stop", nil, nil))
	// An unknown service is monit's error, reported with its output.
	require.Equal(t, http.StatusInternalServerError, h.do(t, "POST", "/monit/nosuchjob/stop", nil, nil))
}

func TestStatusReportsEtcdCtlFailure(t *testing.T) {
	cfg := baseConfig(t, t.TempDir())
	cfg.EtcdCtl = filepath.Join(t.TempDir(), "missing-etcd_ctl")
	h := startHelper(t, cfg, nil)
	require.Equal(t, http.StatusInternalServerError, h.do(t, "GET", "/status", nil, nil))
}
