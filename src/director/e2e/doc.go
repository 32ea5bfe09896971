// Package e2e holds the local director's end-to-end tests: a real director (HTTPS API, task runner, deployer)
// in the test process, driven only through the director API by src/director/client, deploying a tiny release
// built from testdata/release onto real namespace VMs on a bridge and subnet of the test's own. The release
// records every hook (drain arguments and environment, pre-start, start, post-start, stop) into a host
// directory, so the tests assert BOSH's lifecycle order, drain contract, link content, persistent disk survival,
// scale-down, errands and failure messages as an operator would observe them.
//
// The tests need root (namespaces, veth pairs, a bridge) plus monit and ruby, and fail — not skip — without them.
package e2e
