package acceptance_test

import (
	. "github.com/onsi/ginkgo/v2"
)

// A group without a persistent disk: BOSH_JOB_NEXT_STATE says {"persistent_disk":0} on every update, which
// must not read as "this instance is being deleted". Drain decides from pre-stop's BOSH_INSTANCE_NEXT_STATE
// (keep), so a rolling deploy keeps every member ID and fails no write (the same checks as scenario 3).
var _ = Describe("etcd-release without a persistent disk", func() {
	It("rolls a property change over a disk-less group under load keeping every member ID", Label("diskless", "tls"), func(ctx SpecContext) {
		s := newScenario("diskless", true)
		s.manifest.NoPersistentDisk = true
		rollingScenario(ctx, s)
	})
})
