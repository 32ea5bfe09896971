package erb

// Context is everything a job's templates can see for one instance: the instance spec (the `spec` object of
// bosh-common's template/evaluation_context.rb: deployment, name, index, id, az, bootstrap, address, ip, networks, ...), the
// job's manifest properties and its resolved links. Render turns it into the hash a BOSH director hands to
// Bosh::Template::EvaluationContext.
type Context struct {
	Deployment string
	// InstanceGroup is spec.name and the legacy `name` helper (BOSH gives templates the group name, not the job's).
	InstanceGroup string
	Index         int
	ID            string
	// AZ is spec.az; empty means nil (a group without azs).
	AZ             string
	Bootstrap      bool
	Address        string
	IP             string
	Networks       map[string]Network
	PersistentDisk int
	DNSDomainName  string
	Release        ReleaseRef
	// Jobs lists the group's jobs for spec.job.templates; optional.
	Jobs []JobRef
	// Properties is the job's base property hash from the manifest: the job's own `properties` when the key is
	// present (even `{}`), else the global properties deep-merged with the group's (the director's
	// deployment_plan/instance_group_spec_parser.rb). Render resolves it
	// against the job spec (declared names only, spec defaults for nil); resolving twice changes nothing.
	Properties map[string]any
	// Links maps the consumer's spec link name to the resolved link.
	Links map[string]Link
}

// Network is one entry of spec.networks.
type Network struct {
	Type          string
	IP            string
	Netmask       string
	Gateway       string
	Default       []string
	DNS           []string
	DNSRecordName string
}

// ReleaseRef is spec.release.
type ReleaseRef struct {
	Name    string
	Version string
}

// JobRef is one entry of spec.job.templates.
type JobRef struct {
	Name        string
	Version     string
	SHA1        string
	BlobstoreID string
}

// Link is what link('name') sees: the provider group's instances, the provider's shared properties (see
// ResolveLinkProperties) and the address the director computed for the link.
type Link struct {
	Address    string
	Instances  []LinkInstance
	Properties map[string]any
	// Optional extras carried in the link hash like a BOSH director does; templates cannot call them.
	InstanceGroup  string
	DeploymentName string
	DefaultNetwork string
	Domain         string
}

// LinkInstance is one element of link('name').instances.
type LinkInstance struct {
	// Name is the provider's instance group name.
	Name      string
	Index     int
	ID        string
	AZ        string
	Address   string
	Bootstrap bool
}

// specHash builds the instance spec hash for the evaluation context, with the job's resolved properties.
func (c Context) specHash(resolved map[string]any) map[string]any {
	networks := map[string]any{}
	for name, n := range c.Networks {
		h := map[string]any{
			"ip":      n.IP,
			"netmask": n.Netmask,
			"gateway": n.Gateway,
			"default": stringList(n.Default),
			"dns":     stringList(n.DNS),
		}
		if n.Type != "" {
			h["type"] = n.Type
		}
		if n.DNSRecordName != "" {
			h["dns_record_name"] = n.DNSRecordName
		}
		networks[name] = h
	}
	templates := []any{}
	for _, j := range c.Jobs {
		templates = append(templates, map[string]any{
			"name": j.Name, "version": j.Version, "sha1": j.SHA1, "blobstore_id": j.BlobstoreID,
		})
	}
	links := map[string]any{}
	for name, l := range c.Links {
		instances := []any{}
		for _, i := range l.Instances {
			instances = append(instances, map[string]any{
				"name": i.Name, "index": i.Index, "id": i.ID, "az": nilIfEmpty(i.AZ),
				"address": i.Address, "bootstrap": i.Bootstrap,
			})
		}
		props := l.Properties
		if props == nil {
			props = map[string]any{}
		}
		h := map[string]any{"instances": instances, "properties": props}
		if l.Address != "" {
			h["address"] = l.Address
		}
		for k, v := range map[string]string{
			"instance_group": l.InstanceGroup, "deployment_name": l.DeploymentName,
			"default_network": l.DefaultNetwork, "domain": l.Domain,
		} {
			if v != "" {
				h[k] = v
			}
		}
		links[name] = h
	}
	if resolved == nil {
		resolved = map[string]any{}
	}
	return map[string]any{
		"deployment":      c.Deployment,
		"name":            c.InstanceGroup,
		"job":             map[string]any{"name": c.InstanceGroup, "templates": templates},
		"index":           c.Index,
		"id":              c.ID,
		"az":              nilIfEmpty(c.AZ),
		"bootstrap":       c.Bootstrap,
		"address":         c.Address,
		"ip":              c.IP,
		"networks":        networks,
		"persistent_disk": c.PersistentDisk,
		"dns_domain_name": c.DNSDomainName,
		"release":         map[string]any{"name": c.Release.Name, "version": c.Release.Version},
		"properties":      resolved,
		"links":           links,
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func stringList(s []string) []any {
	out := make([]any, 0, len(s))
	for _, e := range s {
		out = append(out, e)
	}
	return out
}
