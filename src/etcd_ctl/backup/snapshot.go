package backup

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"
)

// Options say where and how Take writes a snapshot.
type Options struct {
	Dir  string
	Gzip bool
	// KeepCount and KeepDays are the retention applied after a snapshot was written (see Prune).
	KeepCount, KeepDays int
	// Key, if set, encrypts the file (after verification and gzip).
	Key *Key
	Now func() time.Time
	Log *zap.Logger
	// Source is where the snapshot comes from; nil streams it with etcd's Snapshot RPC through Take's client.
	Source Source
	// Seal finishes the copied snapshot; nil runs Seal in this process (ChildSealer runs it in another).
	Seal func(ctx context.Context, part Part, meta *Meta, o Options) (*Meta, error)
}

// Take snapshots the member at endpoint into o.Dir: it copies the database from o.Source into a temporary
// file, then seals it (o.Seal, or Seal in this process): fsync, verification, optional gzip and encryption,
// rename, metadata, retention. cli must talk to endpoint only, so that the metadata names the member whose
// database was copied. Nothing is renamed into place unless it verified.
func Take(ctx context.Context, cli *clientv3.Client, endpoint string, o Options) (*Meta, error) {
	o = o.withDefaults()
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating backup dir: %w", err)
	}
	meta, err := describe(ctx, cli, endpoint)
	if err != nil {
		return nil, err
	}
	meta.Time, meta.Dir, meta.Gzip = o.Now().UTC(), o.Dir, o.Gzip
	src := o.Source
	if src == nil {
		src = RPCSource{Client: cli}
	}
	start := time.Now()
	part, err := src.Copy(ctx, o.Dir)
	defer part.release()
	if part.Path != "" {
		defer os.Remove(part.Path) // gone already once sealed: Seal renames it or a copy of it into place
	}
	if err != nil {
		return nil, err
	}
	copied := time.Since(start)
	seal := o.Seal
	if seal == nil {
		seal = Seal
	}
	if meta, err = seal(ctx, part, meta, o); err != nil {
		return nil, fmt.Errorf("the snapshot copied from %s: %w", endpoint, err)
	}
	o.Log.Info("took a snapshot", zap.String("file", meta.Path()), zap.Int64("revision", meta.Revision), zap.Int64("size", meta.Size),
		zap.Duration("took", time.Since(start)), zap.Duration("copy", copied), zap.String("sha256", meta.SHA256))
	return meta, nil
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return o
}

// Seal turns a copied snapshot into a verified one in place: etcd's trailer appended (or already checked),
// fsync, a full open of the database, optional gzip and encryption, rename into o.Dir, metadata beside it,
// then retention. meta describes the member it was copied from; the returned Meta is the file's.
func Seal(ctx context.Context, part Part, meta *Meta, o Options) (*Meta, error) {
	o = o.withDefaults()
	m := *meta
	m.Dir, m.StorageVersion = o.Dir, part.StorageVersion
	if err := finishPart(part, &m); err != nil {
		return nil, err
	}
	st, err := openDB(part.Path)
	if err != nil {
		return nil, fmt.Errorf("it did not verify (nothing was kept): %w", err)
	}
	m.Revision, m.TotalKeys = st.Revision, st.TotalKey
	final := part.Path
	if o.Gzip {
		if final, err = compress(part.Path, &m); err != nil {
			return nil, err
		}
		defer os.Remove(final)
	}
	if o.Key != nil {
		if final, err = encryptFile(final, *o.Key, &m); err != nil {
			return nil, err
		}
		defer os.Remove(final)
	}
	m.File = FileName(m.Time, m.Revision, o.Gzip)
	if o.Key != nil {
		m.File += ".enc"
	}
	if err := os.Rename(final, m.Path()); err != nil {
		return nil, fmt.Errorf("renaming the verified snapshot into place: %w", err)
	}
	if err := atomicfile.SyncDir(o.Dir); err != nil {
		return nil, err
	}
	if err := writeMeta(m); err != nil {
		return nil, fmt.Errorf("writing snapshot metadata: %w", err)
	}
	pruneDir(o)
	return &m, nil
}

