// Package testhelper is the etcd-test-helper job's HTTP API: what the acceptance suite needs to do on an etcd VM
// (monit stop/start/restart of a job, wipe a job's store directory, cut the VM off from peers and heal it, read
// the member's status), without ssh and without director-specific back doors, so the suite runs unchanged against
// the local director or a real BOSH director.
//
// Every request except GET /healthz needs HTTP basic auth (or a bearer token) from the job's properties. Every
// path under /var/vcap is taken relative to a configurable root so tests run the real binary against a temporary
// directory. Partitions are iptables rules in a chain of their own (ETCD-TEST-HELPER), hooked into INPUT and
// OUTPUT; healing flushes that chain, so no other rule of the VM is ever touched.
package testhelper
