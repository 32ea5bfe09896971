package testhelper_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/status"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

// oneMemberLayout builds the real etcd_ctl and lays out a one-member cluster on a random loopback address (TLS
// on or off); it skips under -short.
func oneMemberLayout(t *testing.T, tls bool) (bin string, l *localcluster.Layout) {
	if testing.Short() {
		t.Skip("builds etcd_ctl and starts a real member")
	}
	bin = filepath.Join(t.TempDir(), "etcd_ctl")
	out, err := exec.Command("go", "build", "-o", bin, "../../etcd_ctl").CombinedOutput()
	require.NoError(t, err, "%s", out)
	base := net.IPv4(127, byte(20+rand.IntN(200)), byte(1+rand.IntN(250)), 1)
	l = &localcluster.Layout{Dir: t.TempDir(), Deployment: fmt.Sprintf("th-%d", rand.IntN(1<<30)), Base: base,
		MaxMembers: 1, RequireSSL: tls, PeerRequireSSL: tls}
	require.NoError(t, l.WriteConfig(0, 1))
	return bin, l
}

// TestStatusOfARealMember starts a one-member TLS cluster of real `etcd_ctl start` on loopback and reads its
// status through the helper, which runs the real etcd_ctl binary with the member's config.
func TestStatusOfARealMember(t *testing.T) {
	bin, l := oneMemberLayout(t, true)
	p, err := l.StartMember(bin, 0, false)
	require.NoError(t, err)
	t.Cleanup(func() { p.Stop(30 * time.Second) })

	cfg := baseConfig(t, t.TempDir())
	cfg.EtcdCtl, cfg.EtcdCtlConfig = bin, l.ConfigPath(0)
	h := startHelper(t, cfg, nil)
	var st status.Report
	require.Eventually(t, func() bool {
		st = status.Report{}
		return h.do(t, "GET", "/status", nil, &st) == http.StatusOK && st.Healthy
	}, 60*time.Second, time.Second)
	require.Len(t, st.Members, 1)
	require.True(t, st.Members[0].Leader)
}

// With tls.cert/tls.key the API is HTTPS only.
func TestTLS(t *testing.T) {
	set, err := pki.GenerateClusterSet(pki.SetOptions{IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(set.CACert))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	cfg := baseConfig(t, t.TempDir())
	cfg.TLSCert, cfg.TLSKey, cfg.Plaintext = string(set.ServerCert), string(set.ServerKey), false
	port := cfg.Port
	h := startHelper(t, cfg, client)
	require.Equal(t, http.StatusUnauthorized, h.doAuth(t, "GET", "/partition", nil, nil, nil))
	// Plain HTTP gets Go's "HTTP request to an HTTPS server" answer, never the API.
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err == nil {
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	}
	// Authenticated over TLS: the request reaches the handler (which rejects the job name before running anything).
	require.Equal(t, http.StatusBadRequest, h.do(t, "POST", "/monit/bad..name/stop", nil, nil))
}

// Without a configured certificate and without etcd_test_helper.plaintext, the API is HTTPS with a self-signed
// certificate made at start.
func TestTLSByDefault(t *testing.T) {
	cfg := baseConfig(t, t.TempDir())
	cfg.Plaintext = false
	var seen *x509.Certificate
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // the certificate is self-signed; the test checks what it is below
		VerifyConnection: func(cs tls.ConnectionState) error {
			seen = cs.PeerCertificates[0]
			return nil
		}}}}
	h := startHelper(t, cfg, client)
	require.Equal(t, "etcd-test-helper", seen.Subject.CommonName)
	require.Equal(t, http.StatusBadRequest, h.do(t, "POST", "/monit/bad..name/stop", nil, nil), "authenticated over TLS")
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", cfg.Port))
	if err == nil {
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "no plain HTTP API")
	}
}
