// Package manifest parses what a deploy is made of — the deployment manifest v2 and the cloud config — into typed
// values, checking the rules the BOSH director applies (cloudfoundry/bosh src/bosh-director/lib/bosh/director/
// deployment_plan/instance_group_spec_parser.rb, update_config.rb, cloud_manifest_parser.rb) up front so that a
// bad manifest fails before the director
// touches a VM, with messages that name the key (instance_groups[1].networks: ...).
//
// Properties stay untyped (map[string]any): the job specs decide what they mean (src/releasetools/erb resolves them). Keys the
// local director does not act on (vm_extensions, env, tags, features, variables, addons, ...) are accepted and
// ignored, as a director ignores what it has no use for; the deviations are listed in src/director/deployer.
package manifest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// Deployment is a deployment manifest v2.
type Deployment struct {
	Name           string
	Releases       []Release
	Stemcells      []Stemcell
	Update         Update
	InstanceGroups []*InstanceGroup
	// Properties are the (deprecated) global properties.
	Properties map[string]any
}

// Release is one entry of `releases`.
type Release struct{ Name, Version string }

// Stemcell is one entry of `stemcells`.
type Stemcell struct{ Alias, OS, Name, Version string }

// Update is an update block with every key resolved (group blocks inherit what they omit).
type Update struct {
	Canaries        Count
	MaxInFlight     Count
	CanaryWatch     WatchTime
	UpdateWatch     WatchTime
	Serial          bool
	serialSet       bool
	canariesSet     bool
	maxInFlightSet  bool
	canaryWatchSet  bool
	updateWatchSet  bool
	VMStrategy      string
	InitialAZUpdate string
}

// Count is an integer or a percentage ("25%") of a group's size.
type Count struct {
	N       int
	Percent bool
}

// Of computes the count for size instances: a percentage is floor(N*size/100); the result is capped at size.
func (c Count) Of(size int) int {
	n := c.N
	if c.Percent {
		n = c.N * size / 100
	}
	return min(n, size)
}

// WatchTime is a watch time range in milliseconds.
type WatchTime struct{ Min, Max int }

// InstanceGroup is one entry of `instance_groups`.
type InstanceGroup struct {
	Name      string
	Instances int
	AZs       []string
	VMType    string
	Stemcell  string
	Networks  []Network
	Jobs      []*Job
	// PersistentDisk is in MB (0 = none); PersistentDiskType names a cloud-config disk type instead.
	PersistentDisk     int
	PersistentDiskType string
	Lifecycle          string
	Update             Update
	Properties         map[string]any
}

// Lifecycles.
const (
	LifecycleService = "service"
	LifecycleErrand  = "errand"
)

// Network is one entry of an instance group's `networks`.
type Network struct {
	Name      string
	StaticIPs []string
	Default   []string
}

// Job is one entry of an instance group's `jobs`.
type Job struct {
	Name    string
	Release string
	// Properties is the job-level properties hash; HasProperties tells whether the key was present (even `{}`),
	// which makes it replace the global and group properties entirely (the director's
	// deployment_plan/instance_group_spec_parser.rb#parse_jobs).
	Properties    map[string]any
	HasProperties bool
	// Consumes and Provides map a link name to its manifest entry.
	Consumes map[string]LinkRef
	Provides map[string]LinkRef
}

// LinkRef is one `consumes`/`provides` entry of a manifest job.
type LinkRef struct {
	// Blocked is the YAML string "nil".
	Blocked bool
	From    string
	As      string
	Network string
	// Deployment names another deployment (cross-deployment link).
	Deployment string
	Shared     bool
	// Manual is a consumer value with literal instances/properties/address.
	Manual map[string]any
}

// ParseDeployment parses and checks a deployment manifest.
func ParseDeployment(data []byte) (*Deployment, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parsing deployment manifest: %w", err)
	}
	if raw == nil {
		return nil, errors.New("deployment manifest is empty")
	}
	raw, _ = release.Normalize(raw).(map[string]any)
	p := &parser{}
	d := p.deployment(raw)
	if err := errors.Join(p.errs...); err != nil {
		return nil, fmt.Errorf("invalid deployment manifest: %w", err)
	}
	return d, nil
}

// parser collects every problem instead of stopping at the first.
type parser struct{ errs []error }

func (p *parser) errorf(format string, a ...any) { p.errs = append(p.errs, fmt.Errorf(format, a...)) }

func (p *parser) str(m map[string]any, key, where string, required bool) string {
	v, ok := m[key]
	if !ok || v == nil {
		if required {
			p.errorf("%s: '%s' is required", where, key)
		}
		return ""
	}
	switch v := v.(type) {
	case string:
		return v
	case int, int64, float64, bool:
		return fmt.Sprint(v)
	}
	p.errorf("%s: '%s' must be a string, got %T", where, key, v)
	return ""
}

