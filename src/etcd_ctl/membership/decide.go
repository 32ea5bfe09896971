package membership

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Action is what the start decision tells this member to do.
type Action int

const (
	// ActWait: nothing is certain yet; probe again.
	ActWait Action = iota
	// ActCreate: create a one-member cluster with a fresh creation nonce.
	ActCreate
	// ActJoin: the data dir is empty; join the answering cluster as a learner.
	ActJoin
	// ActRestart: start etcd on the data in the data dir, keeping the member identity.
	ActRestart
	// ActMoveAsideAndJoin: the data dir belongs to a member the answering cluster no longer has, or holds no client
	// writes while the answering cluster does; move it aside (kept on disk) and join.
	ActMoveAsideAndJoin
	// ActConflict: two clusters hold client writes; nothing is discarded and the operator decides.
	ActConflict
	// ActKeep (running decision only): the cluster this member created stays.
	ActKeep
	// ActStepDown (running decision only): the cluster this member just created holds no client writes while the
	// deployment's data answers elsewhere; stop, move the fresh data aside and join that cluster.
	ActStepDown
)

func (a Action) String() string {
	return [...]string{"wait", "create", "join", "restart", "move-aside-and-join", "conflict", "keep", "step-down"}[a]
}

// LocalView is what this member knows about its own data dir.
type LocalView struct {
	// HasData: the data dir holds an etcd member (a WAL).
	HasData bool
	// Identity is the recorded identity (nil when the member never completed a start on this data).
	Identity *Identity
	// Revision, RaftTerm and RaftIndex are read from the stored backend (zero when unknown).
	Revision            int64
	RaftTerm, RaftIndex uint64
	// ClientWrites: the stored keyspace holds a key outside etcd_ctl's own prefix (OwnPrefix).
	ClientWrites bool
	// Nonce is the creation nonce recorded next to the data ("" for data of earlier releases).
	Nonce string
}

// PeerView is one peer's probe result in the terms the decision needs.
type PeerView struct {
	Host   string
	Answer Answer
	// ClusterID is set for Healthy and Learner answers, and for a NoAnswer from a member without a leader (its
	// status still names its cluster). The fields below it are set only for Healthy and Learner answers.
	ClusterID uint64
	// Nonce is the creation nonce the cluster recorded under ClusterKey ("" for clusters of earlier releases).
	Nonce               string
	MemberIDs           []uint64
	Revision            int64
	RaftTerm, RaftIndex uint64
	ClientWrites        bool
}

// DecisionInput is everything the start decision depends on.
type DecisionInput struct {
	Local LocalView
	Peers []PeerView
	// PeerClusters is what each peer's peer URL answers (ProbePeerClusters); consulted before a join, so gathered
	// only when this member has no data.
	PeerClusters []PeerCluster
	// Creator: this member is the one member of the deployment allowed to create a cluster (see IsCreator).
	Creator bool
	// SelfName and DataDir name this member and its data in conflict messages.
	SelfName, DataDir string
}

// Decision is the outcome of Decide or DecideRunning.
type Decision struct {
	Action Action
	Reason string
	// ClusterID is the cluster to join (ActJoin, ActMoveAsideAndJoin, ActStepDown) or that answered.
	ClusterID uint64
	// Slug names the moved-aside copy (ActMoveAsideAndJoin).
	Slug string
	// Conflict is set for ActConflict.
	Conflict *Conflict
	// CheckPeerURL: on ActRestart, the live cluster lists this member and its peer URL may need updating.
	CheckPeerURL bool
}

// Side is one of the two clusters in a conflict.
type Side struct {
	Member    string `json:"member"`
	ClusterID string `json:"cluster_id"`
	Nonce     string `json:"creation_nonce,omitempty"`
	Revision  int64  `json:"revision"`
}

func (s Side) String() string {
	n := ""
	if s.Nonce != "" {
		n = ", creation nonce " + s.Nonce
	}
	return fmt.Sprintf("%s (cluster %s%s, revision %d)", s.Member, s.ClusterID, n, s.Revision)
}

// Conflict: this member's data and the answering cluster both hold client writes.
type Conflict struct {
	Local  Side `json:"local"`
	Remote Side `json:"remote"`
	// DataDir is the data dir the recovery command names.
	DataDir string `json:"data_dir"`
}

