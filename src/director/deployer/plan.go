package deployer

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/etcd-release/etcd-release/src/director/manifest"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/releasetools/erb"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// plan is a deploy worked out in full before any VM is touched: releases and stemcells resolved, instances
// placed with ids, indexes, AZs, IPs and bootstrap, links resolved and every template rendered.
type plan struct {
	name         string
	manifestText string
	m            *manifest.Deployment
	cloud        *manifest.CloudConfig
	releases     map[string]*release.Release
	releaseRefs  []state.NameVer
	stemcellRefs []state.NameVer
	stemcells    map[string]state.Stemcell // by alias
	groups       []*groupPlan
	// obsolete instances are deleted before anything else changes: scale-down, removed groups.
	obsolete []state.Instance
}

// groupPlan is one instance group of the plan.
type groupPlan struct {
	dep       string // deployment name
	stemcell  string // stemcell cid
	g         *manifest.InstanceGroup
	diskSize  int
	network   *manifest.CloudNetwork
	jobs      []*jobPlan
	instances []*instancePlan // desired instances by index
}

// jobPlan is one job of a group: the release job and the manifest entry.
type jobPlan struct {
	m       *manifest.Job
	rel     *release.Release
	job     *release.Job
	links   map[string]erb.Link
	base    map[string]any // property base hash: job properties if the key is present, else global+group
	hasRun  bool
	hasHook map[string]bool
}

// instancePlan is one desired instance.
type instancePlan struct {
	group    *groupPlan
	inst     state.Instance // the desired record; VM and disk fields are updated as the deploy goes
	subnet   *manifest.Subnet
	rendered map[string]map[string][]byte // job -> dest -> content ("monit" = monit file)
	hash     string                       // configuration hash
	override override
}

// override is a state change requested through PUT /deployments/D/jobs/... for one instance.
type override struct {
	state     string // started, stopped, detached; "" keeps the saved state
	restart   bool
	recreate  bool
	skipDrain bool
}

func (ip *instancePlan) name() string {
	return fmt.Sprintf("%s/%s (%d)", ip.inst.Group, ip.inst.ID, ip.inst.Index)
}

// nameservers are the dns servers of the instance's subnet: its VM's resolv.conf.
func (ip *instancePlan) nameservers() []netip.Addr {
	if ip.subnet == nil {
		return nil
	}
	return ip.subnet.Nameservers()
}

func instanceName(i state.Instance) string {
	return fmt.Sprintf("%s/%s (%d)", i.Group, i.ID, i.Index)
}

