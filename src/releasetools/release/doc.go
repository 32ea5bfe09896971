// Package release builds and reads BOSH release tarballs.
//
// The local director accepts the same release tarballs a real BOSH director does, and this repository must be
// deployable as a release without the bosh CLI. So the package does both halves: Build turns a release source tree
// (jobs/, packages/, src/, blobs/, config/) into a dev release tarball with the real layout (release.MF, jobs/*.tgz
// with job.MF + monit + templates, packages/*.tgz with packaging + files), deterministically, so the same tree
// always gives the same bytes; Read opens a release tarball made by Build or by `bosh create-release --tarball`,
// checks every digest (bare SHA-1 or sha256:) and every job's monit file and templates, and exposes the parsed job
// specs and the packages in dependency order.
package release
