package membership

import (
	"context"
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
	if st.Leader == 0 {
		ps.Detail = "member has no leader"
		return ps
	}
	ps.Answer = Healthy
	if st.IsLearner {
		ps.Answer = Learner
	}
	return ps
}

// healthy returns the client URLs of peers that answered Healthy, and the cluster ID they agree on.
func healthy(statuses []PeerStatus) (endpoints []string, clusterID uint64, err error) {
	ids := map[uint64]bool{}
	for _, s := range statuses {
		if s.Answer == Healthy || s.Answer == Learner {
			ids[s.ClusterID] = true
			clusterID = s.ClusterID
		}
		if s.Answer == Healthy {
			endpoints = append(endpoints, s.Member.ClientURL)
		}
	}
	if len(ids) > 1 {
		return nil, 0, fmt.Errorf("peers answer for %d different cluster IDs: two clusters exist in this deployment; stop and follow the recovery procedure in README.md", len(ids))
	}
	return endpoints, clusterID, nil
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
