package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup/s3"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/testkit/toolcache"
)

const s3Access, s3Secret = "etcd-backup", "test-only-secret-key"

// startSeaweedS3 runs a real SeaweedFS (`weed server`: master, volume server, filer and S3 gateway in one
// process, built from its module source by toolcache) on 127.0.0.1 and returns its S3 endpoint.
func startSeaweedS3(t *testing.T) string {
	root, err := toolcache.RepoRoot()
	require.NoError(t, err)
	weed, err := toolcache.SeaweedFS.Path(root)
	require.NoError(t, err, "building SeaweedFS from its module source")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s3.json")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`{"identities":[{"name":"etcd","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, s3Access, s3Secret)), 0o600))
	base := 20000 + rand.IntN(20000) // weed also listens on each port + 10000 for gRPC
	port := func(i int) string { return strconv.Itoa(base + i) }
	cmd := exec.Command(weed, "server", "-dir="+filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port="+port(0), "-volume.port="+port(1), "-filer", "-filer.port="+port(2), "-s3", "-s3.port="+port(3),
		"-s3.config="+cfg, "-master.volumeSizeLimitMB=64", "-volume.max=20")
	logf, err := os.Create(filepath.Join(dir, "weed.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			t.Logf("weed log:\n%s", lastLines(string(b), 40))
		}
	})
	endpoint := "http://127.0.0.1:" + port(3)
	cli, err := s3.New(endpoint, "etcd-backups", "", s3Access, s3Secret, "")
	require.NoError(t, err)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = cli.CreateBucket(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	require.NoError(t, err, "creating the bucket through the S3 gateway")
	return endpoint
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestOffVMCopiesThroughARealS3Server: with etcd.backup.s3.*, every snapshot is uploaded with its metadata to a
// real SeaweedFS S3 gateway, remote retention keeps keep_count copies, and after the VM's disk is gone
// `etcd_ctl restore --from-s3 latest` downloads, verifies and restores it.
func TestOffVMCopiesThroughARealS3Server(t *testing.T) {
	endpoint := startSeaweedS3(t)
	c := newCluster(t, 1, withTLS(true, true))
	c.layout.Tweak = func(_ int, p *config.Properties) {
		p.Backup.S3 = config.BackupS3Properties{Endpoint: endpoint, Bucket: "etcd-backups", Prefix: "etcd/" + c.layout.Deployment,
			Region: "us-east-1", AccessKeyID: s3Access, SecretAccessKey: s3Secret, KeepCount: 2}
		p.Backup.Gzip = true
	}
	c.resize(1)
	c.startAll(1)
	var metas []backup.Meta
	for i := 0; i < 3; i++ {
		c.put(0, fmt.Sprintf("/s3/%d", i), "v")
		metas = append(metas, c.snapshot(0))
	}
	last := metas[2]
	require.Equal(t, "s3://etcd-backups/etcd/"+c.layout.Deployment+"/"+last.File, last.CopiedTo)
	remote, err := backup.RemoteFor(c.config(0))
	require.NoError(t, err)
	listed, err := remote.List(context.Background())
	require.NoError(t, err)
	require.Len(t, listed, 2, "remote keep_count 2")
	require.Equal(t, last.File, listed[0].File)
	require.Equal(t, last.SHA256, listed[0].SHA256)
	r := c.status(0)
	require.Equal(t, last.CopiedTo, r.Backup.Cluster.CopiedTo, "status shows where the last snapshot was copied")

	c.put(0, "/s3/after", "x")
	c.stop(0)
	// The VM's persistent disk is gone: data and local snapshots.
	require.NoError(t, os.RemoveAll(c.config(0).Paths.DataDir))
	require.NoError(t, os.RemoveAll(c.config(0).BackupDir()))
	out, err := c.ctl(0, "restore", "--from-s3", "latest")
	require.NoError(t, err, out)
	require.Contains(t, out, "downloaded "+last.CopiedTo)
	c.startAll(1)
	require.Equal(t, "v", c.get(0, "/s3/2"))
	require.Equal(t, "", c.get(0, "/s3/after"))

	// A copy altered in the store is refused before anything is restored.
	c.stop(0)
	b, err := os.ReadFile(filepath.Join(c.config(0).BackupDir(), last.File))
	require.NoError(t, err)
	bad := filepath.Join(t.TempDir(), last.File)
	require.NoError(t, os.WriteFile(bad, flipByte(b, len(b)/2), 0o600))
	cli, err := s3.New(endpoint, "etcd-backups", "", s3Access, s3Secret, "")
	require.NoError(t, err)
	require.NoError(t, cli.Put(context.Background(), "etcd/"+c.layout.Deployment+"/"+last.File, bad))
	require.NoError(t, os.RemoveAll(c.config(0).BackupDir()))
	out, err = c.ctl(0, "restore", "--from-s3", last.File, "--force")
	require.Error(t, err)
	require.Contains(t, out, "its metadata")
}
