package drain

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRequest(t *testing.T) {
	for name, tc := range map[string]struct {
		args       []string
		state      string
		next       string
		cur, nextN int
		pkgs       []string
		wantErr    string
	}{
		"update with disk":            {args: []string{"job_changed", "hash_changed", "etcd_ctl"}, state: `{"persistent_disk":1024}`, next: `{"persistent_disk":1024}`, cur: 1024, nextN: 1024, pkgs: []string{"etcd_ctl"}},
		"disk-less update":            {args: []string{"job_changed", "hash_changed"}, state: `{"persistent_disk":0}`, next: `{"persistent_disk":0}`, cur: 0, nextN: 0},
		"scale down":                  {args: []string{"job_shutdown", "hash_unchanged"}, state: `{"persistent_disk":1024}`, next: `{"persistent_disk":0}`, cur: 1024, nextN: 0},
		"status poll has no next":     {args: []string{"job_check_status", "hash_unchanged"}, state: `{"persistent_disk":1024}`, cur: 1024, nextN: -1},
		"nothing given":               {args: []string{"job_shutdown", "hash_unchanged"}, cur: -1, nextN: -1},
		"state without the field":     {args: []string{"job_shutdown"}, state: `{}`, next: `{}`, cur: -1, nextN: -1},
		"missing args":                {wantErr: "missing arguments"},
		"unknown kind":                {args: []string{"job_exploded"}, wantErr: `unknown first argument "job_exploded"`},
		"bad next state":              {args: []string{"job_shutdown"}, next: "{", wantErr: "BOSH_JOB_NEXT_STATE is not JSON"},
		"bad current state":           {args: []string{"job_shutdown"}, state: "[", wantErr: "BOSH_JOB_STATE is not JSON"},
		"negative disk is not a size": {args: []string{"job_shutdown"}, next: `{"persistent_disk":-5}`, wantErr: "persistent_disk -5"},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := ParseRequest(tc.args, tc.state, tc.next)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.cur, r.CurrentPersistentDisk)
			require.Equal(t, tc.nextN, r.NextPersistentDisk)
			require.Equal(t, tc.pkgs, r.Packages)
		})
	}
}

// TestDecideIntent covers every row of the drain rule.
func TestDecideIntent(t *testing.T) {
	keep := NextStates{VM: "keep", Instance: "keep", Deployment: "keep"}
	recreate := NextStates{VM: "delete", Instance: "keep", Deployment: "keep"}
	scaleDown := NextStates{VM: "delete", Instance: "delete", Deployment: "keep"}
	deleteAll := NextStates{VM: "delete", Instance: "delete", Deployment: "delete"}
	for name, tc := range map[string]struct {
		kind      string
		cur, next int
		pre       NextStates
		want      Intent
		reason    string
	}{
		"status poll":                            {kind: "job_check_status", cur: 1024, next: -1, pre: scaleDown, want: IntentPoll},
		"deployment deleted":                     {kind: "job_shutdown", cur: 1024, next: 0, pre: deleteAll, want: IntentDeploymentDeleted, reason: "BOSH_DEPLOYMENT_NEXT_STATE=delete"},
		"deployment deleted, disk-less":          {kind: "job_shutdown", cur: 0, next: 0, pre: deleteAll, want: IntentDeploymentDeleted},
		"legacy deployment marker only":          {kind: "job_shutdown", cur: 1024, next: 0, pre: NextStates{Deployment: "delete"}, want: IntentDeploymentDeleted},
		"scale-down with disk":                   {kind: "job_shutdown", cur: 1024, next: 0, pre: scaleDown, want: IntentRemove, reason: "BOSH_INSTANCE_NEXT_STATE=delete"},
		"scale-down of a disk-less group":        {kind: "job_shutdown", cur: 0, next: 0, pre: scaleDown, want: IntentRemove},
		"disk-less rolling update":               {kind: "job_changed", cur: 0, next: 0, pre: keep, want: IntentKeep, reason: "BOSH_INSTANCE_NEXT_STATE=keep"},
		"disk-less recreate":                     {kind: "job_shutdown", cur: 0, next: 0, pre: recreate, want: IntentKeep, reason: "BOSH_VM_NEXT_STATE=delete"},
		"disk removed from a kept instance":      {kind: "job_changed", cur: 1024, next: 0, pre: keep, want: IntentKeep},
		"update with disk":                       {kind: "job_changed", cur: 1024, next: 1024, pre: keep, want: IntentKeep},
		"old director: scale-down":               {kind: "job_shutdown", cur: 1024, next: 0, want: IntentRemove, reason: "current state has 1024"},
		"old director: disk-less update":         {kind: "job_changed", cur: 0, next: 0, want: IntentKeep, reason: "group without a persistent disk"},
		"old director: disk-less shutdown":       {kind: "job_shutdown", cur: 0, next: 0, want: IntentKeep},
		"old director: next 0, no current state": {kind: "job_shutdown", cur: -1, next: 0, want: IntentKeep, reason: "BOSH_JOB_STATE is not set"},
		"old director: update with disk":         {kind: "job_changed", cur: 1024, next: 2048, want: IntentKeep, reason: "keeps its persistent disk"},
		"old director: shutdown without next":    {kind: "job_shutdown", cur: 1024, next: -1, want: IntentKeep, reason: "without a next state"},
		"only the VM state recorded":             {kind: "job_shutdown", cur: 1024, next: 0, pre: NextStates{VM: "delete"}, want: IntentRemove},
	} {
		t.Run(name, func(t *testing.T) {
			got, reason := DecideIntent(Request{Kind: tc.kind, CurrentPersistentDisk: tc.cur, NextPersistentDisk: tc.next, PreStop: tc.pre})
			require.Equal(t, tc.want, got, reason)
			require.NotEmpty(t, reason)
			require.Contains(t, reason, tc.reason)
		})
	}
}

