// Package promtest runs the real Prometheus tools of the Debian prometheus package against the alert rules this
// release ships (manifests/prometheus/etcd-alerts.yml): promtool for the rule unit tests, and a Prometheus server
// on loopback that scrapes real etcd_ctl members in integration tests.
package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/testkit/freeport"
)

// Binaries of the Debian prometheus package.
const (
	Promtool   = "/usr/bin/promtool"
	Prometheus = "/usr/bin/prometheus"
)

// RulesFile is the shipped rules file, relative to the repository root.
const RulesFile = "manifests/prometheus/etcd-alerts.yml"

// RepoRoot finds the repository root (the directory holding go.mod) from the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Rule is one alerting rule of a rules file.
type Rule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
	For   string `yaml:"for"`
}

// Alerts lists the alerting rules of a rules file in order.
func Alerts(rules []byte) ([]Rule, error) {
	var f struct {
		Groups []struct {
			Rules []Rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &f); err != nil {
		return nil, err
	}
	var out []Rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

var forLine = regexp.MustCompile(`(?m)^([ \t]+for:[ \t]*)\S+[ \t]*$`)

// ShortenFor returns the rules with every `for:` duration replaced by d, for tests that cannot wait ten
// minutes; the expressions stay exactly the shipped ones.
func ShortenFor(rules []byte, d string) []byte {
	return forLine.ReplaceAll(rules, []byte("${1}"+d))
}

// Server is a Prometheus server started by a test, with its own data dir and config, on loopback.
type Server struct {
	URL string
	cmd *exec.Cmd
	log string
}

// Start runs Prometheus with configYAML (a full prometheus.yml) in dir and waits until it is ready. The caller
// Stops it.
func Start(ctx context.Context, dir, configYAML string) (*Server, error) {
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(configYAML), 0o644); err != nil {
		return nil, err
	}
	port, err := freeport.Port()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(Prometheus, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-lifecycle")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", Prometheus, err)
	}
	s := &Server{URL: "http://" + addr, cmd: cmd, log: logPath}
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			s.Stop()
			return nil, fmt.Errorf("prometheus not ready: %w (log: %s)", ctx.Err(), s.Log())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Log returns the server's output.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// Alert is one entry of /api/v1/alerts.
type Alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
	Value  string            `json:"value"`
}

// ActiveAlerts returns the pending and firing alerts.
func (s *Server) ActiveAlerts(ctx context.Context) ([]Alert, error) {
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Alerts []Alert `json:"alerts"`
		} `json:"data"`
	}
	if err := s.get(ctx, "/api/v1/alerts", &body); err != nil {
		return nil, err
	}
	return body.Data.Alerts, nil
}

// Target is one entry of /api/v1/targets.
type Target struct {
	ScrapeURL string            `json:"scrapeUrl"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
	Labels    map[string]string `json:"labels"`
}

// Targets returns the active scrape targets.
func (s *Server) Targets(ctx context.Context) ([]Target, error) {
	var body struct {
		Data struct {
			ActiveTargets []Target `json:"activeTargets"`
		} `json:"data"`
	}
	if err := s.get(ctx, "/api/v1/targets", &body); err != nil {
		return nil, err
	}
	return body.Data.ActiveTargets, nil
}

// Query runs an instant query and returns the result vector's samples as label set → value.
func (s *Server) Query(ctx context.Context, q string) ([]Sample, error) {
	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := s.get(ctx, "/api/v1/query?query="+url.QueryEscape(q), &body); err != nil {
		return nil, err
	}
	var out []Sample
	for _, r := range body.Data.Result {
		v, _ := strconv.ParseFloat(fmt.Sprint(r.Value[1]), 64)
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// Sample is one element of a query's result vector.
type Sample struct {
	Labels map[string]string
	Value  float64
}

func (s *Server) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}
