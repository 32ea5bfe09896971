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

// ReadConflict returns the recorded conflict, or "" if there is none. A record older than the running start's
// pidfile is from an earlier start that has not been repeated yet: the new start decides again (and records the
// conflict again if it still exists), so the old record says nothing about it. That keeps `wait-ready`, which
// fails at once on a conflict, from failing on a conflict the operator has just resolved.
func ReadConflict(c *config.Config) (string, error) {
	path := ConflictFile(c)
	st, err := os.Stat(path)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if pid, perr := os.Stat(c.Paths.PidFile()); perr == nil && pid.ModTime().After(st.ModTime()) {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}