// buildPlan parses the manifest against the cloud config and the uploaded releases and stemcells and plans every
// instance. existing is the deployment's saved state (zero value for a new deployment); reservedElsewhere are the
// IPs held by other deployments.
func (d *Deployer) buildPlan(ctx context.Context, manifestText string, existing state.Deployment, reservedElsewhere map[netip.Addr]bool) (*plan, error) {
	m, err := manifest.ParseDeployment([]byte(manifestText))
	if err != nil {
		return nil, err
	}
	cc, err := d.store.LatestCloudConfig()
	if errors.Is(err, state.ErrNotFound) {
		return nil, errors.New("no cloud config uploaded: run update-cloud-config first")
	}
	if err != nil {
		return nil, err
	}
	cloud, err := manifest.ParseCloudConfig([]byte(cc.Content))
	if err != nil {
		return nil, err
	}
	p := &plan{name: m.Name, manifestText: manifestText, m: m, cloud: cloud, releases: map[string]*release.Release{}, stemcells: map[string]state.Stemcell{}}
	if err := d.resolveReleases(p); err != nil {
		return nil, err
	}
	if err := d.resolveStemcells(p); err != nil {
		return nil, err
	}
	if err := d.placeInstances(p, existing, reservedElsewhere); err != nil {
		return nil, err
	}
	if err := resolveLinks(p); err != nil {
		return nil, err
	}
	if err := d.render(ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

func (d *Deployer) resolveReleases(p *plan) error {
	all, err := d.store.Releases()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range p.m.Releases {
		var match *state.ReleaseVersion
		if r.Version == "latest" || strings.HasSuffix(r.Version, ".latest") {
			prefix := strings.TrimSuffix(strings.TrimSuffix(r.Version, "latest"), ".")
			for i := range all {
				rv := &all[i]
				if rv.Name != r.Name || (prefix != "" && !strings.HasPrefix(rv.Version, prefix+".") && rv.Version != prefix) {
					continue
				}
				if match == nil || compareVersions(rv.Version, match.Version) > 0 {
					match = rv
				}
			}
		} else {
			for i := range all {
				if all[i].Name == r.Name && all[i].Version == r.Version {
					match = &all[i]
				}
			}
		}
		if match == nil {
			errs = append(errs, fmt.Errorf("Release '%s/%s' doesn't exist: upload it first", r.Name, r.Version))
			continue
		}
		rel, err := d.readRelease(match.Tarball)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.releases[r.Name] = rel
		p.releaseRefs = append(p.releaseRefs, state.NameVer{Name: r.Name, Version: match.Version})
	}
	return errors.Join(errs...)
}

func (d *Deployer) readRelease(tarball string) (*release.Release, error) {
	d.relMu.Lock()
	defer d.relMu.Unlock()
	if r, ok := d.relCache[tarball]; ok {
		return r, nil
	}
	r, err := release.Read(tarball)
	if err != nil {
		return nil, err
	}
	d.relCache[tarball] = r
	return r, nil
}

func (d *Deployer) resolveStemcells(p *plan) error {
	all, err := d.store.Stemcells()
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range p.m.Stemcells {
		var match *state.Stemcell
		for i := range all {
			sc := &all[i]
			if (s.OS != "" && sc.OperatingSystem != s.OS) || (s.Name != "" && sc.Name != s.Name) {
				continue
			}
			if s.Version == "latest" {
				if match == nil || compareVersions(sc.Version, match.Version) > 0 {
					match = sc
				}
			} else if sc.Version == s.Version {
				match = sc
			}
		}
		if match == nil {
			errs = append(errs, fmt.Errorf("Stemcell '%s/%s' doesn't exist: upload it first", cmp.Or(s.Name, s.OS), s.Version))
			continue
		}
		p.stemcells[s.Alias] = *match
		p.stemcellRefs = append(p.stemcellRefs, state.NameVer{Name: match.Name, Version: match.Version})
	}
	return errors.Join(errs...)
}

// placeInstances places every group's instances and assigns their IPs, after the director's placement_planner/*
// and ip_provider/* (the rules are in placement.go).
func (d *Deployer) placeInstances(p *plan, existing state.Deployment, reservedElsewhere map[netip.Addr]bool) error {
	byGroup := map[string][]state.Instance{}
	for _, inst := range existing.Instances {
		byGroup[inst.Group] = append(byGroup[inst.Group], inst)
	}
	desiredGroups := map[string]bool{}
	reserved := map[netip.Addr]bool{}
	for ip := range reservedElsewhere {
		reserved[ip] = true
	}
	// IPs of this deployment's instances stay reserved while they exist (obsolete ones until deleted).
	for _, inst := range existing.Instances {
		if a, err := netip.ParseAddr(inst.IP); err == nil {
			reserved[a] = true
		}
	}
	var errs []error
	for _, g := range p.m.InstanceGroups {
		desiredGroups[g.Name] = true
		gp, obsolete, err := d.placeGroup(p, g, byGroup[g.Name], reserved)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.groups = append(p.groups, gp)
		p.obsolete = append(p.obsolete, obsolete...)
	}
	for _, inst := range existing.Instances {
		if !desiredGroups[inst.Group] {
			p.obsolete = append(p.obsolete, inst)
		}
	}
	return errors.Join(errs...)
}

// placeGroup places one group: checks it against the cloud config and the bridge, then applies the placement
// rules of placement.go (static or dynamic placement, IPs, bootstrap) to the group's existing instances. It
// returns the group plan and the existing instances that are no longer desired.
func (d *Deployer) placeGroup(p *plan, g *manifest.InstanceGroup, existing []state.Instance, reserved map[netip.Addr]bool) (*groupPlan, []state.Instance, error) {
	where := fmt.Sprintf("instance group '%s'", g.Name)
	nw, diskSize, err := d.checkGroup(p, g, where)
	if err != nil {
		return nil, nil, err
	}
	gp := &groupPlan{dep: p.name, g: g, network: nw, diskSize: diskSize, stemcell: p.stemcells[g.Stemcell].CID}
	sort.Slice(existing, func(i, j int) bool { return existing[i].Index < existing[j].Index })
	newInstance := instanceMaker(g.Name, existing, newUUID)
	statics, err := staticIPs(g, nw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	var desired []state.Instance
	var claimed map[string]bool
	if len(statics) > 0 {
		if len(statics) != g.Instances {
			return nil, nil, fmt.Errorf("%s has %d instances but was allocated %d static IPs", where, g.Instances, len(statics))
		}
		if desired, claimed, err = placeStatic(existing, statics, g.AZs, nw.Subnets, newInstance); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
	} else {
		azs := g.AZs
		if len(azs) == 0 {
			azs = []string{""}
		}
		desired, claimed = placeDynamic(existing, g.Instances, azs, gp.diskSize > 0, newInstance)
	}
	obsolete := unclaimed(existing, claimed)
	for i := range desired {
		desired[i].Network = nw.Name
		desired[i].Lifecycle = g.Lifecycle
	}
	if err := assignIPs(desired, nw, len(statics) > 0, reserved); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	electBootstrap(desired)
	for _, inst := range desired {
		a, _ := netip.ParseAddr(inst.IP)
		gp.instances = append(gp.instances, &instancePlan{group: gp, inst: inst, subnet: subnetFor(nw, a)})
	}
	return gp, obsolete, nil
}

// checkGroup checks a group's AZs, vm_type, network and disk type against the cloud config and the director's
// bridge, and returns its network and persistent disk size (MB).
func (d *Deployer) checkGroup(p *plan, g *manifest.InstanceGroup, where string) (*manifest.CloudNetwork, int, error) {
	for _, az := range g.AZs {
		if !slices.Contains(p.cloud.AZs, az) {
			return nil, 0, fmt.Errorf("%s: az '%s' is not in the cloud config", where, az)
		}
	}
	if g.VMType != "" && !slices.Contains(p.cloud.VMTypes, g.VMType) {
		return nil, 0, fmt.Errorf("%s: vm_type '%s' is not in the cloud config", where, g.VMType)
	}
	if len(g.Networks) != 1 {
		return nil, 0, fmt.Errorf("%s: the local director gives each VM exactly one network interface; list one network", where)
	}
	nw, ok := p.cloud.Network(g.Networks[0].Name)
	if !ok {
		return nil, 0, fmt.Errorf("%s: network '%s' is not in the cloud config", where, g.Networks[0].Name)
	}
	if err := checkBridgeSubnets(d.cfg.BridgeCIDR, d.cfg.Bridge, p.cloud.Networks); err != nil {
		return nil, 0, err
	}
	if g.PersistentDiskType == "" {
		return nw, g.PersistentDisk, nil
	}
	size, ok := p.cloud.DiskTypes[g.PersistentDiskType]
	if !ok {
		return nil, 0, fmt.Errorf("%s: persistent_disk_type '%s' is not in the cloud config", where, g.PersistentDiskType)
	}
	return nw, size, nil
}

func staticIPs(g *manifest.InstanceGroup, nw *manifest.CloudNetwork) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, e := range g.Networks[0].StaticIPs {
		ips, err := manifest.ParseIPs(e, netip.Prefix{})
		if err != nil {
			return nil, fmt.Errorf("static_ips %q: %w", e, err)
		}
		for _, a := range ips {
			s := subnetFor(nw, a)
			if s == nil || !s.IsStatic(a) {
				return nil, fmt.Errorf("network '%s' declares static ip '%s', which belongs to no subnet", nw.Name, a)
			}
			out = append(out, a)
		}
	}
	return out, nil
}

func subnetFor(nw *manifest.CloudNetwork, a netip.Addr) *manifest.Subnet {
	for _, s := range nw.Subnets {
		if s.Range.Contains(a) {
			return s
		}
	}
	return nil
}

func lowestFree(nw *manifest.CloudNetwork, az string, reserved map[netip.Addr]bool) (netip.Addr, error) {
	for _, s := range nw.Subnets {
		if !s.HasAZ(az) {
			continue
		}
		for a := s.Range.Addr(); s.Range.Contains(a); a = a.Next() {
			if !s.Restricted(a) && !s.IsStatic(a) && !reserved[a] {
				return a, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("Failed to reserve IP for network '%s' (az %q): no more available", nw.Name, az)
}

// provider is one consumable link provider in the deployment.
type provider struct {
	name  string // alias or spec name
	typ   string
	spec  string // spec provides name
	group *groupPlan
	job   *jobPlan
}

// resolveLinks binds jobs to their releases and resolves every consumer (the director's links/*: implicit by
// type, explicit by type and name, blocked with the string "nil"). All link errors are reported together.
func resolveLinks(p *plan) error {
	if err := bindJobs(p); err != nil {
		return err
	}
	providers := consumableProviders(p.groups)
	var linkErrs []string
	for _, gp := range p.groups {
		for _, jp := range gp.jobs {
			for _, c := range jp.job.Spec.Consumes {
				if msg := resolveConsumer(p, providers, gp, jp, c); msg != "" {
					linkErrs = append(linkErrs, linkError(c, jp, gp, msg))
				}
			}
		}
	}
	if len(linkErrs) > 0 {
		return fmt.Errorf("Failed to resolve links from deployment '%s'. See errors below:%s", p.name, strings.Join(linkErrs, ""))
	}
	return nil
}

// bindJobs finds every manifest job in its release and makes its job plan: the property base hash (the job's own
// properties when the key is present, else global and group merged) and which hook scripts it has.
func bindJobs(p *plan) error {
	var errs []error
	for _, gp := range p.groups {
		for _, mj := range gp.g.Jobs {
			rel := p.releases[mj.Release]
			if rel == nil {
				errs = append(errs, fmt.Errorf("instance group '%s': release '%s' is not uploaded", gp.g.Name, mj.Release))
				continue
			}
			j, ok := rel.Job(mj.Name)
			if !ok {
				errs = append(errs, fmt.Errorf("Job '%s' not found in release '%s/%s'", mj.Name, rel.Manifest.Name, rel.Manifest.Version))
				continue
			}
			jp := &jobPlan{m: mj, rel: rel, job: j, links: map[string]erb.Link{}, hasHook: map[string]bool{}}
			if mj.HasProperties {
				jp.base = mj.Properties
			} else {
				jp.base = deepMerge(p.m.Properties, gp.g.Properties)
			}
			for _, dest := range j.Spec.Templates {
				switch dest {
				case "bin/run":
					jp.hasRun = true
				case "bin/drain", "bin/pre-start", "bin/post-start", "bin/pre-stop", "bin/post-stop", "bin/post-deploy":
					jp.hasHook[strings.TrimPrefix(dest, "bin/")] = true
				}
			}
			gp.jobs = append(gp.jobs, jp)
		}
	}
	return errors.Join(errs...)
}

// consumableProviders lists every provided link of the deployment that is not blocked, named by its alias.
func consumableProviders(groups []*groupPlan) []provider {
	var providers []provider
	for _, gp := range groups {
		for _, jp := range gp.jobs {
			for _, pd := range jp.job.Spec.Provides {
				ref := jp.m.Provides[pd.Name]
				if ref.Blocked {
					continue
				}
				providers = append(providers, provider{name: cmp.Or(ref.As, pd.Name), typ: pd.Type, spec: pd.Name, group: gp, job: jp})
			}
		}
	}
	return providers
}

// matchProviders finds the providers a consumer of type typ matches: implicitly by type alone (deployment-wide,
// no preference for the consumer's own group), explicitly by type and provider name.
func matchProviders(providers []provider, typ string, explicit bool, name string) []provider {
	var found []provider
	for _, pr := range providers {
		if pr.typ == typ && (!explicit || pr.name == name) {
			found = append(found, pr)
		}
	}
	return found
}

// resolveConsumer sets one consumer's link on jp, or returns why it cannot be resolved. A blocked consumer gets no
// link; a manual one is taken literally; an unmatched optional consumer gets none unless it is named explicitly.
func resolveConsumer(p *plan, providers []provider, gp *groupPlan, jp *jobPlan, c release.LinkDef) string {
	ref, explicit := jp.m.Consumes[c.Name]
	switch {
	case explicit && ref.Blocked:
		return ""
	case explicit && ref.Manual != nil:
		jp.links[c.Name] = manualLink(ref.Manual)
		return ""
	case explicit && ref.Deployment != "" && ref.Deployment != p.name:
		return "Cross-deployment links are not supported by the local director"
	}
	found := matchProviders(providers, c.Type, explicit, cmp.Or(ref.From, c.Name))
	switch {
	case len(found) == 1:
		l, err := linkContent(p, found[0])
		if err != nil {
			return err.Error()
		}
		jp.links[c.Name] = l
		return ""
	case len(found) == 0:
		if c.Optional && !explicit {
			return ""
		}
		return "No link providers found"
	}
	var b strings.Builder
	b.WriteString("Multiple link providers found:")
	for _, pr := range found {
		fmt.Fprintf(&b, "\n  - Link provider '%s' with alias '%s' from job '%s' in instance group '%s' in deployment '%s'",
			pr.spec, pr.name, pr.job.job.Name, pr.group.g.Name, p.name)
	}
	return b.String()
}

func linkError(c release.LinkDef, jp *jobPlan, gp *groupPlan, detail string) string {
	lines := strings.Split(detail, "\n")
	var b strings.Builder
	fmt.Fprintf(&b, "\n  - Failed to resolve link '%s' with type '%s' from job '%s' in instance group '%s'. Details below:\n    - %s",
		c.Name, c.Type, jp.job.Name, gp.g.Name, lines[0])
	for _, l := range lines[1:] {
		b.WriteString("\n    " + l)
	}
	return b.String()
}

func linkContent(p *plan, pr provider) (erb.Link, error) {
	props, err := erb.ResolveLinkProperties(pr.job.job.Spec, pr.job.base, pr.spec)
	if err != nil {
		return erb.Link{}, err
	}
	l := erb.Link{
		Properties:     props,
		InstanceGroup:  pr.group.g.Name,
		DeploymentName: p.name,
		DefaultNetwork: pr.group.network.Name,
		Domain:         "bosh",
		Address:        fmt.Sprintf("q-s0.%s.%s.%s.bosh", canonical(pr.group.g.Name), canonical(pr.group.network.Name), canonical(p.name)),
	}
	for _, ip := range pr.group.instances {
		l.Instances = append(l.Instances, erb.LinkInstance{Name: pr.group.g.Name, Index: ip.inst.Index, ID: ip.inst.ID,
			AZ: ip.inst.AZ, Address: ip.inst.IP, Bootstrap: ip.inst.Bootstrap})
	}
	return l, nil
}

func manualLink(m map[string]any) erb.Link {
	l := erb.Link{}
	l.Address, _ = m["address"].(string)
	l.Properties, _ = m["properties"].(map[string]any)
	list, _ := m["instances"].([]any)
	for i, e := range list {
		h, _ := e.(map[string]any)
		li := erb.LinkInstance{Index: i}
		li.Name, _ = h["name"].(string)
		li.ID, _ = h["id"].(string)
		li.AZ, _ = h["az"].(string)
		li.Address, _ = h["address"].(string)
		li.Bootstrap, _ = h["bootstrap"].(bool)
		if n, ok := h["index"].(int); ok {
			li.Index = n
		}
		l.Instances = append(l.Instances, li)
	}
	return l
}

// canonical is BOSH's DNS name canonicalisation: lowercase, '_' -> '-', other characters dropped, no leading or
// trailing '-'.
func canonical(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r == '_':
			b.WriteRune('-')
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		}
	}
	return strings.Trim(b.String(), "-")
}

// render renders every job of every instance, gathering all errors into BOSH's nested error (erb.NewDeploymentError).
func (d *Deployer) render(ctx context.Context, p *plan) error {
	type work struct {
		gp *groupPlan
		ip *instancePlan
	}
	var items []work
	for _, gp := range p.groups {
		for _, ip := range gp.instances {
			ip.rendered = map[string]map[string][]byte{}
			items = append(items, work{gp, ip})
		}
	}
	groupErrs := make([][]error, len(p.groups))
	groupIdx := map[*groupPlan]int{}
	for i, gp := range p.groups {
		groupIdx[gp] = i
	}
	var mu sync.Mutex
	var otherErrs []error
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var errs []error
			for _, jp := range it.gp.jobs {
				files, err := d.renderer.Render(ctx, erb.JobFromRelease(jp.job), d.erbContext(p, it.gp, it.ip, jp))
				if err != nil {
					errs = append(errs, err)
					continue
				}
				links, _ := json.Marshal(linksJSON(jp.links))
				files[".bosh/links.json"] = links
				mu.Lock()
				it.ip.rendered[jp.job.Name] = files
				mu.Unlock()
			}
			mu.Lock()
			defer mu.Unlock()
			if len(errs) == 0 {
				return
			}
			var templateErrs []error
			for _, err := range errs {
				var je *erb.JobError
				var pe *erb.PropertyTypeError
				if errors.As(err, &je) || errors.As(err, &pe) {
					templateErrs = append(templateErrs, err)
				} else {
					otherErrs = append(otherErrs, err)
				}
			}
			gi := groupIdx[it.gp]
			if len(groupErrs[gi]) == 0 { // one instance's errors per group, as BOSH reports them
				groupErrs[gi] = templateErrs
			}
		}()
	}
	wg.Wait()
	if len(otherErrs) > 0 {
		return fmt.Errorf("rendering templates: %w", errors.Join(otherErrs...))
	}
	var igErrs []*erb.InstanceGroupError
	for i, gp := range p.groups {
		if len(groupErrs[i]) > 0 {
			igErrs = append(igErrs, &erb.InstanceGroupError{InstanceGroup: gp.g.Name, Errors: groupErrs[i]})
		}
	}
	if err := erb.NewDeploymentError(igErrs...); err != nil {
		return err
	}
	for _, gp := range p.groups {
		for _, ip := range gp.instances {
			ip.hash = configHash(ip.rendered)
		}
	}
	return nil
}

func linksJSON(links map[string]erb.Link) map[string]any {
	out := map[string]any{}
	for name, l := range links {
		var insts []map[string]any
		for _, i := range l.Instances {
			insts = append(insts, map[string]any{"name": i.Name, "index": i.Index, "id": i.ID, "az": i.AZ, "address": i.Address, "bootstrap": i.Bootstrap})
		}
		out[name] = map[string]any{"instances": insts, "properties": l.Properties, "address": l.Address, "instance_group": l.InstanceGroup, "deployment_name": l.DeploymentName}
	}
	return out
}

func (d *Deployer) erbContext(p *plan, gp *groupPlan, ip *instancePlan, jp *jobPlan) erb.Context {
	net := erb.Network{Type: "manual", IP: ip.inst.IP, Default: []string{"dns", "gateway"},
		DNSRecordName: fmt.Sprintf("%d.%s.%s.%s.bosh", ip.inst.Index, canonical(gp.g.Name), canonical(gp.network.Name), canonical(p.name))}
	if ip.subnet != nil {
		net.Netmask, net.Gateway, net.DNS = ip.subnet.Netmask(), ip.subnet.Gateway.String(), ip.subnet.DNS
	}
	if d := gp.g.Networks[0].Default; len(d) > 0 {
		net.Default = slices.Sorted(slices.Values(d))
	}
	var jobs []erb.JobRef
	for _, j := range gp.jobs {
		jobs = append(jobs, erb.JobRef{Name: j.job.Name, Version: j.job.Version, SHA1: j.job.SHA1})
	}
	return erb.Context{
		Deployment: p.name, InstanceGroup: gp.g.Name, Index: ip.inst.Index, ID: ip.inst.ID, AZ: ip.inst.AZ,
		Bootstrap: ip.inst.Bootstrap, Address: ip.inst.IP, IP: ip.inst.IP, Networks: map[string]erb.Network{gp.network.Name: net},
		PersistentDisk: gp.diskSize, DNSDomainName: "bosh",
		Release: erb.ReleaseRef{Name: jp.rel.Manifest.Name, Version: jp.rel.Manifest.Version},
		Jobs:    jobs, Properties: jp.base, Links: jp.links,
	}
}

// configHash is the instance's configuration_hash: a SHA-1 over every rendered file (monit included) of all jobs.
func configHash(rendered map[string]map[string][]byte) string {
	h := sha1.New()
	for _, job := range slices.Sorted(mapKeys(rendered)) {
		for _, dest := range slices.Sorted(mapKeys(rendered[job])) {
			if dest == ".bosh/links.json" {
				continue
			}
			fmt.Fprintf(h, "%s\x00%s\x00%d\x00", job, dest, len(rendered[job][dest]))
			h.Write(rendered[job][dest])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func deepMerge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if am, ok := out[k].(map[string]any); ok {
			if bm, ok := v.(map[string]any); ok {
				out[k] = deepMerge(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// compareVersions orders release/stemcell versions segment by segment, numerically where both are numbers.
func compareVersions(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '+' || r == '-' })
	}
	as, bs := split(a), split(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errx := strconv.Atoi(as[i])
		y, erry := strconv.Atoi(bs[i])
		if errx == nil && erry == nil {
			if c := cmp.Compare(x, y); c != 0 {
				return c
			}
			continue
		}
		if c := strings.Compare(as[i], bs[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(as), len(bs))
}