func (p *parser) hash(m map[string]any, key, where string) map[string]any {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	h, ok := v.(map[string]any)
	if !ok {
		p.errorf("%s: '%s' must be a hash, got %T", where, key, v)
	}
	return h
}

func (p *parser) list(m map[string]any, key, where string) []any {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		p.errorf("%s: '%s' must be a list, got %T", where, key, v)
	}
	return l
}

func (p *parser) strList(m map[string]any, key, where string) []string {
	var out []string
	for i, v := range p.list(m, key, where) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case int, float64:
			out = append(out, fmt.Sprint(v))
		default:
			p.errorf("%s: '%s[%d]' must be a string", where, key, i)
		}
	}
	return out
}

func (p *parser) deployment(raw map[string]any) *Deployment {
	for _, forbidden := range []string{"vm_types", "azs", "disk_types", "compilation", "networks", "resource_pools", "disk_pools", "jobs"} {
		if _, ok := raw[forbidden]; ok {
			p.errorf("deployment manifest should not contain cloud config properties: ['%s']", forbidden)
		}
	}
	d := &Deployment{Name: p.str(raw, "name", "manifest", true), Properties: p.hash(raw, "properties", "manifest")}
	if d.Properties == nil {
		d.Properties = map[string]any{}
	}
	for i, r := range p.list(raw, "releases", "manifest") {
		where := fmt.Sprintf("releases[%d]", i)
		m, ok := r.(map[string]any)
		if !ok {
			p.errorf("%s: must be a hash", where)
			continue
		}
		d.Releases = append(d.Releases, Release{Name: p.str(m, "name", where, true), Version: p.str(m, "version", where, true)})
	}
	if len(d.Releases) == 0 {
		p.errorf("manifest: 'releases' is required and must not be empty")
	}
	aliases := map[string]bool{}
	for i, s := range p.list(raw, "stemcells", "manifest") {
		where := fmt.Sprintf("stemcells[%d]", i)
		m, ok := s.(map[string]any)
		if !ok {
			p.errorf("%s: must be a hash", where)
			continue
		}
		sc := Stemcell{Alias: p.str(m, "alias", where, true), OS: p.str(m, "os", where, false), Name: p.str(m, "name", where, false), Version: p.str(m, "version", where, true)}
		if sc.OS == "" && sc.Name == "" {
			p.errorf("%s: either 'os' or 'name' is required", where)
		}
		if aliases[sc.Alias] {
			p.errorf("%s: duplicate stemcell alias '%s'", where, sc.Alias)
		}
		aliases[sc.Alias] = true
		d.Stemcells = append(d.Stemcells, sc)
	}
	top, ok := raw["update"].(map[string]any)
	if !ok {
		p.errorf("manifest: 'update' is required")
	}
	d.Update = p.update(top, Update{Serial: true, VMStrategy: "delete-create", InitialAZUpdate: "serial"}, "update", true)
	groups := map[string]bool{}
	for i, g := range p.list(raw, "instance_groups", "manifest") {
		where := fmt.Sprintf("instance_groups[%d]", i)
		m, ok := g.(map[string]any)
		if !ok {
			p.errorf("%s: must be a hash", where)
			continue
		}
		ig := p.group(m, where, d)
		if groups[ig.Name] {
			p.errorf("%s: duplicate instance group name '%s'", where, ig.Name)
		}
		groups[ig.Name] = true
		d.InstanceGroups = append(d.InstanceGroups, ig)
	}
	return d
}

func (p *parser) update(m map[string]any, base Update, where string, top bool) Update {
	u := base
	if m == nil {
		return u
	}
	if v, ok := m["canaries"]; ok {
		u.Canaries, u.canariesSet = p.count(v, where+".canaries"), true
	}
	if v, ok := m["max_in_flight"]; ok {
		u.MaxInFlight, u.maxInFlightSet = p.count(v, where+".max_in_flight"), true
	}
	if v, ok := m["canary_watch_time"]; ok {
		u.CanaryWatch, u.canaryWatchSet = p.watch(v, where+".canary_watch_time"), true
	}
	if v, ok := m["update_watch_time"]; ok {
		u.UpdateWatch, u.updateWatchSet = p.watch(v, where+".update_watch_time"), true
	}
	if v, ok := m["serial"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			p.errorf("%s.serial: must be a boolean", where)
		}
		u.Serial, u.serialSet = b, true
	}
	if v, ok := m["vm_strategy"].(string); ok {
		u.VMStrategy = v
	}
	if v, ok := m["initial_deploy_az_update_strategy"].(string); ok {
		u.InitialAZUpdate = v
	}
	if top {
		for key, set := range map[string]bool{"canaries": u.canariesSet, "max_in_flight": u.maxInFlightSet, "canary_watch_time": u.canaryWatchSet, "update_watch_time": u.updateWatchSet} {
			if !set {
				p.errorf("%s: '%s' is required", where, key)
			}
		}
	}
	return u
}

