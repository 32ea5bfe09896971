package recovery

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
)

var (
	refused = membership.PeerStatus{Member: config.Member{Name: "etcd-1", ClientURL: "https://10.0.0.2:4001"}, Answer: membership.Refused}
	silent  = membership.PeerStatus{Member: config.Member{Name: "etcd-2", ClientURL: "https://10.0.0.3:4001"}, Answer: membership.NoAnswer, Detail: "timeout"}
	live    = membership.PeerStatus{Member: config.Member{Name: "etcd-2", ClientURL: "https://10.0.0.3:4001"}, Answer: membership.Healthy, ClusterID: 0xabc}
	learner = membership.PeerStatus{Member: config.Member{Name: "etcd-2", ClientURL: "https://10.0.0.3:4001"}, Answer: membership.Learner, ClusterID: 0xabc}
	ident   = &membership.Identity{ClusterID: "c1", MemberID: "m1", Name: "etcd-0"}
)

func TestDecideRestore(t *testing.T) {
	for name, tc := range map[string]struct {
		t         Target
		force     bool
		moveAside bool
		want      string // "" = allowed
	}{
		"empty data dir":            {Target{Peers: []membership.PeerStatus{refused, refused}}, false, false, ""},
		"wiped with leftovers":      {Target{Entries: []string{"etcd_ctl-member.json"}}, false, true, ""},
		"a member without --force":  {Target{HasMember: true, Identity: ident, Entries: []string{"member"}}, false, false, "holds member m1 (etcd-0) of cluster c1; the restore would replace it"},
		"a member with --force":     {Target{HasMember: true, Identity: ident}, true, true, ""},
		"etcd running":              {Target{Running: "pid 7 is alive"}, true, false, "etcd is running on this VM (pid 7 is alive): stop it first"},
		"a peer serves a cluster":   {Target{Peers: []membership.PeerStatus{refused, live}}, true, false, "etcd-2 (https://10.0.0.3:4001) answers as a healthy member of cluster abc"},
		"a learner answers":         {Target{Peers: []membership.PeerStatus{learner}}, false, false, "answers as a learner member"},
		"silent peers do not block": {Target{Peers: []membership.PeerStatus{silent}}, false, false, ""},
	} {
		t.Run(name, func(t *testing.T) {
			tc.t.DataDir = "/var/vcap/store/etcd"
			mv, err := DecideRestore(tc.t, tc.force)
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				require.ErrorContains(t, err, "nothing was changed")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.moveAside, mv)
		})
	}
}

func TestDecideSurvivor(t *testing.T) {
	for name, tc := range map[string]struct {
		t    Target
		want string
	}{
		"survivor with silent peers": {Target{HasMember: true, Peers: []membership.PeerStatus{silent, refused}}, ""},
		"survivor, peers wiped":      {Target{HasMember: true, Peers: []membership.PeerStatus{refused, refused}}, ""},
		"no data here":               {Target{Peers: []membership.PeerStatus{refused}}, "has no etcd member data"},
		"etcd running":               {Target{HasMember: true, Running: "something accepts connections"}, "stop it first"},
		"quorum is not lost":         {Target{HasMember: true, Peers: []membership.PeerStatus{live, refused}}, "has not lost its quorum"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.t.DataDir = "/var/vcap/store/etcd"
			err := DecideSurvivor(tc.t)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.Equal(t, []string{"https://10.0.0.3:4001 (timeout)"}, Silent([]membership.PeerStatus{refused, silent, live}))
}

func TestRestoreToken(t *testing.T) {
	require.Equal(t, "etcd-cf-restore-0123456789ab", RestoreToken("etcd-cf", "0123456789ab"))
}
