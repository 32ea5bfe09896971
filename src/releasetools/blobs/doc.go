// Package blobs makes the release's blobs: the Go toolchain (golang/<go version>.linux-<arch>.tar.gz, for the
// golang-1-linux package) and the Go module cache the release's Go packages build from (etcd_ctl/go-modules.tgz),
// and records them in config/blobs.yml the way the bosh CLI does.
//
// Why it exists: BOSH packages compile on a VM with no network, from files under src/ and blobs/ only, but this
// repository is one Go module whose go.mod and go.sum live at the repository root, outside src/. Instead of
// vendoring or splitting the module, the modules blob carries go.mod, go.sum and a module download cache holding
// exactly the modules the shipped binaries need (fetched from this machine's module cache, never the network);
// the packaging scripts lay out a module root from it and build with GOPROXY=off.
//
// Blobs are deterministic (sorted entries, fixed owner, modes and times, gzip without name or time) and cached: a
// blob whose inputs have not changed since it was made is not rebuilt (the input key is kept under
// .cache/release-blobs/).
package blobs
