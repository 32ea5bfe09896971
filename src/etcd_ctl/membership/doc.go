// Package membership decides how this member enters the one cluster of its deployment — create it, join it as a
// learner, or restart with its data — and carries out the membership changes that decision needs.
//
// Invariants (README "Membership behaviour"): only the deployment's creator (IsCreator, the same answer on every
// member, also across instance groups) creates a cluster, and only after every peer positively refused a
// connection (a timeout is not an answer; with consul DNS, a peer name that does not exist counts as refused,
// since consul only answers for a registered, running etcd_ctl); every creation carries a random nonce in its
// token, so a re-created cluster never has the old cluster ID; joiners are added as learners one at a time under
// a lock held in the cluster itself; a restart keeps the data dir and member identity; a member never gives up
// data that the cluster it would join does not hold (Decide), and where two clusters hold client writes nothing
// is discarded; data that does not belong to the live cluster is moved aside, never deleted.
package membership
