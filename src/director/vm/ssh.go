package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"go.uber.org/zap"
)

// `bosh ssh` on a namespace VM. Each VM runs Debian's own sshd inside its namespaces, listening on the VM's
// address only, with a host key of its own. The VMs share the host's root file system, so everything a login
// needs that lives in /etc — passwd, shadow, group, the sudoers drop-ins, the ssh configuration and host key —
// is a file of the VM's data dir (bosh/etc, the ephemeral disk) bind-mounted over the /etc entry inside the
// VM's private mount namespace: users made for one VM exist only there, never on the host or another VM. The
// bind mounts are made the first time an ssh session is set up on a VM (and again after a reboot, whose new
// mount namespace lacks them). The director edits the VM's files from the host in place (same inode, so the
// bind mounts see it); a rename over a bind-mounted file would fail with EBUSY inside the VM, which is why no
// useradd runs there.

// sshBinds are the /etc entries each VM gets its own copy of, and where in the data dir the copy lives.
var sshBinds = []struct{ etc, own string }{
	{"/etc/passwd", "bosh/etc/passwd"}, {"/etc/shadow", "bosh/etc/shadow"}, {"/etc/group", "bosh/etc/group"},
	{"/etc/gshadow", "bosh/etc/gshadow"}, {"/etc/sudoers.d", "bosh/etc/sudoers.d"}, {"/etc/ssh", "bosh/etc/ssh"},
	{"/etc/hosts", "bosh/etc/hosts"},
}

// sshdConfig is the VM's sshd configuration: the VM's address only, key logins of bosh_sshers only.
func sshdConfig(addr string) string {
	return fmt.Sprintf(`# Written by the local director: the sshd of this VM only.
ListenAddress %s
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /var/vcap/data/sys/run/sshd.pid
AllowGroups bosh_sshers
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
PrintMotd no
Subsystem sftp /usr/lib/openssh/sftp-server
`, addr)
}

// sshSudoers lets bosh_sudoers run anything as root without a password, as the stemcell does.
const sshSudoers = "%bosh_sudoers ALL=(ALL) NOPASSWD: ALL\n"

// mountedAt reports whether a mountinfo text has a mount at target (field 5).
func mountedAt(mountinfo, target string) bool {
	for _, l := range strings.Split(mountinfo, "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == target {
			return true
		}
	}
	return false
}

var sshMu sync.Mutex // one ssh change at a time: the user files are read, changed and written back

// prepareSSHFiles creates the VM's own copies of the /etc entries (once: the host's user files as they are,
// the sudoers rule, the sshd configuration and a new ed25519 host key) and returns the host public key.
func (v *VM) prepareSSHFiles(ctx context.Context) (string, error) {
	own := func(rel string) string { return filepath.Join(v.spec.DataDir, rel) }
	for _, f := range []string{"passwd", "shadow", "group", "gshadow"} {
		if _, err := os.Stat(own("bosh/etc/" + f)); err == nil {
			continue
		}
		b, err := os.ReadFile("/etc/" + f)
		if os.IsNotExist(err) && f == "gshadow" {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("ssh on VM %s: %w", v.spec.ID, err)
		}
		// The copy keeps the host file's mode and owner: passwd and group readable by all, shadow by its group.
		st, err := os.Stat("/etc/" + f)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(own("bosh/etc/"+f), b, st.Mode().Perm()); err != nil {
			return "", err
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			if err := os.Chown(own("bosh/etc/"+f), int(sys.Uid), int(sys.Gid)); err != nil {
				return "", err
			}
		}
		if err := os.Chmod(own("bosh/etc/"+f), st.Mode().Perm()); err != nil {
			return "", err
		}
	}
	for _, d := range []string{"bosh/etc/sudoers.d", "bosh/etc/ssh", "bosh_ssh"} {
		if err := os.MkdirAll(own(d), 0o755); err != nil {
			return "", err
		}
	}
	// The VM's own hostname (its id) resolves, as on a stemcell: sudo looks it up on every call.
	hosts := fmt.Sprintf("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n%s %s\n", v.IP(), v.spec.ID)
	if err := os.WriteFile(own("bosh/etc/hosts"), []byte(hosts), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(own("bosh/etc/sudoers.d/bosh_sudoers"), []byte(sshSudoers), 0o440); err != nil {
		return "", err
	}
	if err := os.WriteFile(own("bosh/etc/ssh/sshd_config"), []byte(sshdConfig(v.IP().String())), 0o644); err != nil {
		return "", err
	}
	key := own("bosh/etc/ssh/ssh_host_ed25519_key")
	if _, err := os.Stat(key); os.IsNotExist(err) {
		if _, err := runOK(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", v.spec.ID, "-f", key); err != nil {
			return "", fmt.Errorf("ssh on VM %s: generating its host key (install openssh-client): %w", v.spec.ID, err)
		}
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		return "", fmt.Errorf("ssh on VM %s: malformed host key %s.pub", v.spec.ID, key)
	}
	// A login walks /var/vcap to the user's home (sshd's StrictModes checks each directory on the way).
	if err := os.Chmod(v.spec.DataDir, 0o755); err != nil {
		return "", err
	}
	return f[0] + " " + f[1], nil
}

// EnsureSSHD makes the VM ready for ssh logins — its own /etc entries bound, its sshd running — and returns its
// host public key ("ssh-ed25519 AAAA…").
func (v *VM) EnsureSSHD(ctx context.Context) (string, error) {
	sshMu.Lock()
	defer sshMu.Unlock()
	hostKey, err := v.prepareSSHFiles(ctx)
	if err != nil {
		return "", err
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", v.initPID))
	if err != nil {
		return "", fmt.Errorf("ssh on VM %s: %w", v.spec.ID, err)
	}
	for _, b := range sshBinds {
		if mountedAt(string(mounts), b.etc) {
			continue
		}
		if _, err := os.Stat(b.etc); os.IsNotExist(err) {
			continue // e.g. no sudo installed: no /etc/sudoers.d to give the VM its own of
		}
		if _, err := os.Stat(filepath.Join(v.spec.DataDir, b.own)); os.IsNotExist(err) {
			continue
		}
		if err := v.execOK(ctx, "mount", "--bind", filepath.Join(VcapRoot, b.own), b.etc); err != nil {
			return "", fmt.Errorf("ssh on VM %s: binding its own %s: %w", v.spec.ID, b.etc, err)
		}
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		return "", err
	}
	if v.execOK(ctx, "sh", "-c", "kill -0 $(cat /var/vcap/data/sys/run/sshd.pid)") == nil {
		return hostKey, nil
	}
	if err := v.execOK(ctx, "/usr/sbin/sshd", "-f", "/etc/ssh/sshd_config"); err != nil {
		return "", fmt.Errorf("ssh on VM %s: starting sshd (install openssh-server): %w", v.spec.ID, err)
	}
	v.log.Info("sshd started", zap.String("address", v.IP().String()), zap.String("reason", "first bosh ssh session on this VM"))
	return hostKey, nil
}

func (v *VM) execOK(ctx context.Context, argv ...string) error {
	_, stderr, code, err := v.Exec(ctx, argv, nil, nil)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s: exit %d: %s", strings.Join(argv, " "), code, strings.TrimSpace(string(stderr)))
	}
	return nil
}

func (v *VM) readUserFiles() (userFiles, error) {
	var f userFiles
	for _, x := range []struct {
		name string
		dst  *string
	}{{"passwd", &f.passwd}, {"shadow", &f.shadow}, {"group", &f.group}} {
		b, err := os.ReadFile(filepath.Join(v.spec.DataDir, "bosh/etc", x.name))
		if err != nil {
			return f, err
		}
		*x.dst = string(b)
	}
	return f, nil
}

// writeUserFiles writes in place (truncate and write, the same inode) so the VM's bind mounts see the change.
func (v *VM) writeUserFiles(f userFiles) error {
	for name, content := range map[string]string{"passwd": f.passwd, "shadow": f.shadow, "group": f.group} {
		p := filepath.Join(v.spec.DataDir, "bosh/etc", name)
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		_, err = fh.WriteString(content)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing the VM's %s: %w", name, err)
		}
	}
	return nil
}

