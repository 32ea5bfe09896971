package membership

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// Cluster IDs and member IDs of the table: X is the deployment's cluster (members 0xa, 0xb, 0xc), Y a cluster
// created later by the creator alone (member 0xd).
const (
	clusterX = 0x1111
	clusterY = 0x2222
)

func peer(host string, a Answer) PeerView { return PeerView{Host: host, Answer: a} }

func inX(host string, writes bool) PeerView {
	return PeerView{Host: host, Answer: Healthy, ClusterID: clusterX, Nonce: "nx", MemberIDs: []uint64{0xa, 0xb, 0xc}, Revision: 440, ClientWrites: writes}
}

func inY(host string, writes bool) PeerView {
	return PeerView{Host: host, Answer: Healthy, ClusterID: clusterY, Nonce: "ny", MemberIDs: []uint64{0xd}, Revision: 2, ClientWrites: writes}
}

func dataOf(cluster, member, nonce string, writes bool) LocalView {
	return LocalView{HasData: true, Identity: &Identity{ClusterID: cluster, MemberID: member}, Nonce: nonce, Revision: 440, ClientWrites: writes}
}

func TestDecide(t *testing.T) {
	empty := LocalView{}
	tests := []struct {
		name    string
		in      DecisionInput
		want    Action
		cluster uint64
		slug    string
	}{
		// Without data.
		{"only instance creates", DecisionInput{Local: empty, Creator: true}, ActCreate, 0, ""},
		{"creator, every peer refused: create", DecisionInput{Local: empty, Creator: true, Peers: []PeerView{peer("b", Refused), peer("c", Unregistered)}}, ActCreate, 0, ""},
		{"creator, a peer gave no answer: wait", DecisionInput{Local: empty, Creator: true, Peers: []PeerView{peer("b", Refused), peer("c", NoAnswer)}}, ActWait, 0, ""},
		{"creator, a learner answers: a cluster exists, wait", DecisionInput{Local: empty, Creator: true, Peers: []PeerView{peer("b", Refused), {Host: "c", Answer: Learner, ClusterID: clusterX}}}, ActWait, 0, ""},
		{"not the creator, every peer refused: wait", DecisionInput{Local: empty, Peers: []PeerView{peer("a", Refused), peer("c", Refused)}}, ActWait, 0, ""},
		{"one cluster answers: join", DecisionInput{Local: empty, Peers: []PeerView{inX("a", true), peer("c", NoAnswer)}}, ActJoin, clusterX, ""},
		{"creator joins too when a cluster answers", DecisionInput{Local: empty, Creator: true, Peers: []PeerView{inX("b", false), inX("c", false)}}, ActJoin, clusterX, ""},
		{"one cluster answers, a leaderless member of another still serves it: wait (etcd's join would ask it)", DecisionInput{Local: empty, Peers: []PeerView{{Host: "a", Answer: NoAnswer, ClusterID: clusterY}, inX("b", true), inX("c", true)}}, ActWait, clusterX, ""},
		{"one cluster answers, another's peer URL still answers (a member stepping down): wait", DecisionInput{Local: empty, Peers: []PeerView{peer("a", Refused), inX("b", true)}, PeerClusters: []PeerCluster{{Host: "a", ClusterID: clusterY}, {Host: "b", ClusterID: clusterX}}}, ActWait, clusterX, ""},
		{"one cluster answers, every peer URL in it or silent: join", DecisionInput{Local: empty, Peers: []PeerView{peer("a", Refused), inX("b", true)}, PeerClusters: []PeerCluster{{Host: "a"}, {Host: "b", ClusterID: clusterX}}}, ActJoin, clusterX, ""},
		{"one cluster answers, a leaderless member of the same cluster: join", DecisionInput{Local: empty, Peers: []PeerView{{Host: "a", Answer: NoAnswer, ClusterID: clusterX}, inX("b", true)}}, ActJoin, clusterX, ""},
		{"two clusters, one with client writes: wait until the other one's members step down (etcd's join would ask them)", DecisionInput{Local: empty, Peers: []PeerView{inY("a", false), inX("b", true)}}, ActWait, clusterX, ""},
		{"two clusters, none with client writes: wait for the creator to step down", DecisionInput{Local: empty, Peers: []PeerView{inY("a", false), inX("b", false)}}, ActWait, 0, ""},
		{"two clusters, both with client writes: wait, join neither", DecisionInput{Local: empty, Peers: []PeerView{inY("a", true), inX("b", true)}}, ActWait, 0, ""},

		// With data.
		{"no peer answers: restart, etcd waits for quorum", DecisionInput{Local: dataOf("1111", "b", "nx", true), Peers: []PeerView{peer("a", Refused), peer("c", NoAnswer)}}, ActRestart, 0, ""},
		{"data without identity: restart", DecisionInput{Local: LocalView{HasData: true}, Peers: []PeerView{inY("a", true)}}, ActRestart, 0, ""},
		{"own cluster lists this member: restart", DecisionInput{Local: dataOf("1111", "b", "nx", true), Peers: []PeerView{inX("a", true)}}, ActRestart, clusterX, ""},
		{"own cluster of an earlier release (no nonce on either side): restart", DecisionInput{Local: dataOf("1111", "b", "", true), Peers: []PeerView{{Host: "a", Answer: Healthy, ClusterID: clusterX, MemberIDs: []uint64{0xa, 0xb}}}}, ActRestart, clusterX, ""},
		{"identity of an earlier release, cluster now records a nonce: restart", DecisionInput{Local: dataOf("1111", "b", "", true), Peers: []PeerView{inX("a", true)}}, ActRestart, clusterX, ""},
		{"own cluster answers without a member list: restart, never move aside", DecisionInput{Local: dataOf("1111", "b", "nx", true), Peers: []PeerView{{Host: "a", Answer: Learner, ClusterID: clusterX}}}, ActRestart, clusterX, ""},
		{"own cluster removed this member: move aside and join", DecisionInput{Local: dataOf("1111", "e", "nx", true), Peers: []PeerView{inX("a", true)}}, ActMoveAsideAndJoin, clusterX, "removed-member"},
		{"same cluster ID without this member, no client writes there, client writes here: re-created under an old token, restart", DecisionInput{Local: dataOf("1111", "e", "", true), Peers: []PeerView{{Host: "a", Answer: Healthy, ClusterID: clusterX, MemberIDs: []uint64{0xa}}}}, ActRestart, clusterX, ""},
		{"same cluster ID, other nonce: another cluster (no client writes): restart", DecisionInput{Local: dataOf("1111", "e", "old", true), Peers: []PeerView{inX("a", false)}}, ActRestart, clusterX, ""},
		{"bootstrap store lost: the new cluster holds no client writes: restart, do not join", DecisionInput{Local: dataOf("1111", "b", "nx", true), Peers: []PeerView{inY("a", false), peer("c", Refused)}}, ActRestart, clusterY, ""},
		{"creator, neither side holds client writes: the creator's data gives way", DecisionInput{Local: dataOf("3333", "a", "nz", false), Creator: true, Peers: []PeerView{inX("b", false)}}, ActMoveAsideAndJoin, clusterX, "other-cluster"},
		{"not the creator, neither side holds client writes: restart", DecisionInput{Local: dataOf("3333", "b", "nz", false), Peers: []PeerView{inY("a", false)}}, ActRestart, clusterY, ""},
		{"other cluster holds client writes, this data none: move aside and join", DecisionInput{Local: dataOf("3333", "b", "nz", false), Peers: []PeerView{inX("a", true)}}, ActMoveAsideAndJoin, clusterX, "other-cluster"},
		{"both hold client writes: conflict", DecisionInput{Local: dataOf("1111", "b", "nx", true), Peers: []PeerView{inY("a", true), peer("c", NoAnswer)}}, ActConflict, clusterY, ""},
		{"own cluster and another answer: own cluster wins", DecisionInput{Local: dataOf("1111", "b", "nx", true), Peers: []PeerView{inY("a", true), inX("c", true)}}, ActRestart, clusterX, ""},
		{"two other clusters answer: wait", DecisionInput{Local: dataOf("3333", "b", "nz", true), Peers: []PeerView{inY("a", true), inX("c", true)}}, ActWait, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.in)
			require.Equal(t, tt.want, d.Action, d.Reason)
			require.Equal(t, tt.cluster, d.ClusterID, d.Reason)
			require.Equal(t, tt.slug, d.Slug)
			require.NotEmpty(t, d.Reason)
			require.Equal(t, tt.want == ActConflict, d.Conflict != nil)
		})
	}
}