func (p *parser) count(v any, where string) Count {
	switch v := v.(type) {
	case int:
		if v < 0 {
			p.errorf("%s: must not be negative", where)
		}
		return Count{N: v}
	case string:
		s := strings.TrimSpace(v)
		if pct, ok := strings.CutSuffix(s, "%"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(pct))
			if err != nil || n < 0 {
				p.errorf("%s: %q is not a percentage", where, v)
			}
			return Count{N: n, Percent: true}
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			p.errorf("%s: %q is not a number or percentage", where, v)
		}
		return Count{N: n}
	}
	p.errorf("%s: must be an integer or a percentage", where)
	return Count{}
}

func (p *parser) watch(v any, where string) WatchTime {
	switch v := v.(type) {
	case int:
		return WatchTime{Min: v, Max: v}
	case string:
		lo, hi, isRange := strings.Cut(v, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil {
			p.errorf("%s: %q must be N or MIN-MAX milliseconds", where, v)
		} else if a > b {
			p.errorf("%s: %q: min is greater than max", where, v)
		}
		return WatchTime{Min: a, Max: b}
	}
	p.errorf("%s: must be N or MIN-MAX milliseconds", where)
	return WatchTime{}
}

func (p *parser) group(m map[string]any, where string, d *Deployment) *InstanceGroup {
	g := &InstanceGroup{Name: p.str(m, "name", where, true), Lifecycle: LifecycleService}
	if g.Name != "" {
		where = fmt.Sprintf("instance_groups '%s'", g.Name)
	}
	p.groupShape(m, where, g, d)
	p.groupDisk(m, where, g)
	g.Properties = p.hash(m, "properties", where)
	p.groupNetworks(m, where, g)
	p.groupJobs(m, where, g, d)
	g.Update = p.update(p.hash(m, "update", where), d.Update, where+".update", false)
	return g
}

// groupShape parses instances, azs, vm_type/vm_resources, stemcell and lifecycle.
func (p *parser) groupShape(m map[string]any, where string, g *InstanceGroup, d *Deployment) {
	switch v := m["instances"].(type) {
	case int:
		if v < 0 {
			p.errorf("%s: 'instances' must not be negative", where)
		}
		g.Instances = v
	case nil:
		p.errorf("%s: 'instances' is required", where)
	default:
		p.errorf("%s: 'instances' must be an integer", where)
	}
	if _, ok := m["azs"]; ok {
		g.AZs = p.strList(m, "azs", where)
		if len(g.AZs) == 0 {
			p.errorf("%s: 'azs' must not be empty when present", where)
		}
	}
	g.VMType = p.str(m, "vm_type", where, false)
	_, hasRes := m["vm_resources"]
	if (g.VMType == "") == !hasRes {
		p.errorf("%s: exactly one of 'vm_type' or 'vm_resources' is required", where)
	}
	g.Stemcell = p.str(m, "stemcell", where, true)
	if g.Stemcell != "" {
		found := false
		for _, s := range d.Stemcells {
			found = found || s.Alias == g.Stemcell
		}
		if !found {
			p.errorf("%s: stemcell '%s' is not defined in 'stemcells'", where, g.Stemcell)
		}
	}
	if lc := p.str(m, "lifecycle", where, false); lc != "" {
		if lc != LifecycleService && lc != LifecycleErrand {
			p.errorf("%s: 'lifecycle' must be 'service' or 'errand', got '%s'", where, lc)
		}
		g.Lifecycle = lc
	}
}

// groupDisk parses the group's persistent disk: at most one of persistent_disk (MB) and persistent_disk_type.
func (p *parser) groupDisk(m map[string]any, where string, g *InstanceGroup) {
	disks := 0
	if v, ok := m["persistent_disk"]; ok {
		disks++
		n, isInt := v.(int)
		if !isInt || n < 0 {
			p.errorf("%s: 'persistent_disk' must be a non-negative integer (MB)", where)
		}
		g.PersistentDisk = n
	}
	if _, ok := m["persistent_disk_type"]; ok {
		disks++
		g.PersistentDiskType = p.str(m, "persistent_disk_type", where, true)
	}
	if _, ok := m["persistent_disks"]; ok {
		disks++
		p.errorf("%s: 'persistent_disks' (multiple disks) is not supported by the local director", where)
	}
	if disks > 1 {
		p.errorf("%s: only one of 'persistent_disk', 'persistent_disk_type' and 'persistent_disks' may be given", where)
	}
}

// groupNetworks parses networks; with several, exactly one must be the default for dns and for gateway.
func (p *parser) groupNetworks(m map[string]any, where string, g *InstanceGroup) {
	nets := p.list(m, "networks", where)
	if len(nets) == 0 {
		p.errorf("%s: 'networks' is required and needs at least one entry", where)
	}
	for i, n := range nets {
		nm, ok := n.(map[string]any)
		if !ok {
			p.errorf("%s: networks[%d] must be a hash", where, i)
			continue
		}
		nw := where + fmt.Sprintf(" networks[%d]", i)
		g.Networks = append(g.Networks, Network{Name: p.str(nm, "name", nw, true), StaticIPs: p.strList(nm, "static_ips", nw), Default: p.strList(nm, "default", nw)})
	}
	if len(g.Networks) > 1 {
		for _, prop := range []string{"dns", "gateway"} {
			n := 0
			for _, nw := range g.Networks {
				for _, d := range nw.Default {
					if d == prop {
						n++
					}
				}
			}
			if n != 1 {
				p.errorf("%s: with several networks exactly one must be the default for '%s'", where, prop)
			}
		}
	}
}

// groupJobs parses the group's jobs: required, each once, each from a listed release.
func (p *parser) groupJobs(m map[string]any, where string, g *InstanceGroup, d *Deployment) {
	if _, ok := m["jobs"]; !ok {
		p.errorf("%s: 'jobs' is required", where)
	}
	releases := map[string]bool{}
	for _, r := range d.Releases {
		releases[r.Name] = true
	}
	seen := map[string]bool{}
	for i, j := range p.list(m, "jobs", where) {
		jm, ok := j.(map[string]any)
		if !ok {
			p.errorf("%s: jobs[%d] must be a hash", where, i)
			continue
		}
		g.Jobs = append(g.Jobs, p.job(jm, fmt.Sprintf("%s jobs[%d]", where, i), where, releases, seen))
	}
}

// job parses one job entry of a group; jw names it in errors, seen catches a job listed twice.
func (p *parser) job(jm map[string]any, jw, where string, releases, seen map[string]bool) *Job {
	job := &Job{Name: p.str(jm, "name", jw, true), Release: p.str(jm, "release", jw, true)}
	if job.Name != "" {
		jw = fmt.Sprintf("%s job '%s'", where, job.Name)
	}
	if seen[job.Name] {
		p.errorf("%s: job '%s' is listed twice", where, job.Name)
	}
	seen[job.Name] = true
	if job.Release != "" && !releases[job.Release] {
		p.errorf("%s: release '%s' is not listed in 'releases'", jw, job.Release)
	}
	if _, ok := jm["properties"]; ok {
		job.HasProperties = true
		job.Properties = p.hash(jm, "properties", jw)
		if job.Properties == nil {
			job.Properties = map[string]any{}
		}
	}
	job.Consumes = p.links(jm, "consumes", jw)
	job.Provides = p.links(jm, "provides", jw)
	if _, ok := jm["custom_provider_definitions"]; ok {
		p.errorf("%s: 'custom_provider_definitions' is not supported by the local director", jw)
	}
	return job
}

func (p *parser) links(jm map[string]any, key, where string) map[string]LinkRef {
	out := map[string]LinkRef{}
	raw, present := jm[key]
	if !present || raw == nil {
		return out
	}
	m, ok := raw.(map[string]any)
	if !ok {
		p.errorf("%s: '%s' must be a hash", where, key)
		return out
	}
	for name, v := range m {
		switch v := v.(type) {
		case string:
			if v != "nil" {
				p.errorf("%s: %s '%s' should only be a hash or string 'nil'", where, key, name)
			}
			out[name] = LinkRef{Blocked: true}
		case map[string]any:
			l := LinkRef{}
			l.From, _ = v["from"].(string)
			l.As, _ = v["as"].(string)
			l.Network, _ = v["network"].(string)
			l.Deployment, _ = v["deployment"].(string)
			l.Shared, _ = v["shared"].(bool)
			_, hasInstances := v["instances"]
			_, hasProps := v["properties"]
			_, hasAddr := v["address"]
			if hasInstances || hasProps || hasAddr {
				l.Manual = v
			}
			out[name] = l
		default:
			p.errorf("%s: %s '%s' should only be a hash or string 'nil'", where, key, name)
		}
	}
	return out
}
