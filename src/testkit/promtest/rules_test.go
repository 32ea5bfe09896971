package promtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func repoFile(t *testing.T, rel string) (string, []byte) {
	root, err := RepoRoot()
	require.NoError(t, err)
	p := filepath.Join(root, rel)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return p, b
}

func promtool(t *testing.T, args ...string) (string, error) {
	out, err := exec.Command(Promtool, args...).CombinedOutput()
	return string(out), err
}

// TestAlertRules checks the shipped rules with the real promtool and runs their unit tests
// (manifests/prometheus/etcd-alerts.test.yml).
func TestAlertRules(t *testing.T) {
	rulesPath, _ := repoFile(t, RulesFile)
	out, err := promtool(t, "check", "rules", rulesPath)
	require.NoError(t, err, out)
	require.Contains(t, out, "SUCCESS")

	testsPath := strings.TrimSuffix(rulesPath, ".yml") + ".test.yml"
	out, err = promtool(t, "test", "rules", testsPath)
	require.NoError(t, err, out)
	require.Contains(t, out, "SUCCESS")
}

// TestEveryAlertIsTestedAndHasARunbook requires, for every alert of the shipped rules, a unit test in which it
// fires, one in which it explicitly does not, and a runbook line in README.md.
func TestEveryAlertIsTestedAndHasARunbook(t *testing.T) {
	_, rules := repoFile(t, RulesFile)
	_, tests := repoFile(t, strings.TrimSuffix(RulesFile, ".yml")+".test.yml")
	_, readme := repoFile(t, "README.md")
	alerts, err := Alerts(rules)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(alerts), 10)

	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	require.NoError(t, yaml.Unmarshal(tests, &f))
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	for _, a := range alerts {
		require.True(t, fires[a.Alert], "%s: no unit test in which it fires", a.Alert)
		require.True(t, silent[a.Alert], "%s: no unit test in which it stays silent", a.Alert)
		require.Regexp(t, regexp.MustCompile("(?m)^\\| `"+a.Alert+"` \\|"), string(readme), "%s: no runbook line in README.md", a.Alert)
	}
}

// TestPromtoolCatchesABrokenRule runs the unit tests against a copy of the rules with one expression inverted:
// they must fail, or they test nothing.
func TestPromtoolCatchesABrokenRule(t *testing.T) {
	_, rules := repoFile(t, RulesFile)
	_, tests := repoFile(t, strings.TrimSuffix(RulesFile, ".yml")+".test.yml")
	broken := strings.Replace(string(rules), "expr: etcd_server_has_leader{job=\"etcd\"} == 0", "expr: etcd_server_has_leader{job=\"etcd\"} == 1", 1)
	require.NotEqual(t, string(rules), broken)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etcd-alerts.yml"), []byte(broken), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etcd-alerts.test.yml"), tests, 0o644))
	out, err := promtool(t, "test", "rules", filepath.Join(dir, "etcd-alerts.test.yml"))
	require.Error(t, err, out)
	require.Contains(t, out, "EtcdNoLeader")
}

func TestShortenFor(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"one":        {"  - alert: A\n    expr: up == 0\n    for: 10m\n", "  - alert: A\n    expr: up == 0\n    for: 5s\n"},
		"several":    {"    for: 10m\n    for: 1h\n", "    for: 5s\n    for: 5s\n"},
		"none":       {"  - alert: A\n    expr: up == 0\n", "  - alert: A\n    expr: up == 0\n"},
		"expr words": {"    expr: foo  # wait for: 10m\n", "    expr: foo  # wait for: 10m\n"},
	} {
		t.Run(name, func(t *testing.T) { require.Equal(t, tc.want, string(ShortenFor([]byte(tc.in), "5s"))) })
	}
}