func TestConflictNamesBothSidesAndTheRecovery(t *testing.T) {
	d := Decide(DecisionInput{Local: dataOf("1111", "b", "nx", true), SelfName: "etcd-1", DataDir: "/var/vcap/store/etcd",
		Peers: []PeerView{inY("10.0.0.1", true)}})
	require.Equal(t, ActConflict, d.Action)
	msg := d.Conflict.Error()
	for _, want := range []string{"etcd-1 (cluster 1111, creation nonce nx, revision 440)", "10.0.0.1 (cluster 2222, creation nonce ny, revision 2)",
		"monit stop etcd && mv /var/vcap/store/etcd /var/vcap/store/etcd.moved-aside.manual && monit start etcd"} {
		require.Contains(t, msg, want)
	}
}

func TestDecideRunning(t *testing.T) {
	own := func(writes, created, leader bool, ps ...PeerView) RunningInput {
		return RunningInput{OwnClusterID: clusterY, OwnNonce: "ny", OwnRevision: 2, OwnClientWrites: writes, Created: created, OwnHasLeader: leader, Peers: ps, SelfName: "etcd-0", DataDir: "/d"}
	}
	learnerOfX := PeerView{Host: "c", Answer: Learner, ClusterID: clusterX}
	tests := []struct {
		name string
		in   RunningInput
		want Action
	}{
		{"no other cluster answers: keep", own(false, true, true, peer("b", Refused), peer("c", NoAnswer)), ActKeep},
		{"own cluster's members answer: keep", own(false, true, true, inY("b", false)), ActKeep},
		{"only a learner of another cluster answers: keep", own(false, true, true, learnerOfX), ActKeep},
		{"creator, deployment's data answers: step down", own(false, true, true, inX("b", true), peer("c", NoAnswer)), ActStepDown},
		{"creator, another cluster without client writes: step down (the data side restarted it)", own(false, true, true, inX("b", false)), ActStepDown},
		{"joiner, other cluster holds client writes: step down", own(false, false, true, inX("b", true)), ActStepDown},
		{"joiner, own cluster lost its leader: step down", own(false, false, false, inX("b", false)), ActStepDown},
		{"joiner, other cluster without client writes, own has a leader: keep (its creator goes first)", own(false, false, true, inX("b", false)), ActKeep},
		{"own cluster has client writes, other none: keep", own(true, true, true, inX("b", false)), ActKeep},
		{"both hold client writes: conflict, nothing moves", own(true, true, true, inX("b", true)), ActConflict},
		{"joiner, both hold client writes: conflict", own(true, false, false, inX("b", true)), ActConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DecideRunning(tt.in)
			require.Equal(t, tt.want, d.Action, d.Reason)
			if tt.want == ActStepDown || tt.want == ActConflict {
				require.Equal(t, uint64(clusterX), d.ClusterID)
			}
			require.Equal(t, tt.want == ActConflict, d.Conflict != nil)
		})
	}
}

