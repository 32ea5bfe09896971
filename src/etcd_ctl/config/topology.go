package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Member is one etcd member as BOSH describes the deployment (the desired cluster, not the live one).
type Member struct {
	// Name is the etcd member name; empty when only an address is known (etcd.machines).
	Name string `json:"name,omitempty"`
	// Host is the host part of this member's URLs: a DNS name under etcd.advertise_urls_dns_suffix, or an address.
	Host      string `json:"host"`
	PeerURL   string `json:"peer_url"`
	ClientURL string `json:"client_url"`
	// Self marks this instance.
	Self bool `json:"self,omitempty"`
}

// MemberName is the etcd member name of instance `index` of instance group `group`. It is also the first DNS
// label under etcd.advertise_urls_dns_suffix, as in the original release (etcd_z1 index 0 → etcd-z1-0).
func MemberName(group string, index int) string {
	return canonicalLabel(group) + "-" + strconv.Itoa(index)
}

// canonicalLabel lowercases, maps '_' to '-' and drops characters that are not valid in a DNS label, as BOSH
// does for instance group names in DNS.
func canonicalLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		case r == '_':
			b.WriteRune('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// ClientScheme is https when etcd.require_ssl is set.
func (p Properties) ClientScheme() string {
	if p.RequireSSL {
		return "https"
	}
	return "http"
}

// PeerScheme is https when etcd.peer_require_ssl is set.
func (p Properties) PeerScheme() string {
	if p.PeerRequireSSL {
		return "https"
	}
	return "http"
}

// ClusterToken is the initial-cluster-token: unique per deployment so member IDs never collide across clusters.
func (c *Config) ClusterToken() string {
	if c.Etcd.InitialClusterToken != "" {
		return c.Etcd.InitialClusterToken
	}
	if c.Instance.Deployment != "" {
		return "etcd-" + c.Instance.Deployment
	}
	return "etcd-cluster"
}

// ConsulService splits etcd.advertise_urls_dns_suffix, which must read <service>.service.<domain> when consul is
// enabled, into the consul service name and the consul domain (etcd.service.cf.internal → etcd, cf.internal).
func (p Properties) ConsulService() (service, domain string, ok bool) {
	suffix := strings.Trim(p.AdvertiseURLsDNSSuffix, ".")
	service, domain, found := strings.Cut(suffix, ".service.")
	if !found || service == "" || domain == "" || strings.Contains(service, ".") || canonicalLabel(service) != service {
		return "", "", false
	}
	return service, domain, true
}

// SelfIP is the address this instance registers with consul: spec.ip, falling back to spec.address.
func (c *Config) SelfIP() string {
	if c.Instance.IP != "" {
		return c.Instance.IP
	}
	return c.Instance.Address
}

// SelfName is this member's etcd name.
func (c *Config) SelfName() string { return MemberName(c.Instance.Name, c.Instance.Index) }

// selfAddress is spec.address, falling back to spec.ip.
func (c *Config) selfAddress() string {
	if c.Instance.Address != "" {
		return c.Instance.Address
	}
	return c.Instance.IP
}

// hostFor returns the URL host of a member: its DNS name under the suffix when one is set, else its address.
func (c *Config) hostFor(name, address string) string {
	if c.Etcd.AdvertiseURLsDNSSuffix != "" && name != "" {
		return name + "." + strings.TrimPrefix(c.Etcd.AdvertiseURLsDNSSuffix, ".")
	}
	return address
}

func (c *Config) member(name, address string, self bool) Member {
	host := c.hostFor(name, address)
	return Member{
		Name:      name,
		Host:      host,
		PeerURL:   buildURL(c.Etcd.PeerScheme(), host, c.Etcd.PeerPort),
		ClientURL: buildURL(c.Etcd.ClientScheme(), host, c.Etcd.ClientPort),
		Self:      self,
	}
}

func buildURL(scheme, host string, port int) string {
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	return u.String()
}

// Self is this instance as a member.
func (c *Config) Self() Member { return c.member(c.SelfName(), c.selfAddress(), true) }

// PeerSource says where the desired member list came from, for log lines and errors.
func (c *Config) PeerSource() string {
	switch {
	case c.Link != nil && len(c.Link.Instances) > 0:
		return "etcd link"
	case len(c.Etcd.Machines) > 0:
		return "etcd.machines"
	case len(c.Etcd.Cluster) > 0:
		return "etcd.cluster"
	}
	return "none"
}

// DesiredMembers lists every member BOSH wants in the cluster, this instance included, from (in order of
// preference) the etcd link, etcd.machines, or etcd.cluster with etcd.advertise_urls_dns_suffix.
func (c *Config) DesiredMembers() ([]Member, error) {
	self := c.Self()
	var out []Member
	switch c.PeerSource() {
	case "etcd link":
		for _, in := range c.Link.Instances {
			name := MemberName(in.Name, in.Index)
			isSelf := (in.ID != "" && in.ID == c.Instance.ID) || (in.Name == c.Instance.Name && in.Index == c.Instance.Index)
			out = append(out, c.member(name, in.Address, isSelf))
		}
	case "etcd.machines":
		for _, addr := range c.Etcd.Machines {
			if addr == self.Host || addr == c.Instance.Address || addr == c.Instance.IP {
				out = append(out, self)
				continue
			}
			out = append(out, c.member("", addr, false))
		}
	case "etcd.cluster":
		if c.Etcd.AdvertiseURLsDNSSuffix == "" {
			return nil, &PropertyError{Property: "etcd.cluster", Problem: "lists instance groups but etcd.advertise_urls_dns_suffix is empty, so no member address can be derived; set etcd.machines, consume the etcd link, or set etcd.advertise_urls_dns_suffix"}
		}
		for _, g := range c.Etcd.Cluster {
			for i := 0; i < g.Instances; i++ {
				name := MemberName(g.Name, i)
				out = append(out, c.member(name, "", name == self.Name))
			}
		}
	default:
		return nil, &PropertyError{Property: "etcd.machines", Problem: "is empty and no etcd link is consumed, so this member does not know its peers; consume the etcd link (self-link the etcd job) or list every etcd VM address in etcd.machines"}
	}
	found := false
	for _, m := range out {
		if m.Self {
			found = true
		}
	}
	if !found {
		return nil, &PropertyError{Property: peerProperty(c.PeerSource()), Problem: fmt.Sprintf("does not include this instance (%s, address %q); every etcd instance must be listed", self.Name, c.selfAddress())}
	}
	return out, nil
}

func peerProperty(source string) string {
	if source == "etcd link" {
		return "link etcd.instances"
	}
	return source
}
