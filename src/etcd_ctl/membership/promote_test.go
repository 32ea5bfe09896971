package membership

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestClassifyPromote covers every row of the promote rule, with the errors as the etcd client returns them.
func TestClassifyPromote(t *testing.T) {
	for name, tc := range map[string]struct {
		err      error
		deadline bool
		want     PromoteOutcome
	}{
		"acknowledged":                        {want: PromoteDone},
		"acknowledged at the deadline":        {deadline: true, want: PromoteDone},
		"already a voter (reply was lost)":    {err: rpctypes.ErrMemberNotLearner, want: PromoteAlreadyVoter},
		"already a voter, wrapped":            {err: fmt.Errorf("promote: %w", rpctypes.ErrMemberNotLearner), want: PromoteAlreadyVoter},
		"already a voter after the deadline":  {err: rpctypes.ErrMemberNotLearner, deadline: true, want: PromoteAlreadyVoter},
		"as the gRPC status error":            {err: rpctypes.Error(rpctypes.ErrGRPCMemberNotLearner), want: PromoteAlreadyVoter},
		"learner not caught up":               {err: rpctypes.ErrMemberLearnerNotReady, want: PromoteRetry},
		"learner not caught up, out of time":  {err: rpctypes.ErrMemberLearnerNotReady, deadline: true, want: PromoteGaveUp},
		"no reply (timeout)":                  {err: context.DeadlineExceeded, want: PromoteRetry},
		"no reply, out of time":               {err: context.DeadlineExceeded, deadline: true, want: PromoteGaveUp},
		"cluster unhealthy":                   {err: rpctypes.ErrUnhealthy, want: PromoteRetry},
		"member removed meanwhile":            {err: rpctypes.ErrMemberNotFound, want: PromoteGone},
		"member removed, deadline irrelevant": {err: rpctypes.ErrMemberNotFound, deadline: true, want: PromoteGone},
		"connection dropped":                  {err: errors.New("rpc error: code = Unavailable desc = error reading from server: EOF"), want: PromoteRetry},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, ClassifyPromote(tc.err, tc.deadline))
		})
	}
}

// TestDecideRollback: only a learner is removed; data moves aside only when no member owns it any more.
func TestDecideRollback(t *testing.T) {
	for _, tc := range []struct {
		role         Role
		remove, move bool
	}{
		{RoleLearner, true, true},
		{RoleAbsent, false, true},
		{RoleVoter, false, false},
		{RoleUnknown, false, false},
	} {
		t.Run(tc.role.String(), func(t *testing.T) {
			rb := DecideRollback(tc.role)
			require.Equal(t, tc.remove, rb.RemoveMember, "remove")
			require.Equal(t, tc.move, rb.MoveDataAside, "move aside")
			require.NotEmpty(t, rb.Reason)
		})
	}
}
