package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Instance is what the checks need of a BOSH instance.
type Instance struct {
	ID    string
	Index int
	IP    string
	// DNSName is the name the member advertises instead of its IP in consul DNS mode (empty otherwise).
	DNSName string
}

// host is what the member's peer and client URLs name: its DNS name in consul DNS mode, else its IP.
func (i Instance) host() string {
	if i.DNSName != "" {
		return i.DNSName
	}
	return i.IP
}

// MemberName is the etcd member name of the instance (etcd_ctl names members <group>-<index>).
func (i Instance) MemberName() string { return fmt.Sprintf("%s-%d", Group, i.Index) }

// Member is one entry of a member list.
type Member struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// View is the cluster as one member answers for itself.
type View struct {
	Instance  Instance
	Endpoint  string
	ClusterID uint64
	MemberID  uint64
	Leader    uint64
	Learner   bool
	RaftIndex uint64
	Members   []Member
	Err       error
}

func (v View) String() string {
	if v.Err != nil {
		return fmt.Sprintf("%s (%s): %v", v.Instance.MemberName(), v.Endpoint, v.Err)
	}
	var ms []string
	for _, m := range v.Members {
		role := "voter"
		if m.Learner {
			role = "learner"
		}
		ms = append(ms, fmt.Sprintf("%x %s %s %v", m.ID, m.Name, role, m.PeerURLs))
	}
	return fmt.Sprintf("%s (%s): cluster %x member %x leader %x learner=%v raft index %d; members [%s]",
		v.Instance.MemberName(), v.Endpoint, v.ClusterID, v.MemberID, v.Leader, v.Learner, v.RaftIndex, strings.Join(ms, ", "))
}

// Inspect asks every instance's member for its status and (serializably, i.e. its own view) its member list.
func Inspect(ctx context.Context, instances []Instance, tlsCfg *tls.Config) []View {
	views := make([]View, len(instances))
	done := make(chan struct{}, len(instances))
	for i, in := range instances {
		go func() {
			views[i] = inspectOne(ctx, in, tlsCfg)
			done <- struct{}{}
		}()
	}
	for range instances {
		<-done
	}
	return views
}

func inspectOne(ctx context.Context, in Instance, tlsCfg *tls.Config) View {
	ep := Endpoints([]string{in.IP}, tlsCfg != nil)[0]
	v := View{Instance: in, Endpoint: ep}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: tlsCfg, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		v.Err = err
		return v
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := cli.Status(sctx, ep)
	if err != nil {
		v.Err = fmt.Errorf("status: %w", err)
		return v
	}
	v.ClusterID, v.MemberID, v.Leader, v.Learner, v.RaftIndex = st.Header.ClusterId, st.Header.MemberId, st.Leader, st.IsLearner, st.RaftIndex
	list, err := cli.MemberList(sctx, clientv3.WithSerializable())
	if err != nil {
		v.Err = fmt.Errorf("member list: %w", err)
		return v
	}
	for _, m := range list.Members {
		v.Members = append(v.Members, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	sort.Slice(v.Members, func(i, j int) bool { return v.Members[i].Name < v.Members[j].Name })
	return v
}

// CheckInvariants returns every violation of the membership invariants in views of a deployment of instances:
// every member answers; exactly one cluster ID; one leader that every member names and that is itself a
// member; every member's list has exactly one voting member per instance, named after it, with its IP (its DNS
// name in consul DNS mode) in the peer and client URLs, and no learners.
func CheckInvariants(views []View) error {
	var errs []error
	clusterIDs := map[uint64][]string{}
	leaders := map[uint64][]string{}
	byHost := map[string]Instance{}
	for _, v := range views {
		byHost[v.Instance.host()] = v.Instance
	}
	for _, v := range views {
		name := v.Instance.MemberName()
		if v.Err != nil {
			errs = append(errs, fmt.Errorf("%s (%s) does not answer: %w", name, v.Instance.IP, v.Err))
			continue
		}
		clusterIDs[v.ClusterID] = append(clusterIDs[v.ClusterID], name)
		leaders[v.Leader] = append(leaders[v.Leader], name)
		if v.Learner {
			errs = append(errs, fmt.Errorf("%s is a learner", name))
		}
		voters := 0
		seen := map[string]int{}
		for _, m := range v.Members {
			if m.Learner {
				errs = append(errs, fmt.Errorf("%s lists learner %x (%s)", name, m.ID, m.Name))
				continue
			}
			voters++
			ip := urlHost(m.PeerURLs)
			in, ok := byHost[ip]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s lists member %x %q with peer URLs %v, which match no instance", name, m.ID, m.Name, m.PeerURLs))
			case m.Name != in.MemberName():
				errs = append(errs, fmt.Errorf("%s lists member %x named %q at %s, where instance %s should be %q", name, m.ID, m.Name, ip, in.ID, in.MemberName()))
			case urlHost(m.ClientURLs) != ip:
				errs = append(errs, fmt.Errorf("%s lists member %x %q with client URLs %v, not at %s", name, m.ID, m.Name, m.ClientURLs, ip))
			}
			seen[ip]++
		}
		if voters != len(views) {
			errs = append(errs, fmt.Errorf("%s lists %d voting members, want %d (one per instance)", name, voters, len(views)))
		}
		for ip, n := range seen {
			if n > 1 {
				errs = append(errs, fmt.Errorf("%s lists %d members at %s", name, n, ip))
			}
		}
	}
	if len(clusterIDs) > 1 {
		errs = append(errs, fmt.Errorf("%d cluster IDs: %s", len(clusterIDs), describe(clusterIDs)))
	}
	if len(leaders) > 1 {
		errs = append(errs, fmt.Errorf("members disagree on the leader: %s", describe(leaders)))
	}
	if _, ok := leaders[0]; ok {
		errs = append(errs, fmt.Errorf("no leader according to %v", leaders[0]))
	}
	for leader := range leaders {
		found := false
		for _, v := range views {
			found = found || (v.Err == nil && v.MemberID == leader)
		}
		if leader != 0 && !found {
			errs = append(errs, fmt.Errorf("leader %x is none of the instances' members", leader))
		}
	}
	return errors.Join(errs...)
}

func describe(m map[uint64][]string) string {
	var parts []string
	for id, names := range m {
		parts = append(parts, fmt.Sprintf("%x by %v", id, names))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func urlHost(urls []string) string {
	if len(urls) == 0 {
		return ""
	}
	u, err := url.Parse(urls[0])
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// ClusterIDs returns the distinct cluster IDs the answering members report.
func ClusterIDs(views []View) []uint64 {
	seen := map[uint64]bool{}
	var out []uint64
	for _, v := range views {
		if v.Err == nil && !seen[v.ClusterID] {
			seen[v.ClusterID] = true
			out = append(out, v.ClusterID)
		}
	}
	return out
}

// MemberIDs maps member names to IDs as the answering members report themselves.
func MemberIDs(views []View) map[string]string {
	out := map[string]string{}
	for _, v := range views {
		if v.Err == nil {
			out[v.Instance.MemberName()] = strconv.FormatUint(v.MemberID, 16)
		}
	}
	return out
}

// LeaderOf returns the instance whose member is the leader, if the members agree on one.
func LeaderOf(views []View) (Instance, bool) {
	for _, v := range views {
		if v.Err == nil && v.Leader != 0 && v.Leader == v.MemberID {
			return v.Instance, true
		}
	}
	return Instance{}, false
}
