package state

import (
	"os"
	"path/filepath"
	"sort"
	"time"
)

// OrphanDisk is the persistent disk of an instance that was deleted (scale-down, a removed group, a deleted
// deployment, a disk removed from the manifest): kept, with where it came from, until `bosh delete-disk`, the
// retention period or `bosh attach-disk` (the director's orphan_disk_manager.rb keeps the same facts).
type OrphanDisk struct {
	CID        string    `json:"disk_cid"`
	Size       int       `json:"size"`
	Deployment string    `json:"deployment_name"`
	Instance   string    `json:"instance_name"`
	AZ         string    `json:"az"`
	OrphanedAt time.Time `json:"orphaned_at"`
}

// PutOrphanDisk records an orphaned disk.
func (s *Store) PutOrphanDisk(o OrphanDisk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return writeJSON(filepath.Join(s.dir, "orphaned-disks", safe(o.CID)+".json"), o)
}

// OrphanDisks lists orphaned disks, newest first.
func (s *Store) OrphanDisks() ([]OrphanDisk, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := list[OrphanDisk](filepath.Join(s.dir, "orphaned-disks"))
	sort.Slice(out, func(i, j int) bool { return out[i].OrphanedAt.After(out[j].OrphanedAt) })
	return out, err
}

// OrphanDisk returns one orphaned disk or ErrNotFound.
func (s *Store) OrphanDisk(cid string) (OrphanDisk, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var o OrphanDisk
	err := readJSON(filepath.Join(s.dir, "orphaned-disks", safe(cid)+".json"), &o)
	return o, err
}

// ForgetOrphanDisk removes the record of an orphaned disk (it was deleted or attached again).
func (s *Store) ForgetOrphanDisk(cid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := os.Remove(filepath.Join(s.dir, "orphaned-disks", safe(cid)+".json"))
	if os.IsNotExist(err) {
		return ErrNotFound
	}
	return err
}