// finishPart makes the part file a complete snapshot on disk: it appends the rest of the database (then
// releases what holds it) and etcd's trailer if the copy did not write them, fsyncs, and records the file's
// size and sha256 in m.
func finishPart(part Part, m *Meta) error {
	f, err := os.OpenFile(part.Path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	sum := part.SHA256
	if sum == "" {
		if sum, err = completeWithTrailer(f, part); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsyncing the snapshot: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !HasTrailer(fi.Size()) {
		return fmt.Errorf("it is %d bytes, which is not a database followed by etcd's sha256 trailer (nothing was kept)", fi.Size())
	}
	m.DBSize, m.Size, m.SHA256 = fi.Size(), fi.Size(), sum
	return f.Close()
}

// completeWithTrailer hashes what f holds, appends part's rest of the database while hashing it, and then the
// trailer (the sha256 of the database); it returns the sha256 of the whole file.
func completeWithTrailer(f *os.File, part Part) (string, error) {
	th := newTrailerHasher()
	if _, err := io.Copy(th, f); err != nil {
		return "", fmt.Errorf("hashing the copied database: %w", err)
	}
	if part.Rest != nil {
		rest := io.NewSectionReader(part.Rest, part.RestOffset, part.RestLength)
		n, err := io.Copy(io.MultiWriter(&writebackFile{f: f, n: part.RestOffset, flushed: part.RestOffset}, th), rest)
		part.release()
		if err == nil && n != part.RestLength {
			err = fmt.Errorf("the member's db file ended %d bytes early", part.RestLength-n)
		}
		if err != nil {
			return "", fmt.Errorf("copying the member's database: %w", err)
		}
	}
	// What was hashed is the database alone: its sha256 is everything, the held-back tail included.
	trailer := th.SoFar()
	if trailer == nil {
		return "", fmt.Errorf("hashing the copied database: sha256 could not be cloned")
	}
	if _, err := f.Write(trailer); err != nil {
		return "", fmt.Errorf("appending the snapshot's sha256 trailer: %w", err)
	}
	_, _ = th.Write(trailer)
	return hex.EncodeToString(th.SoFar()), nil
}

// describe reads who the snapshot comes from: cluster, member, version, member list.
func describe(ctx context.Context, cli *clientv3.Client, endpoint string) (*Meta, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := cli.Status(cctx, endpoint)
	if err != nil {
		return nil, fmt.Errorf("asking %s for its status before the snapshot: %w", endpoint, err)
	}
	list, err := cli.MemberList(cctx)
	if err != nil {
		return nil, fmt.Errorf("listing members before the snapshot: %w", err)
	}
	m := &Meta{ClusterID: strconv.FormatUint(st.Header.ClusterId, 16), TakenByID: strconv.FormatUint(st.Header.MemberId, 16), EtcdVersion: st.Version}
	for _, mm := range list.Members {
		id := strconv.FormatUint(mm.ID, 16)
		if id == m.TakenByID {
			m.TakenBy = mm.Name
		}
		m.Members = append(m.Members, Member{ID: id, Name: mm.Name, PeerURLs: mm.PeerURLs, Learner: mm.IsLearner})
	}
	return m, nil
}

// compress gzips the verified raw snapshot into a temporary file beside it and fsyncs it.
func compress(raw string, meta *Meta) (string, error) {
	in, err := os.Open(raw)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(raw), ".etcd-snapshot-*.gz.part")
	if err != nil {
		return "", err
	}
	defer out.Close()
	sum := sha256.New()
	zw := gzip.NewWriter(io.MultiWriter(out, sum))
	if _, err := io.Copy(zw, in); err != nil {
		return out.Name(), fmt.Errorf("compressing the snapshot: %w", err)
	}
	if err := zw.Close(); err != nil {
		return out.Name(), fmt.Errorf("compressing the snapshot: %w", err)
	}
	if err := out.Sync(); err != nil {
		return out.Name(), fmt.Errorf("fsyncing the compressed snapshot: %w", err)
	}
	fi, err := out.Stat()
	if err != nil {
		return out.Name(), err
	}
	meta.Size, meta.SHA256 = fi.Size(), hex.EncodeToString(sum.Sum(nil))
	return out.Name(), out.Close()
}

// encryptFile seals in into a temporary file beside it and fsyncs it.
func encryptFile(in string, k Key, meta *Meta) (string, error) {
	src, err := os.Open(in)
	if err != nil {
		return "", err
	}
	defer src.Close()
	out, err := os.CreateTemp(filepath.Dir(in), ".etcd-snapshot-*.enc.part")
	if err != nil {
		return "", err
	}
	defer out.Close()
	sum := sha256.New()
	if err := Encrypt(io.MultiWriter(out, sum), src, k); err != nil {
		return out.Name(), fmt.Errorf("encrypting the snapshot: %w", err)
	}
	if err := out.Sync(); err != nil {
		return out.Name(), fmt.Errorf("fsyncing the encrypted snapshot: %w", err)
	}
	fi, err := out.Stat()
	if err != nil {
		return out.Name(), err
	}
	meta.Size, meta.SHA256, meta.Encrypted, meta.KeyID = fi.Size(), hex.EncodeToString(sum.Sum(nil)), true, k.ID
	return out.Name(), out.Close()
}

// pruneDir applies retention to o.Dir and removes stale temporary files; failures are logged, never fatal:
// the new snapshot is in place.
func pruneDir(o Options) {
	removeStaleParts(o)
	all, err := List(o.Dir)
	if err != nil {
		o.Log.Warn("listing snapshots for retention failed", zap.Error(err))
		return
	}
	for _, m := range Prune(all, o.Now(), o.KeepCount, o.KeepDays) {
		if err := remove(m); err != nil {
			o.Log.Warn("pruning a snapshot failed", zap.String("file", m.Path()), zap.Error(err))
			continue
		}
		o.Log.Info("pruned a snapshot", zap.String("file", m.Path()), zap.String("reason", fmt.Sprintf("retention keeps the newest %d and none older than %d days (0: no limit)", o.KeepCount, o.KeepDays)))
	}
}

func removeStaleParts(o Options) {
	entries, err := os.ReadDir(o.Dir)
	if err != nil {
		return
	}
	modified := map[string]time.Time{}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			modified[e.Name()] = fi.ModTime()
		}
	}
	for _, name := range StaleParts(modified, o.Now()) {
		if err := os.Remove(filepath.Join(o.Dir, name)); err == nil {
			o.Log.Info("removed a temporary snapshot file left behind", zap.String("file", filepath.Join(o.Dir, name)),
				zap.String("reason", fmt.Sprintf("unmodified for over %s, so no seal is writing it (never verified: no snapshot is lost)", StalePartAge)))
		}
	}
}

