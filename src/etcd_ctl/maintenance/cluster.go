package maintenance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
)

// statusTimeout bounds one member's status request.
const statusTimeout = 3 * time.Second

// Gather reads the member list, every member's status and the alarms through cli.
func Gather(ctx context.Context, cli *clientv3.Client) (Cluster, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(lctx, clientv3.WithSerializable())
	if err != nil {
		return Cluster{}, fmt.Errorf("listing members: %w", err)
	}
	var c Cluster
	for _, pm := range list.Members {
		m := Member{ID: pm.ID, Name: pm.Name, Learner: pm.IsLearner}
		if m.Name == "" {
			m.Name = strconv.FormatUint(pm.ID, 16)
		}
		if len(pm.ClientURLs) == 0 {
			m.Err = "added but never started"
			c.Members = append(c.Members, m)
			continue
		}
		m.Endpoint = pm.ClientURLs[0]
		sctx, scancel := context.WithTimeout(ctx, statusTimeout)
		st, err := cli.Status(sctx, m.Endpoint)
		scancel()
		if err != nil {
			m.Err = err.Error()
		} else {
			m.Answering, m.Healthy = true, st.Leader != 0
			m.Leader = st.Leader == pm.ID
			m.DBSize, m.InUse, m.RaftIndex = st.DbSize, st.DbSizeInUse, st.RaftIndex
			if st.Header != nil && st.Header.Revision > c.Revision {
				c.Revision = st.Header.Revision
			}
		}
		c.Members = append(c.Members, m)
	}
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	alarms, err := cli.AlarmList(actx)
	if err != nil {
		return c, fmt.Errorf("listing alarms: %w", err)
	}
	for _, a := range alarms.Alarms {
		c.Alarms = append(c.Alarms, Alarm{MemberID: a.MemberID, Type: a.Alarm.String()})
	}
	return c, nil
}

// Member returns the member with id.
func (c Cluster) Member(id uint64) (Member, bool) {
	for _, m := range c.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// Endpoints are the client URLs of the members that have one.
func (c Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		if m.Endpoint != "" {
			eps = append(eps, m.Endpoint)
		}
	}
	return eps
}

// DefragResult is one member's defragmentation.
type DefragResult struct {
	Member      string        `json:"member"`
	Before      int64         `json:"db_size_before_bytes"`
	After       int64         `json:"db_size_after_bytes"`
	InUseBefore int64         `json:"in_use_before_bytes"`
	Took        time.Duration `json:"took_ns"`
	Reason      string        `json:"reason"`
}

// Reclaimed is how many bytes the defragmentation gave back.
func (r DefragResult) Reclaimed() int64 { return r.Before - r.After }

// DefragTimeout bounds one member's defragmentation (etcd rewrites the whole db file).
const DefragTimeout = 10 * time.Minute

// defragMember defragments one member and reads its size afterwards.
func defragMember(ctx context.Context, cli *clientv3.Client, m Member, reason string) (DefragResult, error) {
	r := DefragResult{Member: m.Name, Before: m.DBSize, InUseBefore: m.InUse, Reason: reason}
	dctx, cancel := context.WithTimeout(ctx, DefragTimeout)
	defer cancel()
	start := time.Now()
	if _, err := cli.Defragment(dctx, m.Endpoint); err != nil {
		return r, fmt.Errorf("defragmenting member %s (%s): %w", m.Name, m.Endpoint, err)
	}
	r.Took = time.Since(start)
	sctx, scancel := context.WithTimeout(ctx, statusTimeout)
	defer scancel()
	st, err := cli.Status(sctx, m.Endpoint)
	if err != nil {
		return r, fmt.Errorf("reading member %s's db size after defragmenting it: %w", m.Name, err)
	}
	r.After = st.DbSize
	return r, nil
}

// moveLeader asks the leader (from) to hand leadership to to.
// MoveLeader is only served by the leader, so it gets a client of its own.
func moveLeader(ctx context.Context, cfg *config.Config, from, to Member) error {
	lc, err := etcdclient.New(cfg, []string{from.Endpoint}, 5*time.Second)
	if err != nil {
		return err
	}
	defer lc.Close()
	mctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := lc.MoveLeader(mctx, to.ID); err != nil {
		return fmt.Errorf("moving leadership from %s to %s: %w", from.Name, to.Name, err)
	}
	return nil
}

// disarmNospace disarms every raised NOSPACE alarm.
func disarmNospace(ctx context.Context, cli *clientv3.Client, c Cluster) error {
	for _, a := range c.Alarms {
		if a.Type != pb.AlarmType_NOSPACE.String() {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := cli.AlarmDisarm(dctx, &clientv3.AlarmMember{MemberID: a.MemberID, Alarm: pb.AlarmType_NOSPACE})
		cancel()
		if err != nil {
			return fmt.Errorf("disarming the NOSPACE alarm of member %x: %w", a.MemberID, err)
		}
	}
	return nil
}

// compact compacts the keyspace to rev; WithCompactPhysical waits until the old revisions are removed from the
// backend, so the sizes read next show the freed pages.
func compact(ctx context.Context, cli *clientv3.Client, rev int64) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err := cli.Compact(cctx, rev, clientv3.WithCompactPhysical())
	if errors.Is(err, rpctypes.ErrCompacted) {
		return nil // someone (etcd's auto compaction) got there first
	}
	return err
}
