package deployer

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
	"github.com/etcd-release/etcd-release/src/director/vm"
	"github.com/etcd-release/etcd-release/src/releasetools/erb"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// Config configures a Deployer.
type Config struct {
	// StateDir holds vms/ (ephemeral disks), disks/ (persistent disks), compiled_packages/ and tmp/.
	StateDir string
	// Bridge is the host bridge every VM is attached to; BridgeCIDR its gateway address with the prefix length
	// (e.g. 10.244.0.1/16). Cloud-config subnets must lie inside it with this gateway.
	Bridge     string
	BridgeCIDR netip.Prefix
	// VMPrefix starts every VM cid (and so every network namespace name) of this director.
	VMPrefix string
	// Ruby is the interpreter for templates; empty = ruby from PATH.
	Ruby string
	// MonitInterval is monit's cycle in the VMs (vm.DefaultMonitInterval when zero).
	MonitInterval time.Duration
	// MinPollInterval is the shortest interval between job_state polls while waiting for running (BOSH: 1 s).
	MinPollInterval time.Duration
	// CompileWorkers bounds parallel package compilation; default: the number of CPUs.
	CompileWorkers int
	Log            *zap.Logger
}

// Deployer performs deploys, state changes, errands and deletes of the local director's deployments.
type Deployer struct {
	cfg      Config
	store    *state.Store
	renderer *erb.Renderer
	log      *zap.Logger

	planMu sync.Mutex // planning reserves IPs across deployments

	vmMu sync.Mutex
	vms  map[string]*vm.VM

	relMu    sync.Mutex
	relCache map[string]*release.Release

	// remonitor: per VM, the services drain unmonitored (see stop).
	remonitorMu sync.Mutex
	remonitor   map[string][]string

	// problems are the open problems of each deployment's last `bosh cck` scan.
	problemMu sync.Mutex
	problems  map[string][]Problem
}

// New returns a Deployer.
func New(cfg Config, store *state.Store) (*Deployer, error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.MinPollInterval <= 0 {
		cfg.MinPollInterval = time.Second
	}
	if cfg.CompileWorkers <= 0 {
		cfg.CompileWorkers = runtime.NumCPU()
	}
	if cfg.VMPrefix == "" {
		return nil, errors.New("deployer: VMPrefix is required")
	}
	if !cfg.BridgeCIDR.IsValid() || cfg.Bridge == "" {
		return nil, errors.New("deployer: Bridge and BridgeCIDR are required")
	}
	r, err := erb.NewRenderer(cfg.Ruby)
	if err != nil {
		return nil, fmt.Errorf("deployer: %w (install the Debian package ruby)", err)
	}
	for _, dir := range []string{"vms", "disks", "compiled_packages", "tmp"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, dir), 0o700); err != nil {
			return nil, err
		}
	}
	return &Deployer{cfg: cfg, store: store, renderer: r, log: cfg.Log.Named("deployer"), vms: map[string]*vm.VM{}, relCache: map[string]*release.Release{}, remonitor: map[string][]string{}, problems: map[string][]Problem{}}, nil
}

// Recover re-attaches the VMs of saved deployments after a director restart and reaps VMs with this director's
// prefix that no deployment knows. A VM that cannot be attached is reported and replaced by the next deploy.
func (d *Deployer) Recover(ctx context.Context) error {
	deps, err := d.store.Deployments()
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, dep := range deps {
		for _, inst := range dep.Instances {
			if inst.VMCID == "" {
				continue
			}
			known[inst.VMCID] = true
			spec, err := d.vmSpec(inst, inst.VMCID)
			if err != nil {
				continue
			}
			v, err := vm.Attach(ctx, spec)
			if err != nil {
				d.log.Warn("VM not attached", zap.String("deployment", dep.Name), zap.String("instance", instanceName(inst)),
					zap.String("vm", inst.VMCID), zap.String("reason", err.Error()))
				continue
			}
			d.vmMu.Lock()
			d.vms[inst.VMCID] = v
			d.vmMu.Unlock()
			d.log.Info("VM re-attached", zap.String("deployment", dep.Name), zap.String("instance", instanceName(inst)),
				zap.String("vm", inst.VMCID), zap.String("reason", "running VM of a saved deployment"))
		}
	}
	ids, err := vm.List(d.cfg.VMPrefix + "-")
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !known[id] {
			if _, err := vm.Reap(ctx, id, d.log); err != nil {
				d.log.Warn("reaping unknown VM failed", zap.String("vm", id), zap.Error(err))
			}
		}
	}
	return nil
}

// DestroyAll deletes every VM of every deployment this director knows (tests and `serve --destroy-on-exit`).
func (d *Deployer) DestroyAll(ctx context.Context) {
	d.vmMu.Lock()
	vms := make([]*vm.VM, 0, len(d.vms))
	for _, v := range d.vms {
		vms = append(vms, v)
	}
	d.vms = map[string]*vm.VM{}
	d.vmMu.Unlock()
	for _, v := range vms {
		_ = v.Destroy(ctx)
	}
	_, _ = vm.Reap(ctx, d.cfg.VMPrefix+"-", d.log)
}

// depState is a deployment's saved record, updated (and persisted) as instances change.
type depState struct {
	mu    sync.Mutex
	store *state.Store
	d     state.Deployment
}

func (s *depState) put(inst state.Instance) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.d.Instances, func(e state.Instance) bool { return e.ID == inst.ID })
	if i < 0 {
		s.d.Instances = append(s.d.Instances, inst)
	} else {
		s.d.Instances[i] = inst
	}
	return s.store.PutDeployment(s.d)
}