// Verify checks an uncompressed snapshot file: etcd's sha256 trailer, then a full read-only open of the
// database (etcdutl's snapshot status: a consistency check of every page and a walk of every key).
func Verify(path string) (snapshot.Status, error) {
	if err := checkTrailerOf(path); err != nil {
		return snapshot.Status{}, err
	}
	return openDB(path)
}

// openDB is the full read-only open of a snapshot's database (etcdutl's snapshot status).
func openDB(path string) (snapshot.Status, error) {
	st, err := snapshot.NewV3(zap.NewNop()).Status(path)
	if err != nil {
		return st, fmt.Errorf("opening the snapshot's database: %w", err)
	}
	return st, nil
}

func checkTrailerOf(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !HasTrailer(fi.Size()) {
		return CheckTrailer(fi.Size(), nil, nil)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, fi.Size()-TrailerSize); err != nil {
		return fmt.Errorf("reading the snapshot: %w", err)
	}
	trailer := make([]byte, TrailerSize)
	if _, err := io.ReadFull(f, trailer); err != nil {
		return fmt.Errorf("reading the snapshot's trailer: %w", err)
	}
	return CheckTrailer(fi.Size(), trailer, h.Sum(nil))
}

// Open verifies a snapshot file for a restore and returns the path of its plain form (temporary files in
// scratch for an .enc or .gz file; cleanup removes them). The file's sha256 must match its metadata when that
// exists; an encrypted file is decrypted and authenticated completely before anything uses it.
func Open(path, scratch string, keys []Key) (raw string, st snapshot.Status, cleanup func(), err error) {
	var temps []string
	cleanup = func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}
	defer func() {
		if err != nil {
			cleanup()
			cleanup = func() {}
		}
	}()
	if meta, merr := ReadMeta(path); merr == nil {
		if err := checkSHA256(path, meta.SHA256); err != nil {
			return "", st, cleanup, err
		}
	} else if !errors.Is(merr, os.ErrNotExist) {
		return "", st, cleanup, merr
	}
	raw, name := path, path
	if strings.HasSuffix(name, ".enc") {
		if raw, err = decryptTo(path, scratch, keys); err != nil {
			return "", st, cleanup, err
		}
		temps, name = append(temps, raw), strings.TrimSuffix(name, ".enc")
	}
	if strings.HasSuffix(name, ".gz") {
		if raw, err = gunzip(raw, scratch); err != nil {
			return "", st, cleanup, fmt.Errorf("%s: %w", path, err)
		}
		temps = append(temps, raw)
	}
	if st, err = Verify(raw); err != nil {
		return "", st, cleanup, fmt.Errorf("%s: %w", path, err)
	}
	return raw, st, cleanup, nil
}

func decryptTo(path, scratch string, keys []Key) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(scratch, ".etcd-snapshot-restore-*.dec")
	if err != nil {
		return "", err
	}
	defer out.Close()
	if _, err := Decrypt(out, in, keys); err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("%s: %w; nothing was restored", path, err)
	}
	return out.Name(), out.Close()
}

// FileSHA256 is the hex sha256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func checkSHA256(path, want string) error {
	got, err := FileSHA256(path)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s: its sha256 is %s but its metadata (%s) records %s: the file is corrupt, truncated or not the one the metadata describes", path, got, MetaPath(path), want)
	}
	return nil
}

func gunzip(path, scratch string) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return "", fmt.Errorf("not a gzip file: %w", err)
	}
	out, err := os.CreateTemp(scratch, ".etcd-snapshot-restore-*.db")
	if err != nil {
		return "", err
	}
	defer out.Close()
	if _, err := io.Copy(out, zr); err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("decompressing: %w", err)
	}
	return out.Name(), out.Close()
}
