package acceptance_test

import (
	"context"
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/acceptance-tests/cluster"
	"github.com/etcd-release/etcd-release/acceptance-tests/config"
)

var _ = Describe("etcd-release with etcd authentication", func() {
	// etcd.auth.* on a TLS deployment: a password user limited to /app/, then the rolling deploy and the wipe
	// scenarios under load. The consumer uses etcd.client_cert, whose common name is etcd_ctl's root user.
	It("keeps a user to its prefix and rolls and rejoins under load with authentication on", Label("auth", "tls"), func(ctx SpecContext) {
		s := newScenario("auth", true)
		s.manifest.EtcdProperties["auth"] = map[string]any{
			"enabled":       true,
			"root_password": "acceptance-root",
			"roles":         []any{map[string]any{"name": "app", "permissions": []any{map[string]any{"prefix": "/app/", "access": "readwrite"}}}},
			"users":         []any{map[string]any{"name": "app", "password": "acceptance-app", "roles": []any{"app"}}},
		}
		rollingScenario(ctx, s)

		By("authentication is on, and the password user app reaches /app/ only")
		Eventually(ctx, func() (bool, error) {
			st, err := s.cli.AuthStatus(ctx)
			if err != nil {
				return false, err
			}
			return st.Enabled, nil
		}).WithTimeout(config.Seconds(cfg.Timeouts.ConvergeInSeconds)).WithPolling(time.Second).Should(BeTrue())
		app, err := clientv3.New(clientv3.Config{Endpoints: cluster.Endpoints(ipsOf(s.instances(ctx)), s.tls), DialTimeout: 5 * time.Second,
			TLS: s.clientTLS.Config(), Username: "app", Password: "acceptance-app"})
		Expect(err).NotTo(HaveOccurred())
		defer app.Close()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = app.Put(pctx, "/app/k", "v")
		Expect(err).NotTo(HaveOccurred())
		_, err = app.Put(pctx, "/elsewhere", "v")
		Expect(errors.Is(err, rpctypes.ErrPermissionDenied)).To(BeTrue(), "a put outside /app/: %v", err)

		wipeScenario(ctx, s)
	})
})