func TestIsCreator(t *testing.T) {
	machines := func(self string, list ...string) bool {
		c := config.Default()
		c.Instance = config.Instance{Name: "etcd_z2", Index: 0, Bootstrap: true, Address: self, IP: self}
		c.Etcd.Machines = list
		desired, err := c.DesiredMembers()
		require.NoError(t, err)
		return IsCreator(&c, desired)
	}
	// Two groups, each with a BOSH bootstrap instance: only the first listed machine creates.
	require.True(t, machines("10.0.1.1", "10.0.1.1", "10.0.1.2", "10.0.2.1"))
	require.False(t, machines("10.0.2.1", "10.0.1.1", "10.0.1.2", "10.0.2.1"))

	link := func(self config.Instance, ins ...config.LinkInstance) bool {
		c := config.Default()
		c.Instance = self
		c.Link = &config.Link{Instances: ins}
		desired, err := c.DesiredMembers()
		require.NoError(t, err)
		return IsCreator(&c, desired)
	}
	a := config.LinkInstance{Name: "etcd", Index: 0, ID: "a", Address: "10.0.0.1"}
	b := config.LinkInstance{Name: "etcd", Index: 1, ID: "b", Address: "10.0.0.2", Bootstrap: true}
	self := func(in config.LinkInstance) config.Instance {
		return config.Instance{Name: in.Name, Index: in.Index, ID: in.ID, Address: in.Address}
	}
	require.True(t, link(self(b), a, b), "the link's bootstrap instance creates")
	require.False(t, link(self(a), a, b))
	b.Bootstrap = false
	require.True(t, link(self(a), b, a), "without a bootstrap flag, the lowest index creates")
	require.False(t, link(self(b), b, a))

	cl := config.Default()
	cl.Instance = config.Instance{Name: "etcd_z2", Index: 0, Bootstrap: true}
	cl.Etcd.AdvertiseURLsDNSSuffix = "etcd.internal"
	cl.Etcd.Cluster = []config.ClusterGroup{{Name: "etcd_z1", Instances: 2}, {Name: "etcd_z2", Instances: 1}}
	desired, err := cl.DesiredMembers()
	require.NoError(t, err)
	require.False(t, IsCreator(&cl, desired), "etcd_z2's bootstrap instance is not the creator")
	cl.Instance.Name = "etcd_z1"
	desired, err = cl.DesiredMembers()
	require.NoError(t, err)
	require.True(t, IsCreator(&cl, desired))
	require.True(t, strings.HasPrefix(desired[0].Name, "etcd-z1-0"))
}
