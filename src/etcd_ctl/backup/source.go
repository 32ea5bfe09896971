package backup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/storage/schema"
)

// Source is where a snapshot's bytes come from: the database of one consistent read transaction.
type Source interface {
	// Copy writes the snapshot into a new temporary file in dir.
	Copy(ctx context.Context, dir string) (Part, error)
}

// Part is a snapshot copied into a temporary file, not yet complete, fsynced, verified or in place (see
// Seal).
type Part struct {
	Path           string `json:"path"`
	StorageVersion string `json:"storage_version,omitempty"`
	// SHA256 is set when the file already ends with etcd's 32-byte sha256 trailer, checked while it was
	// written, and is then the file's sha256; otherwise Seal appends the trailer, which makes the file what
	// `etcdctl snapshot save` writes and etcdutl's restore checks.
	SHA256 string `json:"sha256,omitempty"`
	// Rest, if set, is the rest of the database, still to be appended to the file: RestLength bytes of Rest
	// (the member's own db file, opened read-only) from RestOffset. The read transaction that keeps those
	// bytes as they were is held until Release.
	Rest       *os.File `json:"-"`
	RestOffset int64    `json:"rest_offset,omitempty"`
	RestLength int64    `json:"rest_length,omitempty"`
	// Release ends what the copy holds (nil: nothing). It may be called more than once.
	Release func() `json:"-"`
}

func (p Part) release() {
	if p.Release != nil {
		p.Release()
	}
}

// RPCSource streams the snapshot with etcd's Snapshot RPC from the member the client talks to. It works from
// any process (`etcd_ctl snapshot`), at the cost of the server sending the database as 32 KiB gRPC messages.
type RPCSource struct{ Client *clientv3.Client }

func (s RPCSource) Copy(ctx context.Context, dir string) (Part, error) {
	f, err := newPartFile(dir)
	if err != nil {
		return Part{}, err
	}
	defer f.Close()
	p := Part{Path: f.Name()}
	resp, err := s.Client.SnapshotWithVersion(ctx)
	if err != nil {
		return p, fmt.Errorf("requesting a snapshot: %w", err)
	}
	defer resp.Snapshot.Close()
	th := newTrailerHasher()
	n, err := io.Copy(io.MultiWriter(&writebackFile{f: f}, th), resp.Snapshot)
	if err != nil {
		return p, fmt.Errorf("receiving the snapshot after %d bytes: %w", n, err)
	}
	if err := CheckTrailer(n, th.Trailer(), th.Body()); err != nil {
		return p, fmt.Errorf("the snapshot streamed did not verify (nothing was kept): %w", err)
	}
	p.StorageVersion, p.SHA256 = resp.Version, hex.EncodeToString(th.SoFar())
	return p, f.Close()
}

// LocalSource takes the snapshot straight from the embedded etcd server running in this process: the
// backend read transaction etcd's Snapshot RPC sends (server/etcdserver/api/v3rpc/maintenance.go), without
// the gRPC stream. The scheduler uses it, and leaves almost all the work to Seal: Copy writes only the two
// meta pages bbolt generates for the transaction (bbolt's Tx.WriteTo) and hands over the member's db file,
// whose data pages Seal copies while the transaction keeps them unchanged. Run in an idle child, that keeps
// the work done inside the member's process to a few pages.
type LocalSource struct{ Server *etcdserver.EtcdServer }

func (s LocalSource) Copy(ctx context.Context, dir string) (Part, error) {
	f, err := newPartFile(dir)
	if err != nil {
		return Part{}, err
	}
	defer f.Close()
	p := Part{Path: f.Name()}
	be := s.Server.Backend()
	if v := schema.ReadStorageVersion(be.ReadTx()); v != nil {
		p.StorageVersion = v.String()
	}
	snap := be.Snapshot()
	var once sync.Once
	p.Release = func() { once.Do(func() { snap.Close() }) }
	mc := &metaCapture{}
	_, err = snap.WriteTo(mc)
	if pages, ok := mc.pages(err); ok {
		// etcd's backend cannot replace its file while snap is open: a defragmentation closes the database
		// before it renames the new file into place, and closing waits for every read transaction. So the file
		// opened now is the transaction's.
		db, err := os.Open(s.Server.Cfg.BackendPath())
		if err != nil {
			p.release()
			return p, fmt.Errorf("opening the member's database file: %w", err)
		}
		p.Rest, p.RestOffset, p.RestLength = db, int64(len(pages)), snap.Size()-int64(len(pages))
		p.Release = func() { once.Do(func() { db.Close(); snap.Close() }) }
		if _, err := f.Write(pages); err != nil {
			p.release()
			return p, fmt.Errorf("writing the snapshot's meta pages: %w", err)
		}
		return p, f.Close()
	}
	// bbolt wrote its meta pages differently from what metaCapture expects: copy it all here instead.
	defer p.release()
	if err := f.Truncate(0); err != nil {
		return p, err
	}
	if _, err := snap.WriteTo(ctxWriter{ctx, &writebackFile{f: f}}); err != nil {
		return p, fmt.Errorf("copying the member's database: %w", err)
	}
	return p, f.Close()
}

// errMetaCaptured ends bbolt's Tx.WriteTo once it has written its two meta pages.
var errMetaCaptured = errors.New("meta pages captured")

// metaCapture keeps the first two writes of bbolt's Tx.WriteTo, which are the two meta pages it generates for
// the transaction (page 0, then page 1 with the transaction ID lowered), and stops it at the third: the data
// pages, which follow them unchanged from the db file.
type metaCapture struct {
	writes [][]byte
}

func (m *metaCapture) Write(p []byte) (int, error) {
	if len(m.writes) == 2 {
		return 0, errMetaCaptured
	}
	m.writes = append(m.writes, append([]byte(nil), p...))
	return len(p), nil
}

// pages are the two meta pages, if WriteTo stopped where expected after two writes of one page size each.
func (m *metaCapture) pages(err error) ([]byte, bool) {
	if !errors.Is(err, errMetaCaptured) || len(m.writes) != 2 || len(m.writes[0]) != len(m.writes[1]) || len(m.writes[0]) < 512 {
		return nil, false
	}
	return append(m.writes[0], m.writes[1]...), true
}

func newPartFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".etcd-snapshot-*.part")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary snapshot file: %w", err)
	}
	return f, nil
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
