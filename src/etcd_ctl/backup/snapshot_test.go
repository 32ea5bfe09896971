package backup

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-release/etcd-release/src/testkit/freeport"
)

// startEtcd runs a real one-member embedded etcd in a temporary dir and returns a client to it.
func startEtcd(t *testing.T) (*clientv3.Client, string) {
	t.Helper()
	_, cli, ep := startEtcdServer(t)
	return cli, ep
}

func startEtcdServer(t *testing.T) (*embed.Etcd, *clientv3.Client, string) {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Logger, cfg.LogLevel = "zap", "error"
	cu, pu := localURL(t), localURL(t)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	e, err := embed.StartEtcd(cfg)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("embedded etcd did not become ready")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cu.String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return e, cli, cu.String()
}

func localURL(t *testing.T) url.URL {
	a, err := freeport.Addr()
	require.NoError(t, err)
	return url.URL{Scheme: "http", Host: a}
}

func put(t *testing.T, cli *clientv3.Client, n int) int64 {
	t.Helper()
	var rev int64
	for i := 0; i < n; i++ {
		resp, err := cli.Put(context.Background(), fmt.Sprintf("/k/%05d", i), fmt.Sprintf("value-%d", i))
		require.NoError(t, err)
		rev = resp.Header.Revision
	}
	return rev
}

// The three ways a snapshot is taken give the same verified file: etcd's Snapshot RPC sealed in process
// (`etcd_ctl snapshot`), and the scheduler's copy out of the embedded server sealed in process or by an idle
// child (this test binary re-run as the child, see TestMain).
func TestTakeWritesAVerifiedSnapshotWithMetadata(t *testing.T) {
	for _, way := range []string{"rpc", "local", "local+child"} {
		t.Run(way, func(t *testing.T) {
			e, cli, ep := startEtcdServer(t)
			o := Options{Dir: filepath.Join(t.TempDir(), "etcd-backups"), KeepCount: 5, Log: zaptest.NewLogger(t)}
			if way != "rpc" {
				o.Source = LocalSource{Server: e.Server}
			}
			if way == "local+child" {
				o.Seal = testChild("seal").Seal
			}
			checkTake(t, cli, ep, o)
		})
	}
}

func checkTake(t *testing.T, cli *clientv3.Client, ep string, o Options) {
	rev := put(t, cli, 200)
	dir := o.Dir
	m, err := Take(context.Background(), cli, ep, o)
	require.NoError(t, err)
	_, err = Verify(m.Path())
	require.NoError(t, err, "etcd's trailer and a full open")

	require.GreaterOrEqual(t, m.Revision, rev, "every acknowledged write is in the snapshot")
	require.Equal(t, 200, m.TotalKeys)
	require.NotEmpty(t, m.ClusterID)
	require.Equal(t, "default", m.TakenBy)
	require.Len(t, m.Members, 1)
	require.NotEmpty(t, m.EtcdVersion)
	fi, err := os.Stat(m.Path())
	require.NoError(t, err)
	require.Equal(t, fi.Size(), m.Size)
	require.True(t, HasTrailer(fi.Size()))
	require.NoError(t, checkSHA256(m.Path(), m.SHA256))

	// Nothing temporary is left behind, and the metadata lists the file.
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 2)
	listed, err := List(dir)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	require.Equal(t, m.File, listed[0].File)
	age, ok := LastSnapshotAge(dir, time.Now())
	require.True(t, ok)
	require.Less(t, age, time.Minute)
}

