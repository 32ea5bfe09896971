package recovery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
)

// DefaultRevisionBump is how far a restore moves the revision past the snapshot's. It must exceed the number
// of writes the lost cluster may have made after the snapshot, so that revisions never go backwards for a
// client; etcdutl's restore then marks everything up to the new revision compacted, so a client watching from
// an older revision is told "compacted" rather than shown older data as new.
const DefaultRevisionBump = 1_000_000_000

// RestoreOptions are the inputs of Restore.
type RestoreOptions struct {
	Snapshot string
	// Force allows replacing a data dir that holds a member (which is moved aside, not deleted).
	Force bool
	// Nonce makes the restored cluster's identity; empty: the start of the snapshot file's sha256.
	Nonce        string
	RevisionBump uint64
	Now          func() time.Time
}

// Result says what a restore did.
type Result struct {
	Revision    int64  `json:"snapshot_revision"`
	NewRevision int64  `json:"new_revision"`
	Token       string `json:"initial_cluster_token"`
	// MovedAside is where the replaced data dir now is ("" if there was none).
	MovedAside     string `json:"moved_aside,omitempty"`
	InitialCluster string `json:"initial_cluster"`
}

// Restore makes this member's data dir from a snapshot, as one member of a new cluster of every desired
// member. etcd is not started: the next `etcd_ctl start` (monit start etcd) restarts with the restored data.
func Restore(ctx context.Context, c *config.Config, o RestoreOptions, lg *zap.Logger) (*Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RevisionBump == 0 {
		o.RevisionBump = DefaultRevisionBump
	}
	if _, err := c.Validate(o.Now()); err != nil {
		return nil, fmt.Errorf("invalid configuration (nothing was changed):\n%w", err)
	}
	t, err := Inspect(ctx, c)
	if err != nil {
		return nil, err
	}
	moveAside, err := DecideRestore(t, o.Force)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(c.Paths.DataDir))
	keys, err := backup.KeysFor(c)
	if err != nil {
		return nil, err
	}
	raw, st, cleanup, err := backup.Open(o.Snapshot, parent, keys)
	if err != nil {
		return nil, fmt.Errorf("the snapshot did not verify, nothing was changed: %w", err)
	}
	defer cleanup()
	nonce := o.Nonce
	if nonce == "" {
		if nonce, err = fileSHA256Prefix(o.Snapshot); err != nil {
			return nil, err
		}
	}
	initial, err := initialCluster(c)
	if err != nil {
		return nil, err
	}
	res := &Result{Revision: st.Revision, NewRevision: st.Revision + int64(o.RevisionBump), Token: RestoreToken(c.ClusterToken(), nonce), InitialCluster: initial}
	// A fresh staging dir beside the data dir (same disk, so the final move is a rename); etcdutl wants its
	// output dir not to exist yet, hence the "data" inside it.
	scratch, err := os.MkdirTemp(parent, filepath.Base(filepath.Clean(c.Paths.DataDir))+".restoring.")
	if err != nil {
		return nil, fmt.Errorf("creating a staging dir for the restore: %w", err)
	}
	staging := filepath.Join(scratch, "data")
	self := c.Self()
	err = snapshot.NewV3(lg.Named("restore")).Restore(snapshot.RestoreConfig{
		SnapshotPath: raw, Name: self.Name, OutputDataDir: staging, PeerURLs: []string{self.PeerURL},
		InitialCluster: initial, InitialClusterToken: res.Token, RevisionBump: o.RevisionBump, MarkCompacted: true,
	})
	if err != nil {
		os.RemoveAll(scratch) // only this restore's own partial output
		return nil, fmt.Errorf("restoring the snapshot (nothing in %s was changed): %w", c.Paths.DataDir, err)
	}
	if res.MovedAside, err = install(c.Paths.DataDir, staging, moveAside, o.Now()); err != nil {
		return res, err
	}
	if err := os.RemoveAll(scratch); err != nil {
		return res, err
	}
	lg.Info("restored the snapshot into the data dir", zap.String("snapshot", o.Snapshot), zap.Int64("revision", res.Revision),
		zap.Int64("new-revision", res.NewRevision), zap.String("token", res.Token), zap.String("moved-aside", res.MovedAside),
		zap.String("reason", "operator ran etcd_ctl restore"))
	return res, nil
}

// install moves the old data dir aside (if asked) and puts the restored member in its place.
func install(dataDir, staging string, moveAside bool, now time.Time) (string, error) {
	var dest string
	if moveAside {
		var err error
		if dest, err = membership.MoveAside(dataDir, asideSlug(dataDir, now), now); err != nil {
			return "", err
		}
	} else if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return dest, err
	}
	if err := os.Rename(filepath.Join(staging, "member"), filepath.Join(dataDir, "member")); err != nil {
		return dest, fmt.Errorf("moving the restored member into %s (the restored data is in %s): %w", dataDir, staging, err)
	}
	return dest, atomicfile.SyncDir(dataDir)
}

// asideSlug names the moved-aside data dir; MoveAside's name has a one-second resolution, so a second restore
// within the same second (a retried bbr restore) gets a numbered name instead of failing.
func asideSlug(dataDir string, now time.Time) string {
	slug := "replaced-by-restore"
	for n := 2; ; n++ {
		name := fmt.Sprintf("%s.moved-aside.%s.%s", filepath.Clean(dataDir), now.UTC().Format("20060102T150405Z"), slug)
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			return slug
		}
		slug = fmt.Sprintf("replaced-by-restore-%d", n)
	}
}

// initialCluster is name=peerURL of every desired member, exactly as each member advertises itself, so that
// every member's restore computes the same cluster and member IDs.
func initialCluster(c *config.Config) (string, error) {
	desired, err := c.DesiredMembers()
	if err != nil {
		return "", err
	}
	parts := make([]string, 0, len(desired))
	for _, m := range desired {
		name := m.Name
		if name == "" {
			// etcd.machines gives addresses only; a member's name is published by the member itself at start.
			name = m.Host
		}
		parts = append(parts, name+"="+m.PeerURL)
	}
	return strings.Join(parts, ","), nil
}

func fileSHA256Prefix(path string) (string, error) {
	if m, err := backup.ReadMeta(path); err == nil && len(m.SHA256) >= 12 {
		return m.SHA256[:12], nil
	}
	sum, err := backup.FileSHA256(path)
	if err != nil {
		return "", err
	}
	return sum[:12], nil
}
