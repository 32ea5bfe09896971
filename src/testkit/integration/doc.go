// Package integration holds tests that run real etcd_ctl processes (each with its own loopback address, data,
// run and log dirs) against each other: bootstrap, join, restart, drain, wipe-and-rejoin, TLS. The harness in
// harness_test.go builds etcd_ctl once per test binary.
package integration
