// Package status reports a member and its cluster as seen from that member, and implements the post-start
// readiness check.
package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/maintenance"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"
)

// Member is one member of the live cluster with its health.
type Member struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	Learner    bool     `json:"learner"`
	Leader     bool     `json:"leader"`
	Healthy    bool     `json:"healthy"`
	RaftIndex  uint64   `json:"raft_index,omitempty"`
	RaftTerm   uint64   `json:"raft_term,omitempty"`
	DBSize     int64    `json:"db_size_bytes,omitempty"`
	// DBSizeInUse is the part of the db file holding data; the rest is free pages a defragmentation gives back.
	DBSizeInUse int64 `json:"db_size_in_use_bytes,omitempty"`
	// Fragmentation is 1 - in use / db size.
	Fragmentation float64 `json:"fragmentation,omitempty"`
	// Alarms are the alarms raised for this member (NOSPACE, CORRUPT).
	Alarms  []string `json:"alarms,omitempty"`
	Version string   `json:"version,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Report is the cluster as seen from one endpoint.
type Report struct {
	Endpoint  string   `json:"endpoint"`
	ClusterID string   `json:"cluster_id"`
	LeaderID  string   `json:"leader_id"`
	Healthy   bool     `json:"healthy"`
	Members   []Member `json:"members"`
	// Consul is what the local consul agent knows of the service, with etcd.consul.enabled (see AddConsul).
	Consul *ConsulView `json:"consul,omitempty"`
	// MovedAside lists this member's moved-aside copies of its data dir, oldest first (see AddMovedAside).
	MovedAside []membership.MovedAsideCopy `json:"moved_aside,omitempty"`
	// MovedAsideError says why the copies could not be listed.
	MovedAsideError string `json:"moved_aside_error,omitempty"`
	// Conflict is set when this member's start found two clusters of the deployment holding client writes.
	Conflict string `json:"conflict,omitempty"`
	// Maintenance is what this VM's maintenance loop last did (see AddMaintenance).
	Maintenance *maintenance.State `json:"maintenance,omitempty"`
	// AlarmError is set when the alarms could not be listed.
	AlarmError string `json:"alarm_error,omitempty"`
	// Backup is the snapshots view (see AddBackup).
	Backup *BackupView `json:"backup,omitempty"`
}

// AddMovedAside lists the moved-aside copies next to this member's data dir (a local look at the disk; a
// failure is reported in the report, not returned).
func (r *Report) AddMovedAside(dataDir string) {
	copies, err := membership.ListMovedAside(dataDir)
	if err != nil {
		r.MovedAsideError = err.Error()
	}
	r.MovedAside = copies
}

// ConsulView is the etcd service as the local consul agent reports it.
type ConsulView struct {
	Service   string               `json:"service"` // <service>.service.<domain>
	AgentURL  string               `json:"agent_url"`
	Instances []peers.Registration `json:"instances,omitempty"`
	Error     string               `json:"error,omitempty"`
}

// AddConsul asks the local consul agent which members it knows and how their checks are (a failure is
// reported in the view, not returned: the cluster's status stands on its own).
func (r *Report) AddConsul(ctx context.Context, src *peers.Consul) {
	v := &ConsulView{Service: src.ServiceName(), AgentURL: src.Config.Etcd.Consul.AgentURL}
	regs, err := src.Known(ctx)
	if err != nil {
		v.Error = err.Error()
	}
	v.Instances = regs
	r.Consul = v
}

// Gather reads the member list through endpoint and asks every member for its status.
func Gather(ctx context.Context, c *config.Config, endpoint string) (*Report, error) {
	cli, err := etcdclient.New(c, []string{endpoint}, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(lctx, clientv3.WithSerializable())
	if err != nil {
		return nil, fmt.Errorf("listing members through %s: %w", endpoint, err)
	}
	r := &Report{Endpoint: endpoint, ClusterID: strconv.FormatUint(list.Header.ClusterId, 16)}
	var leader uint64
	for _, m := range list.Members {
		mem := Member{ID: strconv.FormatUint(m.ID, 16), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner}
		if len(m.ClientURLs) > 0 {
			mc, err := etcdclient.New(c, m.ClientURLs[:1], 3*time.Second)
			if err == nil {
				sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
				st, serr := mc.Status(sctx, m.ClientURLs[0])
				scancel()
				mc.Close()
				err = serr
				if serr == nil {
					mem.Healthy = st.Leader != 0 && len(st.Errors) == 0
					mem.RaftIndex, mem.RaftTerm, mem.DBSize, mem.Version = st.RaftIndex, st.RaftTerm, st.DbSize, st.Version
					mem.DBSizeInUse = st.DbSizeInUse
					if st.DbSize > 0 {
						mem.Fragmentation = 1 - float64(st.DbSizeInUse)/float64(st.DbSize)
					}
					if st.Leader != 0 {
						leader = st.Leader
					}
					if len(st.Errors) > 0 {
						mem.Error = strings.Join(st.Errors, "; ")
					}
				}
			}
			if err != nil {
				mem.Error = err.Error()
			}
		} else {
			mem.Error = "added but never started"
		}
		r.Members = append(r.Members, mem)
	}
	healthyVoters, voters := 0, 0
	for i := range r.Members {
		if r.Members[i].ID == strconv.FormatUint(leader, 16) {
			r.Members[i].Leader = true
			r.LeaderID = r.Members[i].ID
		}
		if !r.Members[i].Learner {
			voters++
			if r.Members[i].Healthy {
				healthyVoters++
			}
		}
	}
	addAlarms(ctx, cli, r)
	sort.Slice(r.Members, func(i, j int) bool { return r.Members[i].Name < r.Members[j].Name })
	r.Healthy = leader != 0 && healthyVoters >= voters/2+1
	r.Conflict, _ = membership.ReadConflict(c)
	return r, nil
}

// Print writes r as a table.
func Print(w io.Writer, r *Report) {
	health := "healthy"
	if !r.Healthy {
		health = "UNHEALTHY"
	}
	fmt.Fprintf(w, "cluster %s via %s: %s, %d members\n", r.ClusterID, r.Endpoint, health, len(r.Members))
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tHEALTH\tRAFT INDEX\tDB SIZE\tIN USE\tFRAG\tALARMS\tPEER URLS\tCLIENT URLS")
	for _, m := range r.Members {
		role := "follower"
		switch {
		case m.Leader:
			role = "leader"
		case m.Learner:
			role = "learner"
		}
		h := "ok"
		if !m.Healthy {
			h = "down"
			if m.Error != "" {
				h = "down: " + m.Error
			}
		}
		alarms := strings.Join(m.Alarms, ",")
		if alarms == "" {
			alarms = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%.0f%%\t%s\t%s\t%s\n", m.ID, m.Name, role, h, m.RaftIndex,
			maintenance.Bytes(m.DBSize), maintenance.Bytes(m.DBSizeInUse), 100*m.Fragmentation, alarms,
			strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","))
	}
	tw.Flush()
	if r.AlarmError != "" {
		fmt.Fprintf(w, "alarms unknown: %s\n", r.AlarmError)
	}
	if r.Consul != nil {
		printConsul(w, r.Consul)
	}
	if r.Conflict != "" {
		fmt.Fprintf(w, "\nCONFLICT: %s\n", r.Conflict)
	}
	if r.Maintenance != nil {
		printMaintenance(w, r.Maintenance)
	}
	if r.Backup != nil {
		printBackup(w, r.Backup)
	}
	PrintMovedAside(w, r)
}

// PrintMovedAside prints the report's moved-aside copies (nothing when there are none).
func PrintMovedAside(w io.Writer, r *Report) {
	if len(r.MovedAside) == 0 && r.MovedAsideError == "" {
		return
	}
	fmt.Fprintf(w, "\nmoved-aside copies of this member's data dir: %d\n", len(r.MovedAside))
	if r.MovedAsideError != "" {
		fmt.Fprintf(w, "  %s\n", r.MovedAsideError)
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "MOVED AT\tREASON\tSIZE\tPATH")
	for _, c := range r.MovedAside {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Time.UTC().Format(time.RFC3339), c.Reason, humanBytes(c.Bytes), c.Path)
	}
	tw.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func printConsul(w io.Writer, v *ConsulView) {
	fmt.Fprintf(w, "\nconsul service %s (agent %s): %d registered\n", v.Service, v.AgentURL, len(v.Instances))
	if v.Error != "" {
		fmt.Fprintf(w, "  %s\n", v.Error)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tCHECK\tOUTPUT")
	for _, in := range v.Instances {
		fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\n", in.ID, in.Address, in.Port, in.Status, in.Output)
	}
	tw.Flush()
}

// ErrNotReady is returned by WaitReady when the timeout passes.
var ErrNotReady = errors.New("member not ready")

// WaitReady waits until this member (its own client URL) is a started voting member of a cluster with a
// leader and a linearizable read through it succeeds. It reports what it is waiting for through progress.
func WaitReady(ctx context.Context, c *config.Config, timeout time.Duration, progress func(string)) error {
	self := c.Self()
	last := ""
	err := retry.Poll(ctx, retry.Options{Interval: 500 * time.Millisecond, Timeout: timeout}, func(ctx context.Context) error {
		// A conflict needs the operator; waiting out the timeout would only hide it.
		if conflict, _ := membership.ReadConflict(c); conflict != "" {
			return retry.Stop(fmt.Errorf("%w: %s", ErrNotReady, conflict))
		}
		why := readiness(ctx, c, self.ClientURL)
		if why == "" {
			return nil
		}
		if why != last {
			progress(why)
			last = why
		}
		return errors.New(why)
	})
	var gu *retry.GaveUp
	switch {
	case errors.As(err, &gu) && errors.Is(gu.Cause, retry.ErrTimeout):
		return fmt.Errorf("%w after %s: %s", ErrNotReady, timeout, last)
	case errors.As(err, &gu):
		return gu.Cause
	}
	return err
}

// readiness returns "" when ready, else what is missing.
func readiness(ctx context.Context, c *config.Config, endpoint string) string {
	cli, err := etcdclient.New(c, []string{endpoint}, 2*time.Second)
	if err != nil {
		return err.Error()
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := cli.Status(sctx, endpoint)
	if err != nil {
		return fmt.Sprintf("waiting for etcd to answer on %s (%v)", endpoint, err)
	}
	if st.IsLearner {
		return "waiting for this learner to be promoted to a voting member"
	}
	if st.Leader == 0 {
		return "waiting for the cluster to elect a leader"
	}
	// A linearizable read through this member only succeeds once it has applied everything the leader had
	// committed when the read started: it proves quorum and catch-up at once.
	if _, err := cli.Get(sctx, "/etcd-release/readiness-probe"); err != nil {
		return fmt.Sprintf("waiting for a quorum read through this member to succeed (%v)", err)
	}
	return ""
}
