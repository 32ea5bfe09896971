package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
)

// Answer is what one peer told us.
type Answer int

const (
	// NoAnswer: timeout, DNS failure, TLS failure, or an etcd without a leader. Never taken as "no cluster".
	NoAnswer Answer = iota
	// Refused: the peer's host answered and refused the connection — nothing listens there.
	Refused
	// Healthy: a voting etcd member with a leader answered.
	Healthy
	// Learner: a learner with a leader answered: a cluster exists, but learners cannot serve our requests.
	Learner
	// Unregistered: consul DNS answered authoritatively that no such name exists (NXDOMAIN). With
	// etcd.consul.enabled a member's name exists exactly while its etcd_ctl is registered with a non-critical TTL
	// check, i.e. while etcd_ctl runs there (or stopped less than a TTL ago), so this is as positive a "nothing
	// here" as a refused connection. A DNS timeout or SERVFAIL stays NoAnswer.
	Unregistered
)

func (a Answer) String() string {
	switch a {
	case Refused:
		return "refused"
	case Healthy:
		return "healthy"
	case Learner:
		return "learner"
	case Unregistered:
		return "unregistered"
	}
	return "no-answer"
}

// PeerStatus is the result of probing one peer's client URL.
type PeerStatus struct {
	Member    config.Member
	Answer    Answer
	ClusterID uint64
	MemberID  uint64
	Leader    uint64
	Detail    string
	// Revision, RaftTerm and RaftIndex come from the peer's status (Healthy and Learner answers).
	Revision            int64
	RaftTerm, RaftIndex uint64
	// MemberIDs, Nonce and ClientWrites describe the peer's cluster (Healthy answers only; see describe).
	MemberIDs    []uint64
	Nonce        string
	ClientWrites bool
}

// View is the probe result in the terms of the start decision.
func (s PeerStatus) View() PeerView {
	return PeerView{Host: s.Member.Host, Answer: s.Answer, ClusterID: s.ClusterID, Nonce: s.Nonce, MemberIDs: s.MemberIDs,
		Revision: s.Revision, RaftTerm: s.RaftTerm, RaftIndex: s.RaftIndex, ClientWrites: s.ClientWrites}
}

// Views converts probe results.
func Views(statuses []PeerStatus) []PeerView {
	out := make([]PeerView, len(statuses))
	for i, s := range statuses {
		out[i] = s.View()
	}
	return out
}

// Probe asks every given member's client URL whether it is part of a cluster with a leader.
func Probe(ctx context.Context, c *config.Config, members []config.Member, timeout time.Duration) []PeerStatus {
	out := make([]PeerStatus, len(members))
	done := make(chan struct{}, len(members))
	for i, m := range members {
		go func() {
			out[i] = probeOne(ctx, c, m, timeout)
			done <- struct{}{}
		}()
	}
	for range members {
		<-done
	}
	return out
}

func probeOne(ctx context.Context, c *config.Config, m config.Member, timeout time.Duration) PeerStatus {
	ps := PeerStatus{Member: m}
	u, err := url.Parse(m.ClientURL)
	if err != nil {
		ps.Detail = err.Error()
		return ps
	}
	// A raw TCP dial first: only a refused connection is a positive "nothing here"; gRPC would hide the reason.
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		var dnsErr *net.DNSError
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			ps.Answer = Refused
		case c.Etcd.Consul.Enabled && errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			ps.Answer = Unregistered
		}
		ps.Detail = err.Error()
		return ps
	}
	conn.Close()
	cli, err := etcdclient.New(c, []string{m.ClientURL}, timeout)
	if err != nil {
		ps.Detail = err.Error()
		return ps
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := cli.Status(sctx, m.ClientURL)
	if err != nil {
		ps.Detail = err.Error()
		return ps
	}
	ps.ClusterID, ps.MemberID, ps.Leader = st.Header.ClusterId, st.Header.MemberId, st.Leader
	ps.Revision, ps.RaftTerm, ps.RaftIndex = st.Header.Revision, st.RaftTerm, st.RaftIndex
	if st.Leader == 0 {
		ps.Detail = "member has no leader"
		return ps
	}
	ps.Answer = Learner
	if st.IsLearner {
		return ps
	}
	// A voter that cannot describe its cluster is not an answer the decision may act on.
	if err := describe(sctx, cli, &ps); err != nil {
		ps.Answer, ps.Detail = NoAnswer, "describing the cluster: "+err.Error()
		return ps
	}
	ps.Answer = Healthy
	return ps
}

