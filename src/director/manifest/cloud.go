package manifest

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// CloudConfig is the part of a cloud config the local director uses; the director parses the same keys in
// cloudfoundry/bosh src/bosh-director/lib/bosh/director/deployment_plan/cloud_manifest_parser.rb and
// manual_network_subnet.rb.
type CloudConfig struct {
	AZs       []string
	VMTypes   []string
	DiskTypes map[string]int // name -> disk_size MB
	Networks  []*CloudNetwork
}

// CloudNetwork is one manual network.
type CloudNetwork struct {
	Name    string
	Type    string
	Subnets []*Subnet
}

// Subnet is one subnet of a manual network.
type Subnet struct {
	Range    netip.Prefix
	Gateway  netip.Addr
	DNS      []string
	AZs      []string
	Reserved []netip.Addr
	Static   []netip.Addr
	reserved map[netip.Addr]bool
	static   map[netip.Addr]bool
}

// Network returns the named network.
func (c *CloudConfig) Network(name string) (*CloudNetwork, bool) {
	for _, n := range c.Networks {
		if n.Name == name {
			return n, true
		}
	}
	return nil, false
}

// Nameservers are the subnet's dns entries as addresses, in order (ParseCloudConfig checked that every entry is
// an IPv4 address; anything else is skipped).
func (s *Subnet) Nameservers() []netip.Addr {
	var out []netip.Addr
	for _, e := range s.DNS {
		if a, err := netip.ParseAddr(strings.TrimSpace(e)); err == nil && a.Is4() {
			out = append(out, a)
		}
	}
	return out
}