// TestDecideRemoval covers the quorum arithmetic of removing the member of a deleted instance.
func TestDecideRemoval(t *testing.T) {
	for name, tc := range map[string]struct {
		m    Membership
		want Removal
	}{
		"last voter":                         {m: Membership{Voters: 1}, want: RemovalLastMember},
		"3 voters, both others healthy":      {m: Membership{Voters: 3, HealthyOthers: 2}, want: RemovalProceed},
		"3 voters, one other healthy":        {m: Membership{Voters: 3, HealthyOthers: 1}, want: RemovalRefused},
		"2 voters, the other healthy":        {m: Membership{Voters: 2, HealthyOthers: 1}, want: RemovalProceed},
		"2 voters, the other down":           {m: Membership{Voters: 2}, want: RemovalRefused},
		"5 voters, two others down":          {m: Membership{Voters: 5, HealthyOthers: 2}, want: RemovalRefused},
		"5 voters, one other down":           {m: Membership{Voters: 5, HealthyOthers: 3}, want: RemovalProceed},
		"learner, voters healthy":            {m: Membership{Learner: true, Voters: 1, HealthyOthers: 1}, want: RemovalProceed},
		"learner, 3 voters, one healthy":     {m: Membership{Learner: true, Voters: 3, HealthyOthers: 1}, want: RemovalRefused},
		"learner, 3 voters, two healthy":     {m: Membership{Learner: true, Voters: 3, HealthyOthers: 2}, want: RemovalProceed},
		"learner of a cluster without voter": {m: Membership{Learner: true}, want: RemovalRefused},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := DecideRemoval(tc.m)
			require.Equal(t, tc.want, got)
			if tc.want == RemovalRefused {
				require.ErrorIs(t, err, ErrWouldLoseQuorum)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

func TestPreStopRecordsNextStates(t *testing.T) {
	dir := t.TempDir()
	want := NextStates{VM: "delete", Instance: "delete", Deployment: "keep"}
	require.NoError(t, PreStop(dir, want))
	got, err := ReadPreStop(dir)
	require.NoError(t, err)
	require.Equal(t, want, got)

	require.NoError(t, PreStop(dir, NextStates{}), "a stop without next states clears the record")
	require.NoFileExists(t, PreStopRecord(dir))
	got, err = ReadPreStop(dir)
	require.NoError(t, err)
	require.False(t, got.Recorded())

	require.NoError(t, PreStop(dir, NextStates{Instance: "archive"}), "an unknown value does not fail the stop")
	got, err = ReadPreStop(dir)
	require.NoError(t, err)
	intent, _ := DecideIntent(Request{Kind: "job_shutdown", CurrentPersistentDisk: 0, NextPersistentDisk: 0, PreStop: got})
	require.Equal(t, IntentKeep, intent, "an unknown value falls back to the disk sizes")

	// The record of earlier releases still steers a drain that follows an upgrade.
	ClearPreStop(dir)
	require.NoError(t, os.WriteFile(legacyDeploymentDeletedMarker(dir), []byte("delete\n"), 0o644))
	got, err = ReadPreStop(dir)
	require.NoError(t, err)
	require.Equal(t, "delete", got.Deployment)
	ClearPreStop(dir)
	require.NoFileExists(t, legacyDeploymentDeletedMarker(dir))

	require.NoError(t, os.WriteFile(PreStopRecord(dir), []byte("{"), 0o644))
	_, err = ReadPreStop(dir)
	require.ErrorContains(t, err, "remove it and run drain again")
}
