package membership

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// ConflictFile is where `etcd_ctl start` records that two clusters of the deployment hold client writes, so that
// `status` and `wait-ready` (separate processes) report it. It lives in the run dir: a reboot clears it and the
// next start finds the conflict again if it still exists.
func ConflictFile(c *config.Config) string { return filepath.Join(c.Paths.RunDir, "conflict.txt") }

// WriteConflict records the conflict's description.
func WriteConflict(c *config.Config, text string) error {
	return atomicfile.Write(ConflictFile(c), []byte(text+"\n"), 0o644)
}

// ClearConflict removes the record once the start decision found no conflict.
func ClearConflict(c *config.Config) { _ = os.Remove(ConflictFile(c)) }

// ReadConflict returns the recorded conflict, or "" if there is none.
func ReadConflict(c *config.Config) (string, error) {
	b, err := os.ReadFile(ConflictFile(c))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", ConflictFile(c), err)
	}
	return strings.TrimSpace(string(b)), nil
}