// Netmask is the subnet's mask in dotted form.
func (s *Subnet) Netmask() string {
	bits := s.Range.Bits()
	m := ^uint32(0) << (32 - bits)
	return fmt.Sprintf("%d.%d.%d.%d", byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
}

// Restricted reports whether ip may never be handed out: network or broadcast address, the gateway, reserved.
func (s *Subnet) Restricted(ip netip.Addr) bool {
	return ip == s.Range.Masked().Addr() || ip == broadcast(s.Range) || ip == s.Gateway || s.reserved[ip]
}

// IsStatic reports whether ip is in the subnet's static list.
func (s *Subnet) IsStatic(ip netip.Addr) bool { return s.static[ip] }

// HasAZ reports whether the subnet serves az ("" = an instance without AZ, which any subnet serves).
func (s *Subnet) HasAZ(az string) bool {
	return az == "" || len(s.AZs) == 0 || slices.Contains(s.AZs, az)
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= uint32(1)<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ParseCloudConfig parses and checks a cloud config.
func ParseCloudConfig(data []byte) (*CloudConfig, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parsing cloud config: %w", err)
	}
	raw, _ = release.Normalize(raw).(map[string]any)
	if raw == nil {
		return nil, errors.New("cloud config is empty")
	}
	p := &parser{}
	c := &CloudConfig{DiskTypes: map[string]int{}}
	c.AZs = p.names(raw, "azs", nil)
	c.VMTypes = p.names(raw, "vm_types", nil)
	p.names(raw, "disk_types", func(name string, m map[string]any) {
		size, _ := m["disk_size"].(int)
		if size <= 0 {
			p.errorf("cloud config disk_types '%s': 'disk_size' must be a positive integer (MB)", name)
		}
		c.DiskTypes[name] = size
	})
	nets := p.list(raw, "networks", "cloud config")
	if len(nets) == 0 {
		p.errorf("cloud config: 'networks' is required and must not be empty")
	}
	seen := map[string]bool{}
	for i, n := range nets {
		m, ok := n.(map[string]any)
		if !ok {
			p.errorf("cloud config networks[%d]: must be a hash", i)
			continue
		}
		c.Networks = append(c.Networks, p.cloudNetwork(m, fmt.Sprintf("cloud config networks[%d]", i), c.AZs, seen))
	}
	if err := errors.Join(p.errs...); err != nil {
		return nil, fmt.Errorf("invalid cloud config: %w", err)
	}
	return c, nil
}

// names parses a list of named entries (azs, vm_types, disk_types): every entry a hash with a unique name. each,
// if set, sees every named entry.
func (p *parser) names(raw map[string]any, key string, each func(name string, m map[string]any)) []string {
	var out []string
	seen := map[string]bool{}
	for i, e := range p.list(raw, key, "cloud config") {
		m, ok := e.(map[string]any)
		if !ok {
			p.errorf("cloud config %s[%d]: must be a hash", key, i)
			continue
		}
		n := p.str(m, "name", fmt.Sprintf("cloud config %s[%d]", key, i), true)
		if seen[n] {
			p.errorf("cloud config %s: duplicate name '%s'", key, n)
		}
		seen[n] = true
		out = append(out, n)
		if each != nil {
			each(n, m)
		}
	}
	return out
}

// cloudNetwork parses one network: a unique name, type manual (the only one supported here) and its subnets.
func (p *parser) cloudNetwork(m map[string]any, where string, azs []string, seen map[string]bool) *CloudNetwork {
	nw := &CloudNetwork{Name: p.str(m, "name", where, true), Type: p.str(m, "type", where, false)}
	if nw.Type == "" {
		nw.Type = "manual"
	}
	if seen[nw.Name] {
		p.errorf("cloud config networks: duplicate name '%s'", nw.Name)
	}
	seen[nw.Name] = true
	where = fmt.Sprintf("cloud config network '%s'", nw.Name)
	if nw.Type != "manual" {
		p.errorf("%s: type '%s' is not supported by the local director (manual networks only)", where, nw.Type)
	}
	for j, s := range p.list(m, "subnets", where) {
		sm, ok := s.(map[string]any)
		if !ok {
			p.errorf("%s subnets[%d]: must be a hash", where, j)
			continue
		}
		if sn := p.subnet(sm, fmt.Sprintf("%s subnets[%d]", where, j), azs); sn != nil {
			nw.Subnets = append(nw.Subnets, sn)
		}
	}
	if len(nw.Subnets) == 0 {
		p.errorf("%s: needs at least one subnet", where)
	}
	return nw
}

func (p *parser) subnet(m map[string]any, where string, azs []string) *Subnet {
	rng, err := netip.ParsePrefix(p.str(m, "range", where, true))
	if err != nil || !rng.Addr().Is4() {
		p.errorf("%s: 'range' must be an IPv4 CIDR: %v", where, err)
		return nil
	}
	s := &Subnet{Range: rng.Masked(), DNS: p.strList(m, "dns", where), reserved: map[netip.Addr]bool{}, static: map[netip.Addr]bool{}}
	gw, err := netip.ParseAddr(p.str(m, "gateway", where, true))
	if err != nil {
		p.errorf("%s: 'gateway': %v", where, err)
	} else if !s.Range.Contains(gw) || gw == s.Range.Addr() || gw == broadcast(s.Range) {
		p.errorf("%s: gateway %s must be inside %s and not its network or broadcast address", where, gw, s.Range)
	}
	s.Gateway = gw
	for i, e := range s.DNS {
		if a, err := netip.ParseAddr(strings.TrimSpace(e)); err != nil || !a.Is4() {
			p.errorf("%s: 'dns[%d]' %q must be an IPv4 address (the VMs' nameservers)", where, i, e)
		}
	}
	if az := p.str(m, "az", where, false); az != "" {
		s.AZs = []string{az}
	}
	s.AZs = append(s.AZs, p.strList(m, "azs", where)...)
	for _, az := range s.AZs {
		if !slices.Contains(azs, az) {
			p.errorf("%s: unknown az '%s'", where, az)
		}
	}
	for _, e := range p.strList(m, "reserved", where) {
		ips, err := ParseIPs(e, s.Range)
		if err != nil {
			p.errorf("%s: reserved %q: %v", where, e, err)
		}
		for _, ip := range ips {
			s.reserved[ip] = true
			s.Reserved = append(s.Reserved, ip)
		}
	}
	for _, e := range p.strList(m, "static", where) {
		ips, err := ParseIPs(e, s.Range)
		if err != nil {
			p.errorf("%s: static %q: %v", where, e, err)
		}
		for _, ip := range ips {
			if s.Restricted(ip) {
				p.errorf("%s: static IP %s is the network, broadcast, gateway or a reserved address", where, ip)
				continue
			}
			s.static[ip] = true
			s.Static = append(s.Static, ip)
		}
	}
	return s
}

// ParseIPs expands an IP, an "a - b" range or a CIDR; every address must lie inside within (if valid).
func ParseIPs(e string, within netip.Prefix) ([]netip.Addr, error) {
	e = strings.TrimSpace(e)
	var out []netip.Addr
	switch {
	case strings.Contains(e, "/"):
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, err
		}
		for a := p.Masked().Addr(); p.Contains(a); a = a.Next() {
			out = append(out, a)
		}
	case strings.Contains(e, "-"):
		lo, hi, _ := strings.Cut(e, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil {
			return nil, err
		}
		b, err := netip.ParseAddr(strings.TrimSpace(hi))
		if err != nil {
			return nil, err
		}
		if b.Less(a) {
			return nil, fmt.Errorf("range end %s is before its start %s", b, a)
		}
		for x := a; x.Compare(b) <= 0 && x.IsValid(); x = x.Next() {
			out = append(out, x)
		}
	default:
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if within.IsValid() {
		for _, a := range out {
			if !within.Contains(a) {
				return nil, fmt.Errorf("%s is outside %s", a, within)
			}
		}
	}
	return out, nil
}