func (c *Conflict) Error() string {
	return fmt.Sprintf("two clusters of this deployment hold client writes: this member's data %s and the cluster answering at %s; "+
		"etcd_ctl discards neither. Decide which side to keep. To keep the other side, on this VM run "+
		"`monit stop etcd && mv %[3]s %[3]s.moved-aside.manual && monit start etcd` (it joins the other cluster as a new member); "+
		"to keep this side, run the same on every member of the other cluster", c.Local, c.Remote, c.DataDir)
}

// cluster groups the healthy answers of one cluster ID.
type cluster struct {
	id       uint64
	nonce    string
	members  []uint64
	revision int64
	writes   bool
	hosts    []string
	// voters counts the Healthy answers: only a voter can take a join.
	voters int
}

// clusters groups the peers that answer as part of a cluster with a leader, in ascending cluster ID order.
func clusters(peers []PeerView) []cluster {
	byID := map[uint64]*cluster{}
	for _, p := range peers {
		if p.Answer != Healthy && p.Answer != Learner {
			continue
		}
		c := byID[p.ClusterID]
		if c == nil {
			c = &cluster{id: p.ClusterID}
			byID[p.ClusterID] = c
		}
		c.hosts = append(c.hosts, p.Host)
		if p.Answer == Healthy {
			c.voters++
		}
		c.writes = c.writes || p.ClientWrites
		c.revision = max(c.revision, p.Revision)
		if p.Nonce != "" {
			c.nonce = p.Nonce
		}
		if len(p.MemberIDs) > 0 {
			c.members = p.MemberIDs
		}
	}
	out := make([]cluster, 0, len(byID))
	for _, c := range byID {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (c cluster) side() Side {
	return Side{Member: strings.Join(c.hosts, ","), ClusterID: strconv.FormatUint(c.id, 16), Nonce: c.nonce, Revision: c.revision}
}

// Decide is the start decision. It never chooses to give up data that the cluster it would join does not hold:
// data is moved aside only for the cluster it belongs to (this member was removed from it) or for a cluster that
// holds client writes while the data holds none.
func Decide(in DecisionInput) Decision {
	if in.Local.HasData {
		return decideWithData(in)
	}
	return decideWithoutData(in)
}

func decideWithData(in DecisionInput) Decision {
	cs := clusters(in.Peers)
	id := in.Local.Identity
	if len(cs) == 0 {
		return Decision{Action: ActRestart, Reason: "the data dir holds this member's data; no peer answered as part of a cluster, so the cluster is starting up or unreachable; etcd waits for a quorum"}
	}
	if id == nil {
		return Decision{Action: ActRestart, Reason: "the data dir holds a member that never recorded its identity (its first start did not complete); keeping the data"}
	}
	var others []cluster
	for _, c := range cs {
		if !sameCluster(c, id, in.Local.Nonce) {
			others = append(others, c)
			continue
		}
		if len(c.members) == 0 {
			return Decision{Action: ActRestart, ClusterID: c.id, Reason: "the data dir holds this member's data and its cluster answers, but no member list could be read; keeping the data"}
		}
		if !slices.Contains(c.members, parseHex(id.MemberID)) && !c.writes && in.Local.ClientWrites {
			// Only a cluster re-created with the token of an earlier release (no nonce) can lack this member and
			// this member's client writes under the same cluster ID: it is not the continuation of this data.
			return Decision{Action: ActRestart, ClusterID: c.id, Reason: fmt.Sprintf("cluster %s answers without this member %s and holds no client writes, while this data does: it is a re-created cluster with the old ID, not the one this data belongs to; keeping the data and not joining", id.ClusterID, id.MemberID)}
		}
		if !slices.Contains(c.members, parseHex(id.MemberID)) {
			return Decision{Action: ActMoveAsideAndJoin, ClusterID: c.id, Slug: "removed-member",
				Reason: fmt.Sprintf("data belongs to member %s, which is no longer in its cluster %s (it was removed); the cluster holds everything this member had acknowledged", id.MemberID, id.ClusterID)}
		}
		return Decision{Action: ActRestart, ClusterID: c.id, CheckPeerURL: true, Reason: "the data dir holds this member's data and its cluster lists this member; keeping the data and the member identity"}
	}
	if len(others) > 1 {
		return Decision{Action: ActWait, Reason: fmt.Sprintf("peers answer for %d clusters, none of them the cluster of this member's data (%s); waiting", len(others), id.ClusterID)}
	}
	o := others[0]
	local := Side{Member: in.SelfName, ClusterID: id.ClusterID, Nonce: in.Local.Nonce, Revision: in.Local.Revision}
	switch {
	case !o.writes && !in.Local.ClientWrites && in.Creator:
		// Neither side holds client writes, and only the creator creates clusters: this data is the creator's
		// other creation, and one of the two must give way. The creator's does, as DecideRunning has it.
		return Decision{Action: ActMoveAsideAndJoin, ClusterID: o.id, Slug: "other-cluster",
			Reason: fmt.Sprintf("this is the deployment's creator; neither its data (cluster %s) nor the live cluster %x holds client writes; the creator's cluster gives way", id.ClusterID, o.id)}
	case !o.writes:
		return Decision{Action: ActRestart, ClusterID: o.id, Reason: fmt.Sprintf("the cluster answering at %s is another cluster (%x, revision %d) that holds no client writes: it was created while this member's cluster (%s, revision %d) was down. "+
			"Keeping the data and not joining; once the members holding this data form a quorum, the creator of the other cluster steps down and rejoins", strings.Join(o.hosts, ","), o.id, o.revision, id.ClusterID, in.Local.Revision)}
	case !in.Local.ClientWrites:
		return Decision{Action: ActMoveAsideAndJoin, ClusterID: o.id, Slug: "other-cluster",
			Reason: fmt.Sprintf("data belongs to cluster %s, which holds no client writes, while the live cluster %x of this deployment does", id.ClusterID, o.id)}
	}
	return Decision{Action: ActConflict, ClusterID: o.id, Conflict: &Conflict{Local: local, Remote: o.side(), DataDir: in.DataDir},
		Reason: "this member's data and another cluster of this deployment both hold client writes"}
}

// sameCluster: the cluster IDs match and, when both sides know it, so does the creation nonce. Identities
// written by earlier releases carry no nonce; their cluster ID alone identifies the cluster.
func sameCluster(c cluster, id *Identity, nonce string) bool {
	if strconv.FormatUint(c.id, 16) != id.ClusterID {
		return false
	}
	return c.nonce == "" || nonce == "" || c.nonce == nonce
}

func decideWithoutData(in DecisionInput) Decision {
	var cs []cluster
	for _, c := range clusters(in.Peers) {
		if c.voters > 0 {
			cs = append(cs, c)
		}
	}
	switch {
	case len(cs) == 1:
		if hosts := joinBlockers(in, cs[0].id); len(hosts) > 0 {
			return Decision{Action: ActWait, ClusterID: cs[0].id, Reason: fmt.Sprintf("the data dir is empty and cluster %x answers, but %s still serve another cluster, and etcd's join would ask them; waiting until they stop or step down", cs[0].id, strings.Join(hosts, ", "))}
		}
		return Decision{Action: ActJoin, ClusterID: cs[0].id, Reason: "the data dir is empty and a cluster answered; joining as a learner, to be promoted once caught up"}
	case len(cs) > 1:
		var withWrites []cluster
		for _, c := range cs {
			if c.writes {
				withWrites = append(withWrites, c)
			}
		}
		if len(withWrites) == 1 {
			// Not yet: etcd's join fetches the cluster from the peer URLs of every member it is given
			// (GetClusterFromRemotePeers in etcd's server/etcdserver/api/membership), and a member that still
			// serves the cluster without client writes answers for that one, failing the join ("member count
			// is unequal"). Those members give way on their own (DecideRunning), so wait for them.
			return Decision{Action: ActWait, ClusterID: withWrites[0].id, Reason: fmt.Sprintf("the data dir is empty and %d clusters answer; waiting until the members of the ones without client writes step down, then joining %x, the only one that holds client writes", len(cs), withWrites[0].id)}
		}
		return Decision{Action: ActWait, Reason: fmt.Sprintf("the data dir is empty and %d clusters answer, %d of them with client writes; waiting until one remains", len(cs), len(withWrites))}
	}
	allRefused := true
	for _, p := range in.Peers {
		if p.Answer != Refused && p.Answer != Unregistered {
			allRefused = false
		}
	}
	switch {
	case in.Creator && len(in.Peers) == 0:
		return Decision{Action: ActCreate, Reason: "this is the only instance and its data dir is empty"}
	case in.Creator && allRefused:
		return Decision{Action: ActCreate, Reason: "this is the deployment's creator, its data dir is empty, and every peer refused connections (or, with consul, is not registered: its name does not exist), so no cluster exists"}
	case in.Creator:
		return Decision{Action: ActWait, Reason: "some peers gave no answer (a timeout is not an answer), so a cluster may exist there"}
	}
	return Decision{Action: ActWait, Reason: "this is not the deployment's creator; it only joins an existing cluster, which the creator makes"}
}

// joinBlockers is the last rule before a join of target: etcd's join fetches the cluster from the peer URLs of
// every member it is given, in sorted order (GetClusterFromRemotePeers in etcd's
// server/etcdserver/api/membership), and fails ("member count is unequal") when the one that answers first
// serves another cluster. Such a peer is a member stepping down (its client port closes before its peer port), a
// member of another cluster that lost its leader, or one that has not stepped down yet (DecideRunning makes each
// give way). It is seen on either port: the client port's status without a leader, or the peer URL's cluster ID.
func joinBlockers(in DecisionInput, target uint64) []string {
	var hosts []string
	seen := map[string]bool{}
	add := func(host string, id uint64) {
		if id != 0 && id != target && !seen[host] {
			seen[host] = true
			hosts = append(hosts, fmt.Sprintf("%s (cluster %x)", host, id))
		}
	}
	for _, p := range in.Peers {
		if p.Answer == NoAnswer {
			add(p.Host, p.ClusterID)
		}
	}
	for _, p := range in.PeerClusters {
		add(p.Host, p.ClusterID)
	}
	return hosts
}

// RunningInput is what a running member knows about its cluster and its peers.
type RunningInput struct {
	// OwnClusterID, OwnNonce and OwnRevision describe this member's cluster as its local store sees it.
	OwnClusterID    uint64
	OwnNonce        string
	OwnRevision     int64
	OwnClientWrites bool
	// OwnHasLeader: this member sees a leader in its cluster.
	OwnHasLeader bool
	// Created: this member is the deployment's creator (IsCreator), the only one that creates clusters.
	Created  bool
	Peers    []PeerView
	SelfName string
	DataDir  string
}

// DecideRunning is the check a member keeps making while its cluster holds no client writes: such a cluster
// gives way to another cluster of the deployment, which the members that kept their data restarted. The creator
// gives way to any other cluster; any other member gives way to one with client writes, or to any once its own
// cluster lost its leader (its creator stepped down). A member only ever gives up its own data, and only when
// that holds no client writes. Where both hold client writes, the conflict is reported and nothing moves.
func DecideRunning(in RunningInput) Decision {
	var others []cluster
	for _, c := range clusters(in.Peers) {
		if c.id != in.OwnClusterID && c.voters > 0 {
			others = append(others, c)
		}
	}
	if len(others) == 0 {
		return Decision{Action: ActKeep, Reason: "no other cluster answers"}
	}
	o := others[0]
	for _, c := range others {
		if c.writes && !o.writes {
			o = c
		}
	}
	own := Side{Member: in.SelfName, ClusterID: strconv.FormatUint(in.OwnClusterID, 16), Nonce: in.OwnNonce, Revision: in.OwnRevision}
	step := fmt.Sprintf("cluster %x of this member holds no client writes, while cluster %x answers at %s (revision %d, client writes %t). Stepping down: moving the fresh data aside and joining that cluster",
		in.OwnClusterID, o.id, strings.Join(o.hosts, ","), o.revision, o.writes)
	switch {
	case in.OwnClientWrites && o.writes:
		return Decision{Action: ActConflict, ClusterID: o.id, Conflict: &Conflict{Local: own, Remote: o.side(), DataDir: in.DataDir},
			Reason: "this member's cluster and another cluster of this deployment both hold client writes"}
	case in.OwnClientWrites:
		return Decision{Action: ActKeep, ClusterID: o.id, Reason: fmt.Sprintf("this cluster holds client writes; the other cluster %x holds none and its members give way", o.id)}
	case in.Created:
		return Decision{Action: ActStepDown, ClusterID: o.id, Reason: "this member is the deployment's creator; " + step}
	case o.writes || !in.OwnHasLeader:
		return Decision{Action: ActStepDown, ClusterID: o.id, Reason: "this member is not the creator; " + step}
	}
	return Decision{Action: ActKeep, ClusterID: o.id, Reason: fmt.Sprintf("another cluster %x without client writes answers; this member's cluster has a leader, and the creator gives way first", o.id)}
}

func parseHex(s string) uint64 {
	v, _ := strconv.ParseUint(s, 16, 64)
	return v
}
