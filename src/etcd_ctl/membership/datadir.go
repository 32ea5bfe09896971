package membership

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"
)

// Identity is what etcd_ctl records next to etcd's data once a member has started, so that a later start can
// tell whether the data still belongs to the live cluster.
type Identity struct {
	ClusterID string `json:"cluster_id"`
	MemberID  string `json:"member_id"`
	Name      string `json:"name"`
	PeerURL   string `json:"peer_url"`
}

const identityFile = "etcd_ctl-member.json"

// HasData reports whether dataDir holds an etcd member (a WAL directory with files).
func HasData(dataDir string) (bool, error) {
	entries, err := os.ReadDir(filepath.Join(dataDir, "member", "wal"))
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading data dir %s: %w", dataDir, err)
	}
	return len(entries) > 0, nil
}

// ReadIdentity returns the recorded identity, or nil if none was recorded.
func ReadIdentity(dataDir string) (*Identity, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, identityFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading member identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dataDir, identityFile), err)
	}
	return &id, nil
}

// WriteIdentity records id atomically.
func WriteIdentity(dataDir string, id Identity) error {
	b, _ := json.MarshalIndent(id, "", "  ")
	if err := atomicfile.Write(filepath.Join(dataDir, identityFile), b, 0o600); err != nil {
		return fmt.Errorf("writing member identity: %w", err)
	}
	return nil
}

// MoveAside renames dataDir to a sibling "<dataDir>.moved-aside.<UTC time>.<why>" on the same disk and creates
// an empty dataDir in its place. The data is kept for the operator; nothing is deleted.
func MoveAside(dataDir, why string, now time.Time) (string, error) {
	slug := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(why))
	dest := fmt.Sprintf("%s.moved-aside.%s.%s", filepath.Clean(dataDir), now.UTC().Format("20060102T150405Z"), slug)
	if err := os.Rename(dataDir, dest); err != nil {
		return "", fmt.Errorf("moving data dir %s aside: %w", dataDir, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return dest, fmt.Errorf("recreating data dir %s: %w", dataDir, err)
	}
	return dest, nil
}