func (s *depState) remove(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d.Instances = slices.DeleteFunc(s.d.Instances, func(e state.Instance) bool { return e.ID == id })
	return s.store.PutDeployment(s.d)
}

// otherIPs are the IPs held by every deployment but name.
func (d *Deployer) otherIPs(name string) (map[netip.Addr]bool, error) {
	deps, err := d.store.Deployments()
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]bool{}
	for _, dep := range deps {
		if dep.Name == name {
			continue
		}
		for _, inst := range dep.Instances {
			if a, err := netip.ParseAddr(inst.IP); err == nil {
				out[a] = true
			}
		}
	}
	return out, nil
}

// prepare plans a deploy and saves the deployment record with the new manifest and the planned instances.
func (d *Deployer) prepare(ctx context.Context, out *tasks.Output, manifestText string, name string, overrides func(*instancePlan) override) (*plan, *depState, map[string]state.Instance, error) {
	var p *plan
	var ds *depState
	prev := map[string]state.Instance{}
	stage := out.Stage("Preparing deployment", nil, 1)
	err := stage.Step("Preparing deployment", func() error {
		d.planMu.Lock()
		defer d.planMu.Unlock()
		existing, err := d.store.Deployment(name)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return err
		}
		others, err := d.otherIPs(name)
		if err != nil {
			return err
		}
		p, err = d.buildPlan(ctx, manifestText, existing, others)
		if err != nil {
			return err
		}
		if p.name != name {
			return fmt.Errorf("manifest name '%s' does not match deployment '%s'", p.name, name)
		}
		for _, inst := range existing.Instances {
			prev[inst.ID] = inst
		}
		rec := state.Deployment{Name: p.name, Manifest: manifestText, Releases: p.releaseRefs, Stemcells: p.stemcellRefs}
		for _, gp := range p.groups {
			for _, ip := range gp.instances {
				if overrides != nil {
					ip.override = overrides(ip)
					if ip.override.state != "" {
						ip.inst.State = ip.override.state
					}
				}
				rec.Instances = append(rec.Instances, ip.inst)
			}
		}
		rec.Instances = append(rec.Instances, p.obsolete...)
		ds = &depState{store: d.store, d: rec}
		return d.store.PutDeployment(rec)
	})
	return p, ds, prev, err
}

// Deploy deploys a manifest in the stages of the director's jobs/update_deployment.rb (see the package doc).
func (d *Deployer) Deploy(ctx context.Context, out *tasks.Output, manifestText string) error {
	name, err := manifestName(manifestText)
	if err != nil {
		return err
	}
	end := d.begin(out, state.Event{Action: d.deploymentAction(name), ObjectType: "deployment", ObjectName: name, Deployment: name})
	err = d.converge(ctx, out, manifestText, name, nil)
	end(err)
	return err
}

// Selector picks instances for a state change: Group "" = all; Instance "" = the whole group; otherwise an index
// or an id.
type Selector struct{ Group, Instance string }

func (s Selector) matches(inst state.Instance) bool {
	if s.Group == "" || s.Group == "*" {
		return true
	}
	if s.Group != inst.Group {
		return false
	}
	return s.Instance == "" || s.Instance == inst.ID || s.Instance == strconv.Itoa(inst.Index)
}

// ChangeStateOptions are the query options of PUT /deployments/D/jobs/...
type ChangeStateOptions struct {
	SkipDrain bool
	Force     bool
}

// ChangeState converges the selected instances to started, stopped or detached, or restarts or recreates them:
// a deploy of the saved manifest with per-instance overrides, as the bosh CLI's converging
// `PUT /deployments/D/jobs/...` is (cloudfoundry/bosh-cli director/deployment.go).
func (d *Deployer) ChangeState(ctx context.Context, out *tasks.Output, name string, sel Selector, target string, opts ChangeStateOptions) error {
	dep, err := d.store.Deployment(name)
	if err != nil {
		return fmt.Errorf("Deployment '%s' doesn't exist", name)
	}
	found := false
	for _, inst := range dep.Instances {
		found = found || sel.matches(inst)
	}
	if !found {
		return fmt.Errorf("no instance of deployment '%s' matches '%s'", name, strings.Trim(sel.Group+"/"+sel.Instance, "/"))
	}
	var o override
	switch target {
	case "started", "stopped", "detached":
		o.state = target
	case "restart":
		o.state, o.restart = "started", true
	case "recreate":
		o.state, o.recreate = "started", true
	default:
		return fmt.Errorf("unknown state '%s': use started, stopped, detached, restart or recreate", target)
	}
	o.skipDrain = opts.SkipDrain
	end := d.begin(out, state.Event{Action: "update", ObjectType: "deployment", ObjectName: name, Deployment: name,
		Context: map[string]any{"state": target, "instances": strings.Trim(sel.Group+"/"+sel.Instance, "/")}})
	err = d.converge(ctx, out, dep.Manifest, name, func(ip *instancePlan) override {
		if sel.matches(ip.inst) {
			return o
		}
		return override{}
	})
	end(err)
	return err
}

func manifestName(text string) (string, error) {
	var probe struct {
		Name string `yaml:"name"`
	}
	if err := yamlUnmarshal([]byte(text), &probe); err != nil {
		return "", fmt.Errorf("parsing deployment manifest: %w", err)
	}
	if probe.Name == "" {
		return "", errors.New("deployment manifest: 'name' is required")
	}
	return probe.Name, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