// AddSSHUser creates a `bosh ssh` user on this VM only, with the public key as its one authorized key.
func (v *VM) AddSSHUser(ctx context.Context, user, publicKey string) error {
	publicKey = strings.TrimSpace(publicKey) // the bosh CLI sends the key with its trailing newline
	if strings.ContainsAny(publicKey, "\n\r") || !strings.HasPrefix(publicKey, "ssh-") && !strings.HasPrefix(publicKey, "ecdsa-") {
		return fmt.Errorf("ssh user %s: the public key must be one line in OpenSSH format", user)
	}
	sshMu.Lock()
	defer sshMu.Unlock()
	f, err := v.readUserFiles()
	if err != nil {
		return fmt.Errorf("ssh on VM %s: %w (set up ssh first)", v.spec.ID, err)
	}
	f, uid, gid, err := addSSHUser(f, user)
	if err != nil {
		return err
	}
	home := filepath.Join(v.spec.DataDir, "bosh_ssh", user)
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "authorized_keys"), []byte(publicKey+"\n"), 0o600); err != nil {
		return err
	}
	for _, p := range []string{home, filepath.Join(home, ".ssh"), filepath.Join(home, ".ssh", "authorized_keys")} {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Chmod(home, 0o700); err != nil {
		return err
	}
	return v.writeUserFiles(f)
}

// RemoveSSHUsers removes this VM's `bosh ssh` users whose name matches re: their processes are killed, their
// entries and home directories removed. It returns the names removed.
func (v *VM) RemoveSSHUsers(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	sshMu.Lock()
	defer sshMu.Unlock()
	f, err := v.readUserFiles()
	if os.IsNotExist(err) {
		return nil, nil // ssh was never set up on this VM
	}
	if err != nil {
		return nil, err
	}
	uids := map[string]string{}
	for _, l := range strings.Split(f.passwd, "\n") {
		if p := strings.Split(l, ":"); len(p) > 2 {
			uids[p[0]] = p[2]
		}
	}
	nf, names := removeSSHUsers(f, re)
	for _, n := range names {
		if _, err := strconv.Atoi(uids[n]); err == nil {
			_, _, _, _ = v.Exec(ctx, []string{"pkill", "-KILL", "-U", uids[n]}, nil, nil)
		}
	}
	if err := v.writeUserFiles(nf); err != nil {
		return nil, err
	}
	for _, n := range names {
		_ = os.RemoveAll(filepath.Join(v.spec.DataDir, "bosh_ssh", n))
	}
	return names, nil
}
