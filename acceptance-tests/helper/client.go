// Package helper is the acceptance suite's client for the etcd-test-helper job (src/etcd-test-helper/testhelper): the only way the
// suite acts on a VM (monit stop/start/restart, wiping a job's store, partitions, the member's status), so that
// it needs no ssh and no director-specific back door.
package helper

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Client talks to the helper on any VM of a deployment (all share port and credentials).
type Client struct {
	Port     int
	Username string
	Password string
	HTTP     *http.Client
	// Scheme is "https" (the helper's default) or "http" (etcd_test_helper.plaintext).
	Scheme string
}

// New returns a plain-HTTP client (for a helper deployed with etcd_test_helper.plaintext) with a 5-minute
// request timeout (a monit stop waits for drain-free stop programs).
func New(port int, username, password string) *Client {
	return &Client{Port: port, Username: username, Password: password, HTTP: &http.Client{Timeout: 5 * time.Minute}, Scheme: "http"}
}

// NewTLS returns a client of a helper serving HTTPS with a certificate signed by the CA in caPEM.
func NewTLS(port int, username, password string, caPEM []byte) (*Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("test helper CA: no PEM certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &Client{Port: port, Username: username, Password: password, HTTP: &http.Client{Timeout: 5 * time.Minute, Transport: tr}, Scheme: "https"}, nil
}

func (c *Client) url(ip, path string) string {
	return c.Scheme + "://" + net.JoinHostPort(ip, strconv.Itoa(c.Port)) + path
}

// Error is an answer other than 200.
type Error struct {
	IP, Method, Path string
	Status           int
	Message          string
	Result           *CommandResult
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("test helper on %s: %s %s: HTTP %d: %s", e.IP, e.Method, e.Path, e.Status, e.Message)
	if e.Result != nil && strings.TrimSpace(e.Result.Stderr) != "" {
		msg += " (stderr: " + strings.TrimSpace(e.Result.Stderr) + ")"
	}
	return msg
}

// ErrUnsupported is returned for an operation the deployed helper does not serve.
var ErrUnsupported = errors.New("the deployed etcd-test-helper does not serve this operation")

// CommandResult is a command the helper ran.
type CommandResult struct {
	Command  []string `json:"command"`
	ExitCode int      `json:"exit_code"`
	Stdout   string   `json:"stdout"`
	Stderr   string   `json:"stderr"`
}

func (c *Client) do(ctx context.Context, ip, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.url(ip, path)
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(c.Username, c.Password)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("test helper on %s: %w", ip, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{IP: ip, Method: method, Path: path, Status: resp.StatusCode, Message: strings.TrimSpace(string(raw))}
		var eb struct {
			Error  string         `json:"error"`
			Result *CommandResult `json:"result"`
		}
		if json.Unmarshal(raw, &eb) == nil && eb.Error != "" {
			e.Message, e.Result = eb.Error, eb.Result
		}
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			return fmt.Errorf("%w: %w", ErrUnsupported, e)
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("test helper on %s: %s %s: decoding the answer: %w", ip, method, path, err)
		}
	}
	return nil
}

