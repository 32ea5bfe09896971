package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
)

// ErrNotRoot is returned when an operation needs root (namespaces, links, mounts) and the process is not.
var ErrNotRoot = errors.New("the local director's VMs need root: network, mount and PID namespaces, " +
	"veth pairs and bridges can only be created by uid 0")

// MaxIfNameLen is the kernel's limit on interface names (IFNAMSIZ-1).
const MaxIfNameLen = 15

var ifNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func requireRoot() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	return nil
}

func validIfName(name string) error {
	if len(name) == 0 || len(name) > MaxIfNameLen || !ifNameRE.MatchString(name) {
		return fmt.Errorf("interface name %q: must be 1-%d characters of [A-Za-z0-9_.-]", name, MaxIfNameLen)
	}
	return nil
}

// ipLink is the subset of `ip -j -d link show` this package reads.
type ipLink struct {
	IfName    string   `json:"ifname"`
	Flags     []string `json:"flags"`
	OperState string   `json:"operstate"`
	Master    string   `json:"master"`
	LinkInfo  struct {
		InfoKind string `json:"info_kind"`
	} `json:"linkinfo"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

// linkShow returns the link, or nil when it does not exist.
func linkShow(ctx context.Context, name string) (*ipLink, error) {
	out, err := runOK(ctx, "ip", "-j", "-d", "addr", "show", "dev", name)
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) && strings.Contains(ce.Stderr, "does not exist") {
			return nil, nil
		}
		return nil, err
	}
	var links []ipLink
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("parsing `ip -j addr show dev %s`: %w", name, err)
	}
	if len(links) == 0 {
		return nil, nil
	}
	return &links[0], nil
}

// EnsureBridge makes sure a Linux bridge called name exists, carries gatewayCIDR (e.g. "10.244.0.1/16")
// and is up. It is idempotent. It refuses when another interface already routes an overlapping prefix,
// because VM addresses must only ever live on this bridge; it never enables forwarding or NAT, so traffic
// from VMs cannot leave the machine.
func EnsureBridge(ctx context.Context, name, gatewayCIDR string) error {
	if err := requireRoot(); err != nil {
		return err
	}
	if err := validIfName(name); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	gw, err := netip.ParsePrefix(gatewayCIDR)
	if err != nil {
		return fmt.Errorf("bridge %s: gateway %q is not an address/prefix: %w", name, gatewayCIDR, err)
	}
	if !gw.Addr().Is4() || gw.Bits() < 8 || gw.Bits() > 30 {
		return fmt.Errorf("bridge %s: gateway %s must be IPv4 with a prefix between /8 and /30", name, gatewayCIDR)
	}
	if err := checkNoOverlappingRoute(ctx, name, gw.Masked()); err != nil {
		return err
	}
	link, err := linkShow(ctx, name)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if link == nil {
		// STP off and no forward delay: a new port forwards at once instead of after 2x15 s.
		if _, err := runOK(ctx, "ip", "link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0"); err != nil {
			return fmt.Errorf("creating bridge %s: %w", name, err)
		}
		if link, err = linkShow(ctx, name); err != nil || link == nil {
			return fmt.Errorf("bridge %s vanished after creation: %v", name, err)
		}
	} else if link.LinkInfo.InfoKind != "bridge" {
		return fmt.Errorf("interface %s exists but is a %q, not a bridge", name, link.LinkInfo.InfoKind)
	}
	hasAddr := false
	for _, a := range link.AddrInfo {
		if a.Family == "inet" && a.Local == gw.Addr().String() && a.PrefixLen == gw.Bits() {
			hasAddr = true
		}
	}
	if !hasAddr {
		if _, err := runOK(ctx, "ip", "addr", "add", gw.String(), "dev", name); err != nil {
			return fmt.Errorf("adding %s to bridge %s: %w", gw, name, err)
		}
	}
	if _, err := runOK(ctx, "ip", "link", "set", name, "up"); err != nil {
		return fmt.Errorf("bringing bridge %s up: %w", name, err)
	}
	return ensureForwardGuard(ctx, name)
}

// CheckBridge reports whether the bridge exists, is a bridge, is up and carries gatewayCIDR. The director
// calls it before it creates any VM, so that no VM address can ever be routed elsewhere.
func CheckBridge(ctx context.Context, name, gatewayCIDR string) error {
	link, err := linkShow(ctx, name)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if link == nil {
		return fmt.Errorf("bridge %s does not exist", name)
	}
	if link.LinkInfo.InfoKind != "bridge" {
		return fmt.Errorf("interface %s is a %q, not a bridge", name, link.LinkInfo.InfoKind)
	}
	if !contains(link.Flags, "UP") {
		return fmt.Errorf("bridge %s is down", name)
	}
	for _, a := range link.AddrInfo {
		if a.Family == "inet" && fmt.Sprintf("%s/%d", a.Local, a.PrefixLen) == gatewayCIDR {
			return nil
		}
	}
	return fmt.Errorf("bridge %s does not carry %s", name, gatewayCIDR)
}

// DeleteBridge removes the bridge (and its forward guard). A missing bridge is not an error. VMs still
// attached lose their link; destroy them first.
func DeleteBridge(ctx context.Context, name string) error {
	if err := requireRoot(); err != nil {
		return err
	}
	if err := validIfName(name); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	removeForwardGuard(ctx, name)
	link, err := linkShow(ctx, name)
	if err != nil || link == nil {
		return err
	}
	if link.LinkInfo.InfoKind != "bridge" {
		return fmt.Errorf("interface %s is a %q, not a bridge; not deleting it", name, link.LinkInfo.InfoKind)
	}
	if _, err := runOK(ctx, "ip", "link", "del", name); err != nil {
		return fmt.Errorf("deleting bridge %s: %w", name, err)
	}
	return nil
}

// checkNoOverlappingRoute fails when a route on another interface overlaps subnet (the default route
// excepted: it is what the host uses for everything else).
func checkNoOverlappingRoute(ctx context.Context, bridge string, subnet netip.Prefix) error {
	out, err := runOK(ctx, "ip", "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	var routes []struct {
		Dst  string `json:"dst"`
		Dev  string `json:"dev"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return fmt.Errorf("parsing routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == "" || r.Dst == "default" || r.Dev == bridge || r.Dev == "lo" {
			continue
		}
		dst, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			if a, aerr := netip.ParseAddr(r.Dst); aerr == nil {
				dst = netip.PrefixFrom(a, 32)
			} else {
				continue
			}
		}
		if dst.Overlaps(subnet) {
			return fmt.Errorf("bridge %s: %s overlaps route %s on %s; VM addresses must only live on the bridge",
				bridge, subnet, r.Dst, r.Dev)
		}
	}
	return nil
}

