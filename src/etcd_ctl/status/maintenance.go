package status

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/maintenance"
)

// addAlarms attaches the cluster's raised alarms to their members (a failure is reported on the report's
// endpoint member, not returned: the rest of the status stands on its own).
func addAlarms(ctx context.Context, cli *clientv3.Client, r *Report) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.AlarmList(actx)
	if err != nil {
		r.AlarmError = err.Error()
		return
	}
	for _, a := range resp.Alarms {
		id := strconv.FormatUint(a.MemberID, 16)
		for i := range r.Members {
			if r.Members[i].ID == id {
				r.Members[i].Alarms = append(r.Members[i].Alarms, a.Alarm.String())
			}
		}
	}
}

// AddMaintenance attaches what this VM's maintenance loop last recorded (nothing when it has not run).
func (r *Report) AddMaintenance(c *config.Config) {
	st, err := maintenance.ReadState(c)
	if err != nil {
		st = &maintenance.State{Error: "reading " + maintenance.StatePath(c) + ": " + err.Error()}
	}
	r.Maintenance = st
}

func printMaintenance(w io.Writer, s *maintenance.State) {
	who := "member " + s.Coordinator + "'s etcd_ctl coordinates"
	if s.Acting {
		who = "this etcd_ctl coordinates"
	}
	fmt.Fprintf(w, "\nmaintenance (this VM's etcd_ctl, %s): %s\n", s.Updated.Format(time.RFC3339), who)
	if s.Nospace {
		fmt.Fprintln(w, "  NOSPACE alarm raised: recovery (compact, defragment one member at a time, disarm) in progress")
	}
	fmt.Fprintf(w, "  last decision: %s: %s\n", s.LastAction, s.LastReason)
	if d := s.LastDefrag; d != nil {
		fmt.Fprintf(w, "  last defragmentation: %s %s → %s (reclaimed %s) in %s\n", d.Member, maintenance.Bytes(d.Before),
			maintenance.Bytes(d.After), maintenance.Bytes(d.Reclaimed()), d.Took.Round(time.Millisecond))
	}
	if s.QuotaWarning != "" {
		fmt.Fprintf(w, "  WARNING: %s\n", s.QuotaWarning)
	}
	if s.Error != "" {
		fmt.Fprintf(w, "  last error: %s\n", s.Error)
	}
}
