// Package jobtemplates holds the tests of this release's job templates: every template of jobs/etcd (and the test
// helper and errand jobs) rendered with the real Ruby ERB renderer (package erb) for the sample manifests and ops
// files in manifests/ and for manifests shaped like the original CF etcd-release's (3-node-no-ssl,
// 3-node-with-ssl), checking that what etcd_ctl reads parses and validates into the expected members, that TLS
// material lands in the right files, that scripts are valid bash, and that BOSH's errors come out.
//
// It exists apart from package erb because it tests the release's jobs, not the renderer, and it needs the
// release-specific packages (config, pki, testhelper) that erb must not depend on.
//
// The manifest helpers (ops files, variable interpolation, instance contexts) live in manifest.go so that other
// tests can render a deployment the way the bosh CLI and a director would.
package jobtemplates