// guardTable is the nftables table that drops any forwarded packet entering or leaving the bridge through
// another interface. The host never forwards (ip_forward stays as it is, no NAT), and the guard makes
// sure that stays true even where forwarding was already enabled for something else.
func guardTable(bridge string) string {
	return "lbosh_guard_" + strings.NewReplacer("-", "_", ".", "_").Replace(bridge)
}

func ensureForwardGuard(ctx context.Context, bridge string) error {
	table := guardTable(bridge)
	script := fmt.Sprintf(`table inet %[1]s {}
delete table inet %[1]s
table inet %[1]s {
	chain forward {
		type filter hook forward priority -10; policy accept;
		iifname "%[2]s" oifname != "%[2]s" drop
		oifname "%[2]s" iifname != "%[2]s" drop
	}
}
`, table, bridge)
	res, err := run(ctx, []string{"nft", "-f", "-"}, nil, strings.NewReader(script), 0)
	if err == nil && res.ExitCode == 0 {
		return nil
	}
	detail := strings.TrimSpace(string(res.Stderr))
	if err != nil {
		detail = err.Error()
	}
	fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if strings.TrimSpace(string(fwd)) == "0" {
		// Forwarding is off, so nothing can leave through the host anyway; the guard is belt and braces.
		return nil
	}
	return fmt.Errorf("bridge %s: ip_forward is on and the nftables forward guard could not be installed: %s", bridge, detail)
}

func removeForwardGuard(ctx context.Context, bridge string) {
	_, _ = run(ctx, []string{"nft", "delete", "table", "inet", guardTable(bridge)}, nil, nil, 0)
}

// vethName is the host end of a VM's veth pair, derived from the VM id so that Reap can find it again.
func vethName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "lbv" + hex.EncodeToString(sum[:])[:11]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// EnsureGateway makes the bridge carry a subnet's gateway (e.g. "10.244.128.1/17" for the original
// etcd-release cloud-config's `private` network) in addition to its own address, so that VMs of every subnet
// find their gateway on the one bridge. The subnet must lie inside a prefix the bridge already carries (its own
// address); nothing is forwarded or NATed. Idempotent.
func EnsureGateway(ctx context.Context, bridge string, gatewayCIDR netip.Prefix) error {
	link, err := linkShow(ctx, bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bridge, err)
	}
	if link == nil {
		return fmt.Errorf("bridge %s does not exist", bridge)
	}
	inside := false
	for _, a := range link.AddrInfo {
		if a.Family != "inet" {
			continue
		}
		if a.Local == gatewayCIDR.Addr().String() && a.PrefixLen == gatewayCIDR.Bits() {
			return nil
		}
		if p, err := netip.ParsePrefix(fmt.Sprintf("%s/%d", a.Local, a.PrefixLen)); err == nil &&
			p.Masked().Contains(gatewayCIDR.Addr()) && p.Bits() <= gatewayCIDR.Bits() {
			inside = true
		}
	}
	if !inside {
		return fmt.Errorf("bridge %s: gateway %s is outside every prefix the bridge carries", bridge, gatewayCIDR)
	}
	if _, err := runOK(ctx, "ip", "addr", "add", gatewayCIDR.String(), "dev", bridge); err != nil {
		// VMs of one subnet are created in parallel: another may have added it a moment ago.
		if CheckBridgeGateway(ctx, bridge, gatewayCIDR.Addr()) == nil {
			return nil
		}
		return fmt.Errorf("adding gateway %s to bridge %s: %w", gatewayCIDR, bridge, err)
	}
	return nil
}

// CheckBridgeGateway reports whether the bridge exists, is up and carries the gateway address (with any
// prefix: the bridge's own address serves a narrower subnet too).
func CheckBridgeGateway(ctx context.Context, bridge string, gateway netip.Addr) error {
	link, err := linkShow(ctx, bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bridge, err)
	}
	if link == nil {
		return fmt.Errorf("bridge %s does not exist", bridge)
	}
	if link.LinkInfo.InfoKind != "bridge" {
		return fmt.Errorf("interface %s is a %q, not a bridge", bridge, link.LinkInfo.InfoKind)
	}
	if !contains(link.Flags, "UP") {
		return fmt.Errorf("bridge %s is down", bridge)
	}
	for _, a := range link.AddrInfo {
		if a.Family == "inet" && a.Local == gateway.String() {
			return nil
		}
	}
	return fmt.Errorf("bridge %s does not carry the gateway %s", bridge, gateway)
}
