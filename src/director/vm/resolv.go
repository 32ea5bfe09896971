package vm

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// netnsEtcDir is where `ip netns exec NS` looks for files to bind-mount over /etc: every file in
// /etc/netns/NS/ is bind-mounted on /etc/<name> in the private mount namespace of the command it runs.
const netnsEtcDir = "/etc/netns"

// hostResolvConf is the path a VM sees its own resolv.conf at.
const hostResolvConf = "/etc/resolv.conf"

// vmEtcDir is the host directory whose files `ip netns exec` bind-mounts over the VM's /etc.
func vmEtcDir(id string) string { return filepath.Join(netnsEtcDir, id) }

// resolvConf is the content of a VM's /etc/resolv.conf: a header naming the VM, then one nameserver line per
// entry in order. Without nameservers it holds only a harmless option (the resolver then asks 127.0.0.1 inside
// the VM's own network namespace); the host's resolv.conf is never copied.
func resolvConf(id string, dns []netip.Addr) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by the local director for VM %s from the dns list of its cloud-config subnet.\n", id)
	b.WriteString("# Bind-mounted over /etc/resolv.conf in this VM only: edit it in place; renaming a file over it fails (EBUSY).\n")
	if len(dns) == 0 {
		b.WriteString("# The subnet lists no dns servers.\n")
		b.WriteString("options ndots:1\n")
	}
	for _, a := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	return []byte(b.String())
}

// checkHostResolvConf makes sure the VM's resolv.conf can shadow the host's: `ip netns exec` bind-mounts it on
// /etc/resolv.conf, which only isolates the host when that is a regular file. A symlink (systemd-resolved,
// resolvconf) would get the mount on its target, and a job replacing /etc/resolv.conf by a rename inside the VM
// would replace the host's link; a missing file would make a write inside the VM create the host's file.
func checkHostResolvConf() error {
	st, err := os.Lstat(hostResolvConf)
	if err != nil {
		return fmt.Errorf("host %s: %w (a VM's own resolv.conf is bind-mounted over it, so it must be a regular file)", hostResolvConf, err)
	}
	if !st.Mode().IsRegular() {
		what := st.Mode().Type().String()
		if st.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(hostResolvConf)
			what = "a symlink to " + target
		}
		return fmt.Errorf("host %s is %s, not a regular file: a VM's own resolv.conf is bind-mounted over it, "+
			"and only a regular file keeps the VM from changing the host's (replace the link by a copy of its target)",
			hostResolvConf, what)
	}
	return nil
}

// writeResolvConf writes /etc/netns/<id>/resolv.conf (0644) for `ip netns exec` to mount over the VM's
// /etc/resolv.conf.
func writeResolvConf(id string, dns []netip.Addr) error {
	if err := os.MkdirAll(netnsEtcDir, 0o755); err != nil {
		return err
	}
	dir := vmEtcDir(id)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	// No temporary file: `ip netns exec` would mount every file in the directory over /etc.
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, resolvConf(id, dns), 0o644); err != nil {
		return err
	}
	return os.Chmod(p, 0o644) // whatever the umask
}

// removeVMEtcDir removes /etc/netns/<id>/ if it exists; nothing else.
func removeVMEtcDir(id string) error {
	if !vmIDRE.MatchString(id) { // never "", "." or ".."; ids of our VMs always match
		return nil
	}
	dir := vmEtcDir(id)
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory; left alone", dir)
	}
	return os.RemoveAll(dir)
}
