package membership

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

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
	dest := fmt.Sprintf("%s.moved-aside.%s.%s", filepath.Clean(dataDir), now.UTC().Format(movedAsideTime), slug)
	// Two moves within one second must not meet: a rename onto an existing empty directory would succeed.
	for n := 2; ; n++ {
		if _, err := os.Lstat(dest); os.IsNotExist(err) {
			break
		}
		dest = fmt.Sprintf("%s.moved-aside.%s.%s-%d", filepath.Clean(dataDir), now.UTC().Format(movedAsideTime), slug, n)
	}
	if err := os.Rename(dataDir, dest); err != nil {
		return "", fmt.Errorf("moving data dir %s aside: %w", dataDir, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return dest, fmt.Errorf("recreating data dir %s: %w", dataDir, err)
	}
	return dest, nil
}

// movedAsideTime is the layout of the time in a moved-aside copy's name.
const movedAsideTime = "20060102T150405Z"

// MovedAsideCopy is one "<dataDir>.moved-aside.<time>.<why>" directory next to the data dir.
type MovedAsideCopy struct {
	Path   string    `json:"path"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
	// Bytes is the size of the files in it (filled by ListMovedAside).
	Bytes int64 `json:"bytes"`
}

// parseMovedAside reads a sibling's name; ok is false for anything MoveAside did not make.
func parseMovedAside(dataDir, name string) (MovedAsideCopy, bool) {
	prefix := filepath.Base(filepath.Clean(dataDir)) + ".moved-aside."
	rest, found := strings.CutPrefix(name, prefix)
	if !found || len(rest) < len(movedAsideTime)+1 {
		return MovedAsideCopy{}, false
	}
	ts, err := time.Parse(movedAsideTime, rest[:len(movedAsideTime)])
	if err != nil || rest[len(movedAsideTime)] != '.' {
		return MovedAsideCopy{}, false
	}
	return MovedAsideCopy{Path: filepath.Join(filepath.Dir(filepath.Clean(dataDir)), name), Time: ts, Reason: rest[len(movedAsideTime)+1:]}, true
}

// ChoosePrune is the bound on moved-aside copies: it returns the copies to delete so that at most max remain,
// oldest first (by the time in the name, then by name). max below 1 prunes nothing: the newest copy is never
// deleted, so a loop of rolled-back joins cannot fill the disk but the last evidence is kept.
func ChoosePrune(copies []MovedAsideCopy, max int) []MovedAsideCopy {
	if max < 1 || len(copies) <= max {
		return nil
	}
	sorted := slices.Clone(copies)
	slices.SortFunc(sorted, func(a, b MovedAsideCopy) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return sorted[:len(sorted)-max]
}

// ListMovedAside returns the moved-aside copies next to dataDir, oldest first, with their sizes.
func ListMovedAside(dataDir string) ([]MovedAsideCopy, error) {
	parent := filepath.Dir(filepath.Clean(dataDir))
	entries, err := os.ReadDir(parent)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing moved-aside copies in %s: %w", parent, err)
	}
	var copies []MovedAsideCopy
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if c, ok := parseMovedAside(dataDir, e.Name()); ok {
			c.Bytes = dirSize(c.Path)
			copies = append(copies, c)
		}
	}
	return copies, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// PruneMovedAside deletes the oldest moved-aside copies beyond max (ChoosePrune) and returns what it deleted.
func PruneMovedAside(dataDir string, max int) ([]MovedAsideCopy, error) {
	copies, err := ListMovedAside(dataDir)
	if err != nil {
		return nil, err
	}
	var pruned []MovedAsideCopy
	for _, c := range ChoosePrune(copies, max) {
		if err := os.RemoveAll(c.Path); err != nil {
			return pruned, fmt.Errorf("pruning moved-aside copy %s: %w", c.Path, err)
		}
		pruned = append(pruned, c)
	}
	return pruned, nil
}

// pruneMovedAside keeps at most etcd.max_moved_aside copies after a move aside, logging each deletion. A failure
// is logged, never fatal: the copies only cost disk space.
func (m *Manager) pruneMovedAside() {
	max := m.Config.Etcd.MaxMovedAside
	pruned, err := PruneMovedAside(m.Config.Paths.DataDir, max)
	for _, c := range pruned {
		m.Log.Warn("deleted an old moved-aside copy of the data dir", zap.String("path", c.Path), zap.Int64("bytes", c.Bytes),
			zap.String("reason", fmt.Sprintf("etcd.max_moved_aside is %d and newer copies exist (moved aside %s for %s)", max, c.Time.Format(time.RFC3339), c.Reason)))
	}
	if err != nil {
		m.Log.Warn("could not prune old moved-aside copies of the data dir", zap.Error(err))
	}
}
