package status

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/backup"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
)

// BackupView is what `status` shows of snapshots: the newest one in this member's backup dir and the cluster's
// record of its most recent one (which any member may have taken).
type BackupView struct {
	Dir string `json:"dir"`
	// IntervalInMinutes is etcd.backup.interval_in_minutes (0: scheduled snapshots off).
	IntervalInMinutes int `json:"interval_in_minutes"`
	// Local is the newest snapshot on this VM, with its age in seconds.
	Local           *backup.Meta `json:"local,omitempty"`
	LocalAgeSeconds int64        `json:"local_age_seconds,omitempty"`
	// Cluster is the cluster's record of its most recent snapshot.
	Cluster           *backup.Last `json:"cluster,omitempty"`
	ClusterAgeSeconds int64        `json:"cluster_age_seconds,omitempty"`
	Error             string       `json:"error,omitempty"`
}

// AddBackup fills r.Backup; failures are reported in the view, not returned.
func (r *Report) AddBackup(ctx context.Context, c *config.Config, now time.Time) {
	v := &BackupView{Dir: c.BackupDir(), IntervalInMinutes: c.Etcd.Backup.IntervalInMinutes}
	r.Backup = v
	m, err := backup.Latest(v.Dir)
	if err != nil {
		v.Error = err.Error()
	} else if m != nil {
		v.Local, v.LocalAgeSeconds = m, int64(now.Sub(m.Time).Seconds())
	}
	cli, err := etcdclient.New(c, []string{r.Endpoint}, 3*time.Second)
	if err != nil {
		v.Error = err.Error()
		return
	}
	defer cli.Close()
	last, err := backup.ReadLast(ctx, cli)
	if err != nil {
		v.Error = err.Error()
		return
	}
	if last != nil {
		v.Cluster, v.ClusterAgeSeconds = last, int64(now.Sub(last.Time).Seconds())
	}
}

func printBackup(w io.Writer, v *BackupView) {
	sched := fmt.Sprintf("every %d minutes", v.IntervalInMinutes)
	if v.IntervalInMinutes == 0 {
		sched = "scheduled snapshots off"
	}
	fmt.Fprintf(w, "\nsnapshots (%s, dir %s):\n", sched, v.Dir)
	if v.Cluster != nil {
		fmt.Fprintf(w, "  cluster's last: %s (%s ago) revision %d by %s: %s\n", v.Cluster.Time.UTC().Format(time.RFC3339),
			time.Duration(v.ClusterAgeSeconds)*time.Second, v.Cluster.Revision, v.Cluster.Member, v.Cluster.File)
	} else {
		fmt.Fprintln(w, "  cluster's last: none recorded")
	}
	if m := v.Local; m != nil {
		fmt.Fprintf(w, "  on this VM:     %s (%s ago) revision %d, %d bytes, sha256 %s: %s\n", m.Time.UTC().Format(time.RFC3339),
			time.Duration(v.LocalAgeSeconds)*time.Second, m.Revision, m.Size, m.SHA256, m.Path())
	} else {
		fmt.Fprintln(w, "  on this VM:     none")
	}
	if v.Local != nil && v.Local.CopiedTo != "" {
		fmt.Fprintf(w, "  copied to:      %s\n", v.Local.CopiedTo)
	}
	if v.Error != "" {
		fmt.Fprintf(w, "  %s\n", v.Error)
	}
}
