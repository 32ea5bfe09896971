// Package vm runs the local director's "VMs": each BOSH instance gets a small Linux machine made of
// namespaces on this host, with its own address, its own /var/vcap, its own process tree and a real monit.
//
// # Why namespaces and not containers or real VMs
//
// The director has to behave like BOSH for the things etcd-release cares about: each instance has a
// stable IP that peers dial, a /var/vcap layout with an ephemeral and a persistent disk, jobs supervised by
// monit from their monit files, hook scripts run by root with the agent's environment, and a persistent
// disk that outlives the VM. Network, mount, PID and UTS namespaces give exactly that, start in well under
// a second, need nothing but iproute2, util-linux and monit, and leave the host's root file system (and
// so the compiled packages and the test binaries) visible inside the VM without copying.
//
// # Anatomy of a VM
//
//	host                                   VM (namespace set)
//	bridge (EnsureBridge, e.g. lbosh0       netns <vm cid>: eth0 = Spec.Address, lo up,
//	  10.244.0.1/16) ── veth lbv<hash> ──     default route via Spec.Gateway (the bridge)
//	Spec.DataDir  ─── bind mount ───────►   /var/vcap            (ephemeral disk)
//	Spec.DiskDir  ─── bind mount ───────►   /var/vcap/store      (persistent disk, optional)
//	                                        /var/vcap/data/sys/run  tmpfs (16m), as on a stemcell
//	                                        PID 1: the VM init  ──► monit -I (httpd 127.0.0.1:2822)
//
// Create runs `ip netns add`, creates the veth pair (host end on the bridge, VM end created directly in
// the namespace as eth0), then starts
//
//	ip netns exec <cid> unshare --mount --pid --uts --fork --mount-proc --propagation private <self>
//
// where <self> is the running binary, re-executed as the VM init: the package's init function notices
// the LOCALBOSH_VM_INIT environment variable and runs the init instead of the program's main, so the
// director (or a test binary) needs no extra subcommand or helper file. The init is PID 1 of the VM: it
// bind-mounts the data dir on /var/vcap and the disk dir on /var/vcap/store in its private mount
// namespace (the host never sees those mounts), mounts the sys/run tmpfs, sets the hostname to the cid,
// runs monit in the foreground, restarts monit if it dies (as runsv does on a stemcell) and reaps
// orphans. PID 1 of a PID namespace ignores signals it does not handle, so a VM is ended by SIGKILL to its
// init, which makes the kernel kill every process of the VM at once.
//
// The /var/vcap layout follows the agent's (cloudfoundry/bosh-agent settings/directories/directories_provider.go,
// platform/linux_platform.go): bosh/{bin,etc,log}, monit/{job,monit.user},
// jobs, packages, data/{jobs,packages,compile,sys,tmp,blobs}, sys -> data/sys, store, instance. The
// layout is created on the host side before boot, so the director can fill jobs and packages through
// VM.HostPath without entering the VM. Symlinks it creates inside the data dir should be relative
// (jobs/etcd -> ../data/jobs/etcd/<digest>) so that they resolve both inside the VM and on the host.
// /var/vcap/bosh/bin/monit is a wrapper that points the monit CLI at the VM's control file, for scripts
// (such as a test helper job) that run `monit stop etcd` inside the VM.
//
// # /etc/resolv.conf
//
// Every VM has its own resolv.conf: before starting the init, Create writes /etc/netns/<cid>/resolv.conf
// (a header naming the VM, then `nameserver` lines from Spec.DNS, the cloud-config subnet's dns list; with no
// entries only an `options` line, never a copy of the host's), and `ip netns exec` bind-mounts it over
// /etc/resolv.conf in the VM's mount namespace. Job authors: edit it in place (`echo … > /etc/resolv.conf`,
// `>>`, or build the new content elsewhere and `cat new > /etc/resolv.conf`); the write lands in the VM's
// file and the host's resolv.conf stays untouched. Replacing it by a rename (`sed -i`, `mv`, editors that
// write a temporary file) fails with EBUSY, because the file is a mount point. Create refuses to run when
// the host's /etc/resolv.conf is not a regular file (a symlink would get the mount on its target, and a
// rename in a VM would replace the host's link). Attach leaves the file alone; teardown (Destroy, Reap, a
// failed Create) removes /etc/netns/<cid>/.
//
// # monit
//
// Monit listens on 127.0.0.1:2822 inside the VM's network namespace only, with basic auth from
// /var/vcap/monit/monit.user (user vcap, a random alphanumeric password; "secret" and other monit
// keywords cannot appear). The Monit client reaches it the way the BOSH agent does, over HTTP, from a
// socket created inside the VM's namespace (an OS thread joins the namespace just for socket creation).
// Actions are POSTed with monit's double-submit CSRF token. Status comes from `_status2?format=xml` and is
// mapped onto BOSH process states and job_state (as the agent's jobsupervisor/monit_job_supervisor.go does),
// counting only group vcap.
//
// Services start only when asked: the control file says `set onreboot nostart`, so services that appear
// through Reload stay unmonitored until Start/StartAll; a new VM whose data dir already holds job monit
// files boots with a control file without the job includes and adds them by a reload, because monit
// would start everything at its very first start. A monit restarted by the init restores every service's
// monitoring state from its state file; the init aligns the boot time recorded in that file first,
// because monit's own computation flips by a second and would otherwise mistake a restart for a reboot.
// Reload sends SIGHUP (after `monit -t` inside the VM) and waits for a new incarnation.
//
// # Network safety
//
// VM addresses exist only inside the VMs' namespaces and on the bridge. EnsureBridge refuses a subnet that
// overlaps a route on another interface, never enables IP forwarding or NAT, and installs an nftables
// table (inet lbosh_guard_<bridge>) that drops anything forwarded between the bridge and any other
// interface, in case forwarding was already on for something else. Traffic therefore only flows between
// VMs and between VMs and the host.
//
// # Lifecycle and recovery
//
// Destroy stops all monit services (bounded), SIGKILLs the init and anything else in the network
// namespace, removes /etc/netns/<cid>/, deletes the veth and the namespace, and keeps both directories: the
// director decides when disks go. VMs survive the director process; a restarted director can Attach to a
// running VM (its credentials are in the data dir) or Reap every namespace with its cid prefix.
//
// Exec enters the VM with nsenter (network, mount, PID, UTS) and runs a command with the hook
// environment (PATH=/usr/sbin:/usr/bin:/sbin:/bin plus the caller's variables); a cancelled context sends
// SIGTERM to the command's process group and SIGKILL after DefaultStopGrace. All programs the package
// starts go through one child-process type (proc.go).
//
// Host requirements: root, the Debian packages monit, iproute2, iptables, nftables (util-linux's unshare
// and nsenter are part of the base system), and /etc/resolv.conf as a regular file, not a symlink.
package vm