// describe adds the peer's member list, the cluster's creation nonce and whether it holds client writes.
func describe(ctx context.Context, cli *clientv3.Client, ps *PeerStatus) error {
	list, err := cli.MemberList(ctx)
	if err != nil {
		return err
	}
	for _, m := range list.Members {
		ps.MemberIDs = append(ps.MemberIDs, m.ID)
	}
	if ps.Nonce, err = readNonce(ctx, cli); err != nil {
		return err
	}
	ps.ClientWrites, err = ClientWrites(ctx, cli, ps.Revision)
	return err
}

func readNonce(ctx context.Context, cli *clientv3.Client) (string, error) {
	resp, err := cli.Get(ctx, ClusterKey)
	if err != nil || len(resp.Kvs) == 0 {
		return "", err
	}
	var rec ClusterRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return "", fmt.Errorf("%s: %w", ClusterKey, err)
	}
	return rec.Nonce, nil
}

// youngRevisions bounds the history ClientWrites replays. A cluster past it has lived long enough that it is
// taken as holding client writes (the answer that never discards anything).
const youngRevisions = 20000

// ClientWrites reports whether a cluster at revision rev ever held a key outside OwnPrefix, by watching its whole
// keyspace from revision 1: a put or delete of a client key shows up even when the key is gone now. A compacted
// history counts as client writes.
func ClientWrites(ctx context.Context, cli *clientv3.Client, rev int64) (bool, error) {
	return clientWrites(ctx, cli, rev, false)
}

// clientWrites is ClientWrites, optionally served by the member's local store alone (serializable reads, a
// watch that does not require a leader).
func clientWrites(ctx context.Context, cli *clientv3.Client, rev int64, local bool) (bool, error) {
	if rev <= 1 {
		return false, nil
	}
	if rev > youngRevisions {
		return true, nil
	}
	// A client key that exists now answers without replaying the history.
	for _, r := range [][2]string{{"\x00", OwnPrefix}, {clientv3.GetPrefixRangeEnd(OwnPrefix), "\x00"}} {
		opts := []clientv3.OpOption{clientv3.WithRange(r[1]), clientv3.WithCountOnly()}
		if local {
			opts = append(opts, clientv3.WithSerializable())
		}
		resp, err := cli.Get(ctx, r[0], opts...)
		if err != nil {
			return false, err
		}
		if resp.Count > 0 {
			return true, nil
		}
	}
	wctx := ctx
	if !local {
		wctx = clientv3.WithRequireLeader(ctx)
	}
	wctx, cancel := context.WithCancel(wctx)
	defer cancel()
	for resp := range cli.Watch(wctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(1)) {
		if resp.CompactRevision != 0 {
			return true, nil
		}
		if err := resp.Err(); err != nil {
			return false, err
		}
		for _, ev := range resp.Events {
			if !strings.HasPrefix(string(ev.Kv.Key), OwnPrefix) {
				return true, nil
			}
			if ev.Kv.ModRevision >= rev {
				return false, nil
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return false, errors.New("watch closed before the history was read")
}

func summarize(statuses []PeerStatus) string {
	parts := make([]string, 0, len(statuses))
	for _, s := range statuses {
		parts = append(parts, fmt.Sprintf("%s=%s", s.Member.Host, s.Answer))
	}
	return strings.Join(parts, " ")
}

// memberList reads the live member list (linearizable) through endpoints.
func memberList(ctx context.Context, c *config.Config, endpoints []string) (*clientv3.MemberListResponse, error) {
	cli, err := etcdclient.New(c, endpoints, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return cli.MemberList(lctx)
}
