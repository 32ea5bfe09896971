// Package maintenance keeps the keyspace of a running cluster small: it defragments members one at a time when
// their db file is mostly free pages, recovers from the NOSPACE alarm (compact to the current revision,
// defragment, disarm), and warns when a member's db nears the quota. etcd's own automatic compaction (set by
// etcdserver.BuildConfig from etcd.auto_compaction_*) drops old revisions; only a defragmentation gives the space
// back to the file system, and etcd's quota is checked against the file size (server/storage/quota.go,
// BackendQuota.Available uses the backend's Size, not its in-use size).
//
// Every rule is a pure function of a Cluster snapshot (decide.go); the I/O around it (cluster.go, loop.go,
// operator.go) only gathers snapshots and carries out one Step at a time, logging the step's reason.
//
// Who acts. Every etcd_ctl runs the loop, but only the coordinator acts on the cluster: the etcd_ctl whose member
// is the answering voter with the lowest member ID. Every etcd_ctl sees the same member list, so they agree on
// the coordinator without a write, which matters because the NOSPACE alarm makes every write (and so every lock
// or lease) fail. One process carrying out one step at a time is what keeps two members from being defragmented
// together; in normal operation the coordinator additionally holds the lock LockKey in the cluster while it
// defragments, which serialises it with `etcd_ctl defrag` run by an operator on any VM.
//
// Normal defragmentation (NextDefrag) needs a healthy quorum among the other voters and never touches the leader:
// leadership is moved to another voter first. NOSPACE recovery (NextRecovery) compacts without a lock (compaction
// and alarm disarm are not subject to the quota) and defragments every member whose file is above the disarm
// limit, still never the leader, but also when the other voters alone are not a healthy quorum: with the alarm
// raised the cluster refuses writes anyway, a wiped member cannot rejoin before the alarm is cleared, and a member
// being defragmented keeps taking part in raft (etcd's raft loop hands committed entries to an apply scheduler
// and keeps sending messages; see server/etcdserver/raft.go), so it does not cost the cluster its quorum.
package maintenance
