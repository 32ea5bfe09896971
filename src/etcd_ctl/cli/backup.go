package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/recovery"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newSnapshotCmd() *cobra.Command {
	var path, dir, endpoint string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Take a verified snapshot of the cluster now (from this member) into the backup dir or --dir",
		Long: `Stream a snapshot from this member (or --endpoint) to a temporary file, fsync it, verify etcd's sha256
trailer and open the whole database, then rename it into place with a metadata file beside it (revision,
cluster ID, members, etcd version, time, size, sha256). etcd.backup.gzip and the retention of
etcd.backup.keep_count / keep_days apply. The snapshot is recorded as the cluster's last one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			if endpoint == "" {
				endpoint = c.Self().ClientURL
			}
			if dir == "" {
				dir = c.BackupDir()
			}
			lg := newLogger(c.Etcd.EnableDebugLogging)
			defer lg.Sync()
			ctx, cancel := signalContext()
			defer cancel()
			m, err := backup.TakeNow(ctx, c, endpoint, dir, lg)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), m)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\nrevision %d, %d keys, %d bytes, sha256 %s, cluster %s, taken from %s\n", m.Path(), m.Revision, m.TotalKeys, m.Size, m.SHA256, m.ClusterID, m.TakenBy)
			return nil
		},
	}
	addConfigFlag(cmd, &path)
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write to (default: etcd.backup.dir, /var/vcap/store/etcd-backups)")
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "client URL of the member to stream from (default: this member)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the snapshot's metadata as JSON")
	return cmd
}

// newSealSnapshotCmd is the child the snapshot scheduler starts to seal a snapshot it copied (see
// backup.ChildSealer); operators never run it.
func newSealSnapshotCmd() *cobra.Command {
	return &cobra.Command{
		Use:    backup.SealCommand,
		Short:  "Seal a copied snapshot under idle CPU scheduling (started by the snapshot scheduler; request on stdin)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lg := newLogger(false).Named("backup")
			defer lg.Sync()
			ctx, cancel := signalContext()
			defer cancel()
			return backup.RunSealChild(ctx, cmd.InOrStdin(), cmd.OutOrStdout(), lg)
		},
	}
}

func newRestoreCmd() *cobra.Command {
	var path, latestIn, fromS3 string
	o := recovery.RestoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore --snapshot FILE",
		Short: "Replace this member's data with a snapshot, as one member of a new cluster (run on every member, etcd stopped everywhere)",
		Long: `Verify the snapshot (its metadata's sha256, etcd's sha256 trailer, a full open of the database), then
restore it with etcd's snapshot restore library as this member of a new cluster made of every desired
member (new cluster token: the deployment's token plus a nonce, by default the start of the snapshot's
sha256, so every member computes the same cluster). The revision is bumped by --bump-revision and everything
before it is marked compacted, so a client watching from an old revision is told "compacted".

It refuses while etcd runs on this VM or any peer still serves a cluster; it refuses to replace a data dir
holding a member unless --force, and then moves that data aside (never deletes it). etcd is not started:
run 'monit start etcd' on every VM afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			if o.Snapshot, err = restoreSnapshotPath(c, restoreSource{file: o.Snapshot, latestIn: latestIn, fromS3: fromS3}, cmd.OutOrStdout()); err != nil {
				return err
			}
			lg := newLogger(c.Etcd.EnableDebugLogging)
			defer lg.Sync()
			ctx, cancel := signalContext()
			defer cancel()
			res, err := recovery.Restore(ctx, c, o, lg)
			if err != nil {
				return err
			}
			if res.MovedAside != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "the previous data dir is kept at %s\n", res.MovedAside)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored revision %d (now %d, older revisions compacted) into %s as a member of %s (token %s)\nnext: run this on every member with the same snapshot, then 'monit start etcd' on each\n",
				res.Revision, res.NewRevision, c.Paths.DataDir, res.InitialCluster, res.Token)
			return nil
		},
	}
	addConfigFlag(cmd, &path)
	cmd.Flags().StringVar(&o.Snapshot, "snapshot", "", "snapshot file (.db or .db.gz, with or without its .json metadata beside it)")
	cmd.Flags().StringVar(&latestIn, "latest-in", "", "restore the newest snapshot (by its metadata) in this directory, e.g. a bbr artifact directory")
	cmd.Flags().StringVar(&fromS3, "from-s3", "", "download this snapshot file (or \"latest\") from etcd.backup.s3 into the backup dir, then restore it")
	cmd.Flags().BoolVar(&o.Force, "force", false, "replace a data dir that holds a member (it is moved aside, not deleted)")
	cmd.Flags().StringVar(&o.Nonce, "nonce", "", "makes the new cluster's identity; the same on every member (default: the start of the snapshot's sha256); set a new one to restore the same snapshot again")
	cmd.Flags().Uint64Var(&o.RevisionBump, "bump-revision", recovery.DefaultRevisionBump, "how far past the snapshot's revision the restored cluster starts (more than the writes made after the snapshot)")
	return cmd
}

func newRecoverFromSurvivorCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "recover-from-survivor",
		Short: "After a permanent quorum loss: make this member, whose data survived, a one-member cluster with its data (etcd stopped here)",
		Long: `Run on the one VM whose member data survived, with etcd stopped there ('monit stop etcd'). It refuses if
etcd runs here, if this VM has no member data, or if any peer still answers as part of a cluster (then quorum
is not lost). It starts this member once with etcd's force-new-cluster (the membership becomes this member
alone; every key is kept), waits until it leads, and stops it. Then 'monit start etcd' here, and on every
other VM 'monit stop etcd; rm -rf /var/vcap/store/etcd/*; monit start etcd': they join as learners.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			lg := newLogger(c.Etcd.EnableDebugLogging)
			defer lg.Sync()
			ctx, cancel := signalContext()
			defer cancel()
			res, err := recovery.RecoverFromSurvivor(ctx, c, lg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "member %s is now the only member of cluster %s, with its data\n", res.MemberID, res.ClusterID)
			if len(res.Silent) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "these peers gave no answer; make sure etcd is stopped there before they rejoin: %s\n", strings.Join(res.Silent, ", "))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "next: 'monit start etcd' here; then on every other etcd VM: monit stop etcd; rm -rf %s/*; monit start etcd\n", c.Paths.DataDir)
			return nil
		},
	}
	addConfigFlag(cmd, &path)
	return cmd
}

// restoreSource is where `restore` takes its snapshot from: exactly one of a file, the newest in a directory,
// or a download from the off-VM store.
type restoreSource struct{ file, latestIn, fromS3 string }

// check is the rule for the three flags: exactly one.
func (r restoreSource) check() error {
	n := 0
	for _, v := range []string{r.file, r.latestIn, r.fromS3} {
		if v != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return fmt.Errorf("--snapshot is required: the snapshot file to restore (e.g. /var/vcap/store/etcd-backups/etcd-snapshot-….db), or --latest-in DIR, or --from-s3 FILE|latest")
	case n > 1:
		return fmt.Errorf("give one of --snapshot, --latest-in, --from-s3")
	}
	return nil
}

// restoreSnapshotPath resolves r to a local snapshot file, downloading it when it comes from the off-VM store.
func restoreSnapshotPath(c *config.Config, r restoreSource, out io.Writer) (string, error) {
	if err := r.check(); err != nil {
		return "", err
	}
	switch {
	case r.fromS3 != "":
		remote, err := backup.RemoteFor(c)
		if err != nil {
			return "", err
		}
		if remote == nil {
			return "", fmt.Errorf("--from-s3: etcd.backup.s3.endpoint is empty, so there is no off-VM store to download from")
		}
		ctx, cancel := signalContext()
		defer cancel()
		p, err := remote.Download(ctx, r.fromS3, c.BackupDir())
		if err != nil {
			return "", fmt.Errorf("downloading %s (nothing was changed): %w", remote.Where(r.fromS3), err)
		}
		fmt.Fprintf(out, "downloaded %s to %s\n", remote.Where(filepath.Base(p)), p)
		return p, nil
	case r.latestIn != "":
		m, err := backup.Latest(r.latestIn)
		if err != nil {
			return "", err
		}
		if m == nil {
			return "", fmt.Errorf("--latest-in %s: no snapshot with metadata there (etcd-snapshot-*.json); nothing was changed", r.latestIn)
		}
		return m.Path(), nil
	}
	return r.file, nil
}