// Healthy reports whether the helper answers GET /healthz.
func (c *Client) Healthy(ctx context.Context, ip string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(ip, "/healthz"), nil)
	if err != nil {
		return false
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Monit runs `monit <action> <job>` (stop, start or restart) on the VM.
func (c *Client) Monit(ctx context.Context, ip, job, action string) (*CommandResult, error) {
	var r CommandResult
	err := c.do(ctx, ip, http.MethodPost, "/monit/"+job+"/"+action, nil, &r)
	return &r, err
}

// WipeResult lists what a wipe removed.
type WipeResult struct {
	Dir     string   `json:"dir"`
	Removed []string `json:"removed"`
}

// Wipe does the operator's `rm -rf /var/vcap/store/<job>/*` on the VM.
func (c *Client) Wipe(ctx context.Context, ip, job string) (*WipeResult, error) {
	var r WipeResult
	err := c.do(ctx, ip, http.MethodPost, "/store/"+job+"/wipe", nil, &r)
	return &r, err
}

// Kill sends SIGKILL to the job's processes (kill -9, monit then restarts them). It needs a helper that serves
// POST /process/{job}/kill; older helpers give ErrUnsupported.
func (c *Client) Kill(ctx context.Context, ip, job string) (*CommandResult, error) {
	var r CommandResult
	err := c.do(ctx, ip, http.MethodPost, "/process/"+job+"/kill", nil, &r)
	return &r, err
}

// Partition drops all traffic between the VM and peers (IPv4 addresses).
func (c *Client) Partition(ctx context.Context, ip string, peers []string) ([]string, error) {
	var r struct {
		Rules []string `json:"rules"`
	}
	err := c.do(ctx, ip, http.MethodPost, "/partition", map[string]any{"peers": peers}, &r)
	return r.Rules, err
}

// Heal removes every partition rule of the VM.
func (c *Client) Heal(ctx context.Context, ip string) error {
	return c.do(ctx, ip, http.MethodPost, "/heal", nil, nil)
}

// Member is one member in the helper's status (etcd_ctl status --json).
type Member struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	Learner    bool     `json:"learner"`
	Leader     bool     `json:"leader"`
	Healthy    bool     `json:"healthy"`
	RaftIndex  uint64   `json:"raft_index"`
	Error      string   `json:"error"`
}

// Status is the cluster as seen from one member.
type Status struct {
	Endpoint  string   `json:"endpoint"`
	ClusterID string   `json:"cluster_id"`
	LeaderID  string   `json:"leader_id"`
	Healthy   bool     `json:"healthy"`
	Members   []Member `json:"members"`
}

// Status runs etcd_ctl status on the VM. An unhealthy cluster still yields its report (etcd_ctl exits 2 but
// prints it), with a non-nil error.
func (c *Client) Status(ctx context.Context, ip string) (*Status, error) {
	var s Status
	err := c.do(ctx, ip, http.MethodGet, "/status", nil, &s)
	var he *Error
	if errors.As(err, &he) && he.Result != nil && json.Valid([]byte(he.Result.Stdout)) {
		if json.Unmarshal([]byte(he.Result.Stdout), &s) == nil {
			return &s, err
		}
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// SnapshotFile is a snapshot etcd_ctl wrote on a VM: its file name, its bytes and the metadata file beside it.
type SnapshotFile struct {
	Name     string          `json:"name"`
	Data     []byte          `json:"data"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Snapshot runs `etcd_ctl snapshot` on the VM and returns the verified snapshot and its metadata: the copy an
// operator keeps off the VMs (bosh scp). It needs a helper that serves POST /etcd/snapshot.
func (c *Client) Snapshot(ctx context.Context, ip string) (*SnapshotFile, error) {
	var r struct {
		Snapshot SnapshotFile `json:"snapshot"`
	}
	err := c.do(ctx, ip, http.MethodPost, "/etcd/snapshot", nil, &r)
	return &r.Snapshot, err
}

// Restore copies the snapshot to the VM and runs `etcd_ctl restore --snapshot <it> [--force]` there (etcd must be
// stopped on every VM of the deployment).
func (c *Client) Restore(ctx context.Context, ip string, snap *SnapshotFile, force bool) (*CommandResult, error) {
	var r CommandResult
	err := c.do(ctx, ip, http.MethodPost, "/etcd/restore", map[string]any{"snapshot": snap, "force": force}, &r)
	return &r, err
}

// RecoverFromSurvivor runs `etcd_ctl recover-from-survivor` on the VM (etcd stopped there).
func (c *Client) RecoverFromSurvivor(ctx context.Context, ip string) (*CommandResult, error) {
	var r CommandResult
	err := c.do(ctx, ip, http.MethodPost, "/etcd/recover-from-survivor", nil, &r)
	return &r, err
}

// Defrag runs `etcd_ctl defrag` on the VM: every member of the cluster, one at a time.
func (c *Client) Defrag(ctx context.Context, ip string) (*CommandResult, error) {
	var r CommandResult
	err := c.do(ctx, ip, http.MethodPost, "/etcd/defrag", nil, &r)
	return &r, err
}
