// Package backup takes, verifies, lists and prunes snapshots of the cluster's keyspace, and schedules them so
// that one member at a time takes one.
//
// A snapshot file is exactly the stream etcd's Maintenance.Snapshot RPC sends: the bbolt database followed by
// the sha256 of the preceding bytes (etcd's server/etcdserver/api/v3rpc/maintenance.go appends it; etcdutl's
// snapshot/v3_snapshot.go recognises it by the file size: size mod 512 == 32, and checks it before a restore).
// Keeping that trailer lets etcdutl's restore check the file again. Every snapshot is written to a temporary
// file, fsynced, verified (the trailer hash, then a full read-only open of the database with a consistency check
// of every page and a walk of every key), and only then renamed into place, with a JSON metadata file beside it.
//
// Decisions (is a snapshot due, which files to prune, is a file intact) are pure functions in this file; the
// I/O around them is in snapshot.go, scheduler.go and files.go.
package backup

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"time"
)

// TrailerSize is the length of the sha256 etcd appends to a snapshot stream.
const TrailerSize = sha256.Size

// HasTrailer reports whether a snapshot of n bytes ends with etcd's sha256 trailer. etcd's database files are
// a whole number of 512-byte sectors (bbolt pages are multiples of it), so only the trailer makes n mod 512 = 32.
func HasTrailer(n int64) bool { return n%512 == TrailerSize }

// CheckTrailer decides whether a snapshot of size bytes is intact: it must carry the trailer, and the trailer
// must equal the sha256 of the bytes before it (digest).
func CheckTrailer(size int64, trailer, digest []byte) error {
	if !HasTrailer(size) {
		return fmt.Errorf("the file is %d bytes, which is not a database followed by etcd's 32-byte sha256 trailer: it is truncated or not an etcd snapshot", size)
	}
	if !bytes.Equal(trailer, digest) {
		return fmt.Errorf("the sha256 trailer (%x) does not match the sha256 of the database (%x): the file is corrupt or was modified", trailer, digest)
	}
	return nil
}

// Last is the most recent snapshot the cluster took, as recorded in the cluster under LastKey.
type Last struct {
	Time     time.Time `json:"time"`
	Revision int64     `json:"revision"`
	Member   string    `json:"member"`
	File     string    `json:"file"`
	CopiedTo string    `json:"copied_to,omitempty"`
}

// Due decides whether a scheduled snapshot is due at now. last is the cluster's record of its most recent
// snapshot (nil if none was ever taken), interval the property etcd.backup.interval_in_minutes.
func Due(now time.Time, last *Last, interval time.Duration) (bool, string) {
	switch {
	case interval <= 0:
		return false, "scheduled snapshots are off (etcd.backup.interval_in_minutes is 0)"
	case last == nil:
		return true, "the cluster has no record of a snapshot"
	case last.Time.After(now.Add(time.Minute)):
		// A clock far ahead on the member that recorded it must not stop snapshots for ever.
		return true, fmt.Sprintf("the last snapshot's time %s is in the future (clock skew); taking one now", last.Time.UTC().Format(time.RFC3339))
	case now.Sub(last.Time) >= interval:
		return true, fmt.Sprintf("the last snapshot (%s by %s) is %s old, the interval is %s", last.Time.UTC().Format(time.RFC3339), last.Member, now.Sub(last.Time).Round(time.Second), interval)
	}
	return false, fmt.Sprintf("the last snapshot (%s by %s) is %s old, the interval is %s", last.Time.UTC().Format(time.RFC3339), last.Member, now.Sub(last.Time).Round(time.Second), interval)
}

// Prune decides which snapshots to delete: all but the newest keepCount, and those older than keepDays (0: no
// age limit). The newest snapshot is never pruned, so a member never ends up without one because of its age.
func Prune(snaps []Meta, now time.Time, keepCount, keepDays int) []Meta {
	sorted := append([]Meta(nil), snaps...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Time.After(sorted[j].Time) })
	var out []Meta
	for i, m := range sorted {
		if i == 0 {
			continue
		}
		tooMany := keepCount > 0 && i >= keepCount
		tooOld := keepDays > 0 && now.Sub(m.Time) > time.Duration(keepDays)*24*time.Hour
		if tooMany || tooOld {
			out = append(out, m)
		}
	}
	return out
}

// StalePartAge is how long a temporary snapshot file may go unwritten before retention removes it. A seal in
// progress finishes within minutes of its last write to the file (hashing and verifying a GiB take seconds
// of CPU); a day is far beyond that, so only the leftovers of a seal that was killed (its process, or the
// VM) qualify.
const StalePartAge = 24 * time.Hour

// StaleParts decides which entries of the backup dir are temporary snapshot files (".etcd-snapshot-*.part",
// the names Take writes before anything is verified) left behind: those unmodified for StalePartAge. A part
// file never verified, so removing it loses no snapshot.
func StaleParts(modified map[string]time.Time, now time.Time) []string {
	var out []string
	for name, t := range modified {
		if strings.HasPrefix(name, ".etcd-snapshot-") && strings.HasSuffix(name, ".part") && now.Sub(t) > StalePartAge {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// FileName is the snapshot file name for a snapshot taken at t at revision rev.
func FileName(t time.Time, rev int64, gzip bool) string {
	name := fmt.Sprintf("etcd-snapshot-%s-rev%d.db", t.UTC().Format("20060102T150405.000Z"), rev)
	if gzip {
		name += ".gz"
	}
	return name
}