func TestVerifyRefusesTruncatedAndTamperedFiles(t *testing.T) {
	cli, ep := startEtcd(t)
	put(t, cli, 100)
	dir := t.TempDir()
	m, err := Take(context.Background(), cli, ep, Options{Dir: dir, KeepCount: 5})
	require.NoError(t, err)
	good, err := os.ReadFile(m.Path())
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		edit func([]byte) []byte
		want string
	}{
		"truncated by one byte":         {func(b []byte) []byte { return b[:len(b)-1] }, "truncated or not an etcd snapshot"},
		"truncated to half":             {func(b []byte) []byte { return b[:len(b)/2] }, "truncated or not an etcd snapshot"},
		"cut to whole sectors + 32":     {func(b []byte) []byte { return b[:len(b)-512] }, "does not match the sha256"},
		"a byte flipped in the db":      {func(b []byte) []byte { c := append([]byte(nil), b...); c[len(c)/2] ^= 0xff; return c }, "does not match the sha256"},
		"the trailer flipped":           {func(b []byte) []byte { c := append([]byte(nil), b...); c[len(c)-1] ^= 1; return c }, "does not match the sha256"},
		"a raw db file without trailer": {func(b []byte) []byte { return b[:len(b)-TrailerSize] }, "truncated or not an etcd snapshot"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.db")
			require.NoError(t, os.WriteFile(p, tc.edit(good), 0o600))
			_, err := Verify(p)
			require.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("the metadata's sha256 catches a swapped file", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "x.db")
		require.NoError(t, os.WriteFile(other, good, 0o600))
		b, _ := os.ReadFile(MetaPath(m.Path()))
		require.NoError(t, os.WriteFile(MetaPath(other), []byte(string(b[:len(b)-2])+"\n}"), 0o600))
		_, _, _, err := Open(other, t.TempDir(), nil)
		require.NoError(t, err, "an identical copy with its metadata opens")
		flipped := append([]byte(nil), good...)
		flipped[100] ^= 1
		require.NoError(t, os.WriteFile(other, flipped, 0o600))
		_, _, _, err = Open(other, t.TempDir(), nil)
		require.ErrorContains(t, err, "its metadata")
	})
}

func TestGzipSnapshotRoundTrip(t *testing.T) {
	cli, ep := startEtcd(t)
	rev := put(t, cli, 300)
	dir := t.TempDir()
	m, err := Take(context.Background(), cli, ep, Options{Dir: dir, Gzip: true, KeepCount: 5})
	require.NoError(t, err)
	require.True(t, m.Gzip)
	require.Contains(t, m.File, ".db.gz")
	require.Less(t, m.Size, m.DBSize, "300 similar values compress")

	f, err := os.Open(m.Path())
	require.NoError(t, err)
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	n, err := io.Copy(io.Discard, zr)
	require.NoError(t, err)
	f.Close()
	require.Equal(t, m.DBSize, n)

	scratch := t.TempDir()
	raw, st, cleanup, err := Open(m.Path(), scratch, nil)
	require.NoError(t, err)
	require.GreaterOrEqual(t, st.Revision, rev)
	require.FileExists(t, raw)
	cleanup()
	require.NoFileExists(t, raw)

	// A truncated gzip file is refused.
	b, _ := os.ReadFile(m.Path())
	bad := filepath.Join(t.TempDir(), "bad.db.gz")
	require.NoError(t, os.WriteFile(bad, b[:len(b)/2], 0o600))
	_, _, _, err = Open(bad, scratch, nil)
	require.Error(t, err)
	left, _ := os.ReadDir(scratch)
	require.Empty(t, left, "no decompressed leftovers after a refusal")
}

func TestRetentionPrunesAfterANewSnapshot(t *testing.T) {
	cli, ep := startEtcd(t)
	dir := t.TempDir()
	clock := time.Now().Add(-10 * 24 * time.Hour)
	now := func() time.Time { return clock }
	var files []string
	for i := 0; i < 5; i++ {
		put(t, cli, 10)
		m, err := Take(context.Background(), cli, ep, Options{Dir: dir, KeepCount: 3, KeepDays: 7, Now: now})
		require.NoError(t, err)
		files = append(files, m.File)
		clock = clock.Add(2 * 24 * time.Hour) // snapshots 10, 8, 6, 4, 2 days ago
	}
	clock = time.Now()
	put(t, cli, 1)
	m, err := Take(context.Background(), cli, ep, Options{Dir: dir, KeepCount: 3, KeepDays: 7, Now: now})
	require.NoError(t, err)
	left, err := List(dir)
	require.NoError(t, err)
	var got []string
	for _, l := range left {
		got = append(got, l.File)
	}
	// Count keeps the newest 3 (now, 2 and 4 days ago); age drops nothing more of those.
	require.Equal(t, []string{m.File, files[4], files[3]}, got)
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 6, "each kept snapshot has exactly its metadata beside it")
}

