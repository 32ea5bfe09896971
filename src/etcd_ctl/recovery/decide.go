// Package recovery brings a cluster back when it cannot recover on its own: `etcd_ctl restore` turns a
// snapshot into this member's data dir as part of a new cluster (every member restores the same snapshot), and
// `etcd_ctl recover-from-survivor` turns the one member whose data survived a permanent quorum loss into a
// one-member cluster that the others then join as learners through the normal start.
//
// Both refuse to run while etcd runs on this VM, and while a peer still serves a cluster; restore refuses to
// replace a member's data without --force and then moves that data aside, never deleting it. The decisions are
// the pure functions in this file; inspect.go gathers their input.
package recovery

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/membership"
)

// Target is what a restore or a survivor recovery finds on this VM and among its peers.
type Target struct {
	DataDir string
	// Running says why etcd is considered running on this VM ("" if not).
	Running string
	// HasMember: the data dir holds an etcd member (a WAL).
	HasMember bool
	// Identity is the member identity etcd_ctl recorded in the data dir (nil if none).
	Identity *membership.Identity
	// Entries are the names in the data dir.
	Entries []string
	// Peers are the answers of the other desired members.
	Peers []membership.PeerStatus
}

// describe says what the data dir holds, for messages.
func (t Target) describe() string {
	if !t.HasMember {
		return fmt.Sprintf("%s holds %s but no etcd member", t.DataDir, strings.Join(t.Entries, ", "))
	}
	if t.Identity == nil {
		return fmt.Sprintf("%s holds an etcd member (no identity recorded by etcd_ctl)", t.DataDir)
	}
	return fmt.Sprintf("%s holds member %s (%s) of cluster %s", t.DataDir, t.Identity.MemberID, t.Identity.Name, t.Identity.ClusterID)
}

// liveCluster returns a message naming a peer that still serves a cluster, or "".
func liveCluster(peers []membership.PeerStatus) string {
	for _, p := range peers {
		if p.Answer == membership.Healthy || p.Answer == membership.Learner {
			return fmt.Sprintf("%s (%s) answers as a %s member of cluster %s", p.Member.Name, p.Member.ClientURL, p.Answer, strconv.FormatUint(p.ClusterID, 16))
		}
	}
	return ""
}

// DecideRestore decides whether a restore may run on t and whether it must first move the data dir aside.
func DecideRestore(t Target, force bool) (moveAside bool, err error) {
	if t.Running != "" {
		return false, fmt.Errorf("etcd is running on this VM (%s): stop it first with `monit stop etcd`; nothing was changed", t.Running)
	}
	if live := liveCluster(t.Peers); live != "" {
		return false, fmt.Errorf("%s: a restore makes a new cluster from every member, so stop etcd on every instance first (`bosh -d <deployment> stop etcd`, or `monit stop etcd` on each VM), then restore on each; nothing was changed", live)
	}
	switch {
	case t.HasMember && !force:
		return false, fmt.Errorf("%s; the restore would replace it (moving it aside to %s.moved-aside.<time>.replaced-by-restore, not deleting it): re-run with --force if that is intended; nothing was changed", t.describe(), t.DataDir)
	case t.HasMember:
		return true, nil
	case len(t.Entries) > 0:
		// Leftovers without a member (e.g. an identity file) would be read as this member's identity at start.
		return true, nil
	}
	return false, nil
}

// DecideSurvivor decides whether this VM's member may be made a one-member cluster with its data.
func DecideSurvivor(t Target) error {
	if t.Running != "" {
		return fmt.Errorf("etcd is running on this VM (%s): stop it first with `monit stop etcd`; nothing was changed", t.Running)
	}
	if !t.HasMember {
		return fmt.Errorf("%s has no etcd member data, so there is nothing to recover here: run this on the VM whose data survived, or restore every member from a snapshot (etcd_ctl restore); nothing was changed", t.DataDir)
	}
	if live := liveCluster(t.Peers); live != "" {
		return fmt.Errorf("%s, so the cluster has not lost its quorum: replace a lost member by wiping it (`monit stop etcd; rm -rf %s/*; monit start etcd` on its VM) instead; nothing was changed", live, t.DataDir)
	}
	return nil
}

// Silent lists the peers that gave no definite answer (they may still be running behind a partition).
func Silent(peers []membership.PeerStatus) []string {
	var out []string
	for _, p := range peers {
		if p.Answer == membership.NoAnswer {
			out = append(out, p.Member.ClientURL+" ("+p.Detail+")")
		}
	}
	return out
}

// RestoreToken is the initial cluster token of a restored cluster: the deployment's token plus a nonce, so the
// restored cluster and its member IDs differ from the cluster the snapshot came from. Every member must use the
// same nonce; by default it is the start of the snapshot's sha256, which every member computes alike.
func RestoreToken(clusterToken, nonce string) string {
	return clusterToken + "-restore-" + nonce
}
