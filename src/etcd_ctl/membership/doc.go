// Package membership decides how this member enters the one cluster of its deployment — create it, join it as a
// learner, or restart with its data — and carries out the membership changes that decision needs.
//
// Invariants: only the BOSH bootstrap instance creates a cluster, and only after every peer
// positively refused a connection (a timeout is not an answer; with consul DNS, a peer name that does not exist
// counts as refused, since consul only answers for a registered, running etcd_ctl); joiners are added as
// learners one at a time under a lock held in the cluster itself; a restart keeps the data dir and member
// identity; data that does not belong to the live cluster is moved aside, never deleted.
package membership