// A snapshot taken while a writer creates keys and overwrites old ones (which makes bbolt free and reuse pages
// during the copy) fails no write and holds every write acknowledged before it started, for each way of
// taking it.
func TestSnapshotUnderAWriterFailsNoWrite(t *testing.T) {
	for _, way := range []string{"rpc", "local+child"} {
		t.Run(way, func(t *testing.T) {
			e, cli, ep := startEtcdServer(t)
			o := Options{Dir: t.TempDir(), KeepCount: 5}
			if way != "rpc" {
				o.Source, o.Seal = LocalSource{Server: e.Server}, testChild("seal").Seal
			}
			value := strings.Repeat("x", 4096)
			for i := 0; i < 2000; i++ {
				_, err := cli.Put(context.Background(), fmt.Sprintf("/k/%05d", i), value)
				require.NoError(t, err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var ok, failed atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err := cli.Put(wctx, fmt.Sprintf("/w/%d", i), "v")
					if err == nil {
						_, err = cli.Put(wctx, fmt.Sprintf("/k/%05d", i%2000), value+strconv.Itoa(i))
					}
					wcancel()
					if err != nil {
						failed.Add(1)
					} else {
						ok.Add(1)
					}
				}
			}()
			time.Sleep(200 * time.Millisecond)
			before := ok.Load()
			m, err := Take(context.Background(), cli, ep, o)
			require.NoError(t, err)
			time.Sleep(200 * time.Millisecond)
			cancel()
			wg.Wait()
			require.Zero(t, failed.Load())
			require.Greater(t, ok.Load(), before, "writes went on during the snapshot")
			keys := snapshotKeys(t, m.Path())
			for i := int64(0); i < before; i++ {
				require.Contains(t, keys, fmt.Sprintf("/w/%d", i), "a write acknowledged before the snapshot")
			}
			for i := 0; i < 2000; i++ {
				require.Contains(t, keys, fmt.Sprintf("/k/%05d", i))
			}
		})
	}
}

// snapshotKeys are the keys of every revision in a snapshot file (etcd's "key" bucket, read with bbolt).
func snapshotKeys(t *testing.T, path string) map[string]bool {
	t.Helper()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	keys := map[string]bool{}
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("key")).ForEach(func(_, v []byte) error {
			var kv mvccpb.KeyValue
			if err := kv.Unmarshal(v); err != nil {
				return err
			}
			keys[string(kv.Key)] = true
			return nil
		})
	}))
	return keys
}

// LocalSource hands the data pages over to Seal: its part file holds only the two meta pages, and the rest
// is the member's own db file.
func TestLocalSourceLeavesTheDataPagesToSeal(t *testing.T) {
	e, cli, _ := startEtcdServer(t)
	put(t, cli, 100)
	part, err := LocalSource{Server: e.Server}.Copy(context.Background(), t.TempDir())
	require.NoError(t, err)
	defer part.release()
	require.NotNil(t, part.Rest, "the data pages are left to Seal")
	fi, err := os.Stat(part.Path)
	require.NoError(t, err)
	require.Equal(t, int64(2*os.Getpagesize()), fi.Size(), "two meta pages")
	require.Equal(t, fi.Size(), part.RestOffset)
	require.Positive(t, part.RestLength)
	m, err := Seal(context.Background(), part, &Meta{Time: time.Now()}, Options{Dir: filepath.Dir(part.Path)})
	require.NoError(t, err)
	require.Equal(t, part.RestOffset+part.RestLength+TrailerSize, m.Size)
	require.Equal(t, 100, m.TotalKeys)
}

func TestSchedulerTakesOneSnapshotPerIntervalAcrossMembers(t *testing.T) {
	cli, ep := startEtcd(t)
	put(t, cli, 10)
	var taken atomic.Int64
	var mu sync.Mutex
	dirs := map[string]bool{}
	run := func(member string) {
		dir := filepath.Join(t.TempDir(), member)
		s := &Scheduler{Client: cli, Endpoint: ep, Member: member, Interval: time.Hour, Options: Options{Dir: dir, KeepCount: 5}, Log: zap.NewNop()}
		m, err := s.Tick(context.Background())
		require.NoError(t, err)
		if m != nil {
			taken.Add(1)
			mu.Lock()
			dirs[member] = true
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); run(fmt.Sprintf("etcd-%d", i)) }()
	}
	wg.Wait()
	require.EqualValues(t, 1, taken.Load(), "three schedulers at once take one snapshot")
	last, err := ReadLast(context.Background(), cli)
	require.NoError(t, err)
	require.NotNil(t, last)
	require.True(t, dirs[last.Member])

	// Within the interval nobody takes another; once the recorded one is an interval old, one is due again.
	run("etcd-0")
	require.EqualValues(t, 1, taken.Load())
	require.NoError(t, RecordLast(context.Background(), cli, Last{Time: time.Now().Add(-2 * time.Hour), Member: "etcd-2"}))
	run("etcd-1")
	require.EqualValues(t, 2, taken.Load())
}
