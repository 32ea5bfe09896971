package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"
)

// Meta describes one snapshot file; it is written beside it as "<file>.json".
type Meta struct {
	// File is the snapshot's base name in its directory.
	File string    `json:"file"`
	Time time.Time `json:"time"`
	// Revision is the newest revision in the snapshot: every write acknowledged before the snapshot was
	// requested has a revision at most this.
	Revision  int64  `json:"revision"`
	TotalKeys int    `json:"total_keys"`
	ClusterID string `json:"cluster_id"`
	// TakenBy is the member (name and ID) whose database was streamed.
	TakenBy     string   `json:"taken_by"`
	TakenByID   string   `json:"taken_by_id"`
	Members     []Member `json:"members"`
	EtcdVersion string   `json:"etcd_version"`
	// StorageVersion is the storage schema version etcd reports with the snapshot.
	StorageVersion string `json:"storage_version,omitempty"`
	// Size and SHA256 are those of the file on disk (compressed, with gzip).
	Size   int64  `json:"size_bytes"`
	SHA256 string `json:"sha256"`
	// DBSize is the size of the uncompressed snapshot stream (database plus trailer).
	DBSize int64 `json:"db_size_bytes"`
	Gzip   bool  `json:"gzip"`
	// Encrypted files name the key (etcd.backup.encryption_keys[].id) that decrypts them.
	Encrypted bool   `json:"encrypted,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
	// CopiedTo is where the off-VM copy is (etcd.backup.s3.*), once uploaded.
	CopiedTo string `json:"copied_to,omitempty"`

	// Dir is the directory the metadata was read from (not stored).
	Dir string `json:"-"`
}

// Member is one member of the cluster at the time of the snapshot.
type Member struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	PeerURLs []string `json:"peer_urls"`
	Learner  bool     `json:"learner,omitempty"`
}

// Path is the snapshot file's path.
func (m Meta) Path() string { return filepath.Join(m.Dir, m.File) }

// MetaPath is the path of the snapshot's metadata file.
func MetaPath(snapshotPath string) string { return snapshotPath + ".json" }

func writeMeta(m Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(MetaPath(m.Path()), append(b, '\n'), 0o600)
}

// ReadMeta reads the metadata beside a snapshot file.
func ReadMeta(snapshotPath string) (*Meta, error) {
	b, err := os.ReadFile(MetaPath(snapshotPath))
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", MetaPath(snapshotPath), err)
	}
	m.Dir = filepath.Dir(snapshotPath)
	return &m, nil
}

// List returns the snapshots in dir that have metadata, newest first. A missing dir has none.
func List(dir string) ([]Meta, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading backup dir: %w", err)
	}
	var out []Meta
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "etcd-snapshot-") || !strings.HasSuffix(name, ".json") {
			continue
		}
		m, err := ReadMeta(filepath.Join(dir, strings.TrimSuffix(name, ".json")))
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return sortNewest(out), nil
}

func sortNewest(out []Meta) []Meta {
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out
}

// Latest is the newest snapshot in dir, or nil.
func Latest(dir string) (*Meta, error) {
	l, err := List(dir)
	if err != nil || len(l) == 0 {
		return nil, err
	}
	return &l[0], nil
}

// LastSnapshotAge is the age of the newest snapshot in dir at now, and false if there is none (for metrics).
func LastSnapshotAge(dir string, now time.Time) (time.Duration, bool) {
	m, err := Latest(dir)
	if err != nil || m == nil {
		return 0, false
	}
	return now.Sub(m.Time), true
}

// remove deletes a pruned snapshot and its metadata (the metadata last, so a half-done removal is listed).
func remove(m Meta) error {
	if err := os.Remove(m.Path()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Remove(MetaPath(m.Path()))
}
