// Package deployer is the local director's deploy engine: it turns a deployment manifest, the cloud config and
// the uploaded releases and stemcells into running instances on namespace VMs (src/director/vm), following the
// BOSH director's semantics closely enough that a release that deploys here deploys on BOSH, and the other way
// round. The director files named below live in cloudfoundry/bosh under src/bosh-director/lib/bosh/director/,
// the agent's in cloudfoundry/bosh-agent.
//
// # Why it exists
//
// etcd-release is exercised through `bosh deploy`, monit, drain and errands. No BOSH director runs on a
// development machine, so this package reproduces the parts of a director that decide what a job sees: instance
// identity and placement, IPs, links, template rendering (real Ruby ERB, src/releasetools/erb), package compilation, and the
// exact per-instance order of hooks around monit. Anything a job can observe follows BOSH; what only a cloud
// would do (real VMs, disks, a blobstore, an agent) is replaced by host directories and namespaces.
//
// # A deploy (the stages of jobs/update_deployment.rb and deployment_plan/stages/*)
//
//  1. Preparing deployment: parse the manifest (src/director/manifest), resolve releases and stemcells
//     (`latest` = highest version), place instances (placement_planner/*: stable uuid, lowest free index, AZ balancing that
//     keeps disk holders, sticky bootstrap), reserve IPs (ip_provider/*: static_ips must be in a subnet's static list;
//     dynamic = lowest free address that is not the gateway, reserved, static or held by any deployment),
//     resolve links (links/*: implicit by type, explicit by type and name, optional, blocked with the string "nil",
//     manual links; self-links need nothing special) and render every template of every instance, gathering
//     all errors into BOSH's nested message. Nothing has touched a VM yet; the deployment record (manifest and
//     planned instances, which reserve the IPs) is saved only now.
//  2. Compiling packages: every package the jobs name, with its dependencies, in dependency order, up to
//     CompileWorkers at a time. Compiled packages are cached under <state>/compiled_packages by package
//     fingerprint and dependency key (JSON of the transitive dependencies' names and versions).
//  3. Deleting unneeded instances (scale-down, removed groups): pre-stop, drain `job_shutdown hash_unchanged`
//     with BOSH_JOB_NEXT_STATE {"persistent_disk":0}, monit stop, post-stop, delete the VM and orphan the disk.
//  4. Creating missing vms for every service instance that should have one, in parallel.
//  5. Updating instances, group by group in manifest order (consecutive `serial: false` groups together),
//     AZ by AZ (the bootstrap instance's AZ first), canaries in the first AZ, then a sliding window of
//     max_in_flight; only instances with changes count. Per instance: pre-stop, drain (update drain
//     `job_changed hash_changed|hash_unchanged <changed packages>`, or `job_shutdown hash_unchanged` for stop,
//     detach, recreate and disk changes; dynamic drain honoured), monit stop, post-stop, new VM if needed,
//     apply (jobs and packages into /var/vcap, monit files /var/vcap/monit/job/NNNN_<job>.monitrc, reload),
//     pre-start, monit start, wait for running within the canary/update watch time, post-start. Hooks log to
//     /var/vcap/sys/log/<job>/<hook>.std{out,err}.log. A failure stops the group: nothing new starts, the
//     instance stays dirty and is updated again by the next deploy; the task error names the instance.
//  6. post-deploy on every started instance if anything changed.
//
// State changes (start, stop, stop --hard = detached, restart, recreate) are deploys of the saved manifest with
// per-instance overrides, as the CLI's converging PUT is on BOSH. Errands run bin/run on service instances that
// have the job, or on a fresh VM of a `lifecycle: errand` group that is created, updated, used and deleted
// (disks kept). A restarted director re-attaches the running VMs (Recover); a VM it cannot attach is treated
// like an unresponsive agent and replaced by the next deploy.
//
// The rules behind placement (placement.go) and update ordering (order.go) are pure functions of the planned and
// existing instances, table-tested; the methods around them only run what they decide. So are the operator's
// day-2 rules: which orphaned disks the retention deletes and whether a disk may be attached (disks.go), what
// `bosh cck` finds and which resolution applies (cck.go), the event action of an instance update (events.go),
// which log directories a `bosh logs` tarball holds (logs.go) and whether the cloud config's subnets fit the
// bridge (networks.go).
//
// Day 2 (the director's api/controllers and jobs of the same names): orphaned disks (kept DefaultOrphanRetention,
// re-attachable to a stopped instance), the event log, `bosh cck` (missing VM, unresponsive agent = monit does
// not answer, missing disk), `bosh logs` (tarballs served once from <state>/blobs) and `bosh ssh` (ssh.go; the VM
// side is src/director/vm/ssh.go).
//
// # Where it differs from BOSH, and why
//
//   - Compilation runs on the host in a scratch directory (no compilation VM): BOSH_COMPILE_TARGET and
//     BOSH_INSTALL_TARGET are scratch paths, and BOSH_PACKAGES_DIR (which only the CLI's create-env sets) points
//     at the compiled dependencies, so packaging scripts must use $BOSH_INSTALL_TARGET / $BOSH_PACKAGES_DIR
//     rather than hard-coding /var/vcap/packages for install paths, as this repository's scripts do. It is fast,
//     needs no IP, and the VMs see the host's root file system anyway. The cache key leaves out the stemcell.
//   - Package and job files are hard links into the VM's data dir; rendered files are root-owned (no vcap
//     group on the host) with BOSH's modes (bin/ 0750, others 0640, directories 0750).
//   - Persistent disks are host directories (<state>/disks/<cid>) bind-mounted at /var/vcap/store when the VM
//     boots. A disk appearing or disappearing therefore recreates the VM; a size change is a restart. Disks of
//     deleted instances are orphaned as on BOSH; `bosh attach-disk` deletes a stopped instance's VM so that
//     `bosh start` boots one with the disk (BOSH attaches it to the stopped VM).
//   - One network per instance group (each VM has one interface); manual networks only; every subnet of every
//     network lies inside the director's bridge subnet, keeps its own range and gateway (the bridge carries every
//     gateway), and VMs reach other subnets directly on the bridge (an on-link route for the bridge's prefix).
//   - Vitals: load, CPU and swap are the host's (the VMs share its kernel). `bosh logs` serves job and agent logs,
//     not system logs (the VMs share the host's /var/log). cck's reboot_vm kills every process of the VM and boots
//     it again with the same id, data and disk; both recreate resolutions wait for the processes. Link and spec addresses are IPs (no bosh-dns); link.address
//     is the bosh-dns query name BOSH would give, which does not resolve here.
//   - Not supported: variables/config server (interpolate on the client), addons, runtime configs,
//     cross-deployment links, custom_provider_definitions, persistent_disks (plural), migrated_from,
//     vm_strategy create-swap-delete, task cancellation, when-changed errands, errands on stopped instances.
//   - Obsolete instances of every group are deleted in one stage before VMs are created, not group by group just
//     before each group's canaries.
//   - The wait for running polls job_state at least every MinPollInterval (default 1 s as BOSH; tests use less).
//   - Before `monit stop` the director monitors again the services drain unmonitored: monit 5.33 ignores stop for
//     an unmonitored service (a stemcell's monit runs the stop program), which would leave old processes running.
package deployer
