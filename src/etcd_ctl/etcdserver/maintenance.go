package etcdserver

import (
	"fmt"
	"sort"
	"strings"

	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/features"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// corruptionGates are etcd 3.6's data-integrity feature gates (server/features/etcd_features.go): a restarting
// member compares its hash with its peers' before serving, and the leader compares followers' hashes after
// every compaction.
var corruptionGates = []featuregate.Feature{features.InitialCorruptCheck, features.CompactHashCheck}

// setMaintenance sets automatic compaction and the corruption-check feature gates from the properties.
func setMaintenance(cfg *embed.Config, e config.Properties) error {
	cfg.AutoCompactionMode = e.AutoCompactionMode
	cfg.AutoCompactionRetention = e.AutoCompactionRetention
	if !e.EnableCorruptionChecks {
		return nil
	}
	gates := map[string]bool{}
	for _, g := range corruptionGates {
		gates[string(g)] = true
	}
	mg, ok := cfg.ServerFeatureGate.(featuregate.MutableFeatureGate)
	if !ok {
		return fmt.Errorf("etcd.enable_corruption_checks: etcd's feature gate cannot be changed")
	}
	if err := mg.SetFromMap(gates); err != nil {
		return fmt.Errorf("etcd.enable_corruption_checks: %w", err)
	}
	return nil
}

// enabledGates lists the corruption-check gates that are on, as --feature-gates renders them.
func enabledGates(cfg *embed.Config) string {
	var on []string
	for _, g := range corruptionGates {
		if cfg.ServerFeatureGate.Enabled(g) {
			on = append(on, string(g)+"=true")
		}
	}
	sort.Strings(on)
	return strings.Join(on, ",")
}
