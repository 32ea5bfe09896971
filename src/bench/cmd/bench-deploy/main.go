// Command bench-deploy measures the local director with this repository's etcd release (issue: ≤ 15 s from the
// deploy request to all instances running for a 3-member TLS deployment with compiled packages cached, ≤ 30 s
// for a rolling update of all three). Against a running director with the release uploaded (scripts/deploy does
// both), it repeats: deploy a fresh 3-member TLS deployment of manifests/etcd.yml on its own static IPs, then a
// property change that touches every instance (a rolling update), then delete it; and prints each time, the
// director's per-instance event times, and the medians. It asserts nothing.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/director/api"
	"github.com/etcd-release/etcd-release/src/director/client"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
	"github.com/etcd-release/etcd-release/src/releasetools/jobtemplates"
)

func main() {
	stateDir := flag.String("state-dir", ".cache/local-director", "the local director's state dir (CA certificate and credentials)")
	url := flag.String("director", "https://127.0.0.1:25555", "director URL")
	name := flag.String("deployment", "etcd-bench", "name of the deployment the benchmark creates and deletes")
	ipList := flag.String("ips", "10.244.0.56,10.244.0.57,10.244.0.58", "static IPs of the three members (free addresses of the cloud-config's static range)")
	runs := flag.Int("runs", 3, "how many deploy / rolling update / delete rounds")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *stateDir, *url, *name, strings.Split(*ipList, ","), *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench-deploy:", err)
		os.Exit(1)
	}
}

func connect(stateDir, url string) (*client.Client, error) {
	ca, err := os.ReadFile(api.TLSPaths(stateDir).CACert)
	if err != nil {
		return nil, fmt.Errorf("reading the director's CA certificate (start it and upload the release first: scripts/deploy): %w", err)
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "creds.json"))
	if err != nil {
		return nil, err
	}
	var creds api.Credentials
	if err := json.Unmarshal(b, &creds); err != nil {
		return nil, err
	}
	return client.New(url, ca, creds.User, creds.Password)
}

// manifest is manifests/etcd.yml renamed, on the given IPs, with certificates for them; debug toggles
// etcd.enable_debug_logging, a property every instance's templates render (so changing it rolls all three).
func manifest(name string, ips []string, vars map[string]any, debug bool) ([]byte, error) {
	m, err := jobtemplates.LoadManifest("manifests/etcd.yml", nil, vars)
	if err != nil {
		return nil, err
	}
	m["name"] = name
	g, err := jobtemplates.InstanceGroup(m, "etcd")
	if err != nil {
		return nil, err
	}
	nets, _ := g["networks"].([]any)
	if len(nets) == 0 {
		return nil, fmt.Errorf("manifests/etcd.yml: instance group etcd has no network")
	}
	nets[0].(map[string]any)["static_ips"] = ips
	j, err := jobtemplates.Job(g, "etcd")
	if err != nil {
		return nil, err
	}
	props, _ := j["properties"].(map[string]any)
	etcd, _ := props["etcd"].(map[string]any)
	if etcd == nil {
		return nil, fmt.Errorf("manifests/etcd.yml: job etcd has no etcd properties")
	}
	etcd["enable_debug_logging"] = debug
	return yaml.Marshal(m)
}

func run(ctx context.Context, stateDir, url, name string, ipStrs []string, runs int) error {
	c, err := connect(stateDir, url)
	if err != nil {
		return err
	}
	var ips []net.IP
	for _, s := range ipStrs {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return fmt.Errorf("--ips: %q is not an IP address", s)
		}
		ips = append(ips, ip)
	}
	if len(ips) != 3 {
		return fmt.Errorf("--ips: give exactly 3 addresses")
	}
	set, err := pki.GenerateClusterSet(pki.SetOptions{IPs: ips, ClientCommonName: "etcd-client"})
	if err != nil {
		return err
	}
	var vars map[string]any
	if err := yaml.Unmarshal(set.VarsYAML(), &vars); err != nil {
		return err
	}

	// Warm-up: a deploy whose compilation (if any) is not measured, then delete it.
	fmt.Println("warm-up deploy (compiles packages if they are not cached yet) ...")
	if _, err := deploy(ctx, c, name, ipStrs, vars, false); err != nil {
		return err
	}
	if err := del(ctx, c, name); err != nil {
		return err
	}

	var creates, rolls, deletes []time.Duration
	for i := 1; i <= runs; i++ {
		create, err := deploy(ctx, c, name, ipStrs, vars, false)
		if err != nil {
			return err
		}
		roll, err := deploy(ctx, c, name, ipStrs, vars, true)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := del(ctx, c, name); err != nil {
			return err
		}
		d := time.Since(start)
		fmt.Printf("run %d: deploy to all running %s, rolling update of 3 %s, delete %s\n", i, r(create.total), r(roll.total), r(d))
		fmt.Printf("        deploy events: %s\n        rolling events: %s\n", create.events, roll.events)
		creates, rolls, deletes = append(creates, create.total), append(rolls, roll.total), append(deletes, d)
	}
	fmt.Printf("\nmedian of %d runs (3-member TLS, compiled packages cached): deploy request to all running %s (target ≤ 15s), rolling update of all 3 %s (target ≤ 30s), delete %s\n",
		runs, r(median(creates)), r(median(rolls)), r(median(deletes)))
	return nil
}

type timing struct {
	total  time.Duration
	events string
}

// deploy runs one deploy task and returns the time from the request to the task's end (every instance running and
// its post-start done) and the per-stage durations from the task's events.
func deploy(ctx context.Context, c *client.Client, name string, ips []string, vars map[string]any, debug bool) (timing, error) {
	m, err := manifest(name, ips, vars, debug)
	if err != nil {
		return timing{}, err
	}
	start := time.Now()
	id, err := c.Deploy(ctx, m)
	if err != nil {
		return timing{}, err
	}
	var events bytes.Buffer
	if _, err := c.Wait(ctx, id, &events); err != nil {
		return timing{}, fmt.Errorf("deploy task %d: %w", id, err)
	}
	return timing{total: time.Since(start), events: stageTimes(ctx, c, id)}, nil
}

// stageTimes summarises a task's event log: how long each instance update took.
func stageTimes(ctx context.Context, c *client.Client, id int) string {
	raw, err := c.TaskOutput(ctx, id, "event")
	if err != nil {
		return "(no events: " + err.Error() + ")"
	}
	type ev struct {
		Time  int64  `json:"time"`
		Stage string `json:"stage"`
		Task  string `json:"task"`
		State string `json:"state"`
	}
	started := map[string]int64{}
	var parts []string
	for _, line := range bytes.Split(raw, []byte("\n")) {
		var e ev
		if json.Unmarshal(line, &e) != nil || e.Stage == "" {
			continue
		}
		key := e.Stage + "|" + e.Task
		switch e.State {
		case "started":
			started[key] = e.Time
		case "finished":
			if s, ok := started[key]; ok && e.Stage == "Updating instance" {
				task := e.Task
				if i := strings.Index(task, " ("); i > 0 {
					task = task[:strings.Index(task, "/")] + task[i:]
				}
				parts = append(parts, fmt.Sprintf("%s %ds", task, e.Time-s))
			}
		}
	}
	return strings.Join(parts, ", ")
}

func del(ctx context.Context, c *client.Client, name string) error {
	id, err := c.DeleteDeployment(ctx, name, false)
	if err != nil {
		return err
	}
	if _, err := c.Wait(ctx, id, nil); err != nil {
		return fmt.Errorf("delete task %d: %w", id, err)
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func r(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
