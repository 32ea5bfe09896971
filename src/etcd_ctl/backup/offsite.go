package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup/s3"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// Remote is the off-VM copy of snapshots in an S3-compatible store (etcd.backup.s3.*).
type Remote struct {
	client              *s3.Client
	prefix              string
	keepCount, keepDays int
}

// RemoteFor returns c's off-VM store, or nil when etcd.backup.s3.endpoint is empty.
func RemoteFor(c *config.Config) (*Remote, error) {
	p := c.Etcd.Backup.S3
	if p.Endpoint == "" {
		return nil, nil
	}
	cli, err := s3.New(p.Endpoint, p.Bucket, p.Region, p.AccessKeyID, p.SecretAccessKey.Value(), p.CACert)
	if err != nil {
		return nil, &config.PropertyError{Property: "etcd.backup.s3", Problem: err.Error()}
	}
	r := &Remote{client: cli, prefix: strings.Trim(p.Prefix, "/"), keepCount: p.KeepCount, keepDays: p.KeepDays}
	if r.keepCount == 0 {
		r.keepCount = c.Etcd.Backup.KeepCount
	}
	if r.keepDays == 0 {
		r.keepDays = c.Etcd.Backup.KeepDays
	}
	return r, nil
}

func (r *Remote) key(file string) string { return path.Join(r.prefix, file) }

// Where is the s3:// location of a file.
func (r *Remote) Where(file string) string { return "s3://" + r.client.Bucket + "/" + r.key(file) }

// Upload copies a local snapshot and its metadata (the metadata last, so a listed copy is complete), records
// the location in the local metadata, and applies the remote retention.
func (r *Remote) Upload(ctx context.Context, m *Meta, lg *zap.Logger) error {
	if err := r.client.Put(ctx, r.key(m.File), m.Path()); err != nil {
		return err
	}
	if err := r.client.Put(ctx, r.key(m.File)+".json", MetaPath(m.Path())); err != nil {
		return err
	}
	m.CopiedTo = r.Where(m.File)
	if err := writeMeta(*m); err != nil {
		return err
	}
	lg.Info("copied the snapshot off the VM", zap.String("to", m.CopiedTo))
	return r.prune(ctx, lg)
}

// List returns the complete copies (those with metadata), newest first.
func (r *Remote) List(ctx context.Context) ([]Meta, error) {
	keys, err := r.client.List(ctx, r.key("etcd-snapshot-"))
	if err != nil {
		return nil, err
	}
	var out []Meta
	for _, k := range keys {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		var buf bytes.Buffer
		if err := r.client.Get(ctx, k, &buf); err != nil {
			return nil, err
		}
		var m Meta
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Where(path.Base(k)), err)
		}
		out = append(out, m)
	}
	return sortNewest(out), nil
}

func (r *Remote) prune(ctx context.Context, lg *zap.Logger) error {
	all, err := r.List(ctx)
	if err != nil {
		return err
	}
	for _, m := range Prune(all, time.Now(), r.keepCount, r.keepDays) {
		if err := r.client.Delete(ctx, r.key(m.File)+".json"); err != nil {
			return err
		}
		if err := r.client.Delete(ctx, r.key(m.File)); err != nil {
			return err
		}
		lg.Info("pruned an off-VM copy", zap.String("file", r.Where(m.File)), zap.String("reason", fmt.Sprintf("remote retention keeps the newest %d and none older than %d days", r.keepCount, r.keepDays)))
	}
	return nil
}

// Download fetches a copy ("latest" or a file name) into dir, the snapshot to a temporary file renamed once
// complete, and returns its local path. Restore verifies it against the downloaded metadata.
func (r *Remote) Download(ctx context.Context, file, dir string) (string, error) {
	if file == "latest" {
		all, err := r.List(ctx)
		if err != nil {
			return "", err
		}
		if len(all) == 0 {
			return "", fmt.Errorf("no snapshot under %s", r.Where(""))
		}
		file = all[0].File
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	local := filepath.Join(dir, filepath.Base(file))
	tmp, err := os.CreateTemp(dir, ".etcd-snapshot-download-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := r.client.Get(ctx, r.key(file), tmp); err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	var meta bytes.Buffer
	if err := r.client.Get(ctx, r.key(file)+".json", &meta); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), local); err != nil {
		return "", err
	}
	return local, atomicfile.Write(MetaPath(local), meta.Bytes(), 0o600)
}
