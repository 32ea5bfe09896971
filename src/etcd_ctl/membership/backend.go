package membership

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// maxScan bounds the backward scan for a client write in a stored backend. A backend whose newest maxScan
// revisions are all etcd_ctl's own keys is taken as holding client writes: the answer that never discards.
const maxScan = 100000

// ReadLocalView reads what the decision needs from a stopped member's data dir: the identity, the creation
// nonce and, from etcd's backend file, the revision, raft term and index and whether it holds client writes.
// The bucket and key names are those of etcd's server/storage/schema/bucket.go ("key": revision → KeyValue;
// "meta": consistent_index, term).
func ReadLocalView(dataDir string) (LocalView, error) {
	var v LocalView
	has, err := HasData(dataDir)
	if err != nil || !has {
		return v, err
	}
	v.HasData = true
	if v.Identity, err = ReadIdentity(dataDir); err != nil {
		return v, err
	}
	if v.Nonce, err = ReadCreationNonce(dataDir); err != nil {
		return v, err
	}
	path := filepath.Join(dataDir, "member", "snap", "db")
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return v, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return v, fmt.Errorf("opening etcd's backend %s read-only: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket([]byte("meta")); meta != nil {
			v.RaftIndex = beUint64(meta.Get([]byte("consistent_index")))
			v.RaftTerm = beUint64(meta.Get([]byte("term")))
		}
		if kb := tx.Bucket([]byte("key")); kb != nil {
			v.Revision, v.ClientWrites = scanKeys(kb.Cursor())
		}
		return nil
	})
	return v, err
}

// scanKeys walks the key bucket from the newest revision back until it finds a client key.
func scanKeys(c *bolt.Cursor) (rev int64, clientWrites bool) {
	k, val := c.Last()
	if k == nil {
		return 0, false
	}
	if len(k) >= 8 {
		rev = int64(binary.BigEndian.Uint64(k[:8]))
	}
	for n := 0; k != nil; n++ {
		if n >= maxScan {
			return rev, true
		}
		var kv mvccpb.KeyValue
		if err := kv.Unmarshal(val); err != nil || !strings.HasPrefix(string(kv.Key), OwnPrefix) {
			return rev, true
		}
		k, val = c.Prev()
	}
	return rev, false
}

func beUint64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
