package etcdserver

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/datadir"
)

// Progress is one sample of a starting member's catch-up (judged by membership.JudgeCatchUp).
type Progress struct {
	// Applied and Committed are the raft indexes etcd's request gate compares (EtcdServer.AppliedIndex and
	// CommittedIndex): etcd refuses proposals while Committed − Applied exceeds 5000.
	Applied, Committed uint64
	// SnapshotBytes is the size of the snapshot files in the member's snap dir: it grows while a large snapshot
	// streams in, when no index moves. It is progress; PeerBytes is not, as heartbeats alone make it grow.
	SnapshotBytes int64
	// PeerBytes is etcd_network_peer_received_bytes_total: everything received from peers, for the log.
	PeerBytes int64
	// Ready is true once etcd published the member to the cluster.
	Ready bool
}

// Waiter is asked after every sample while etcd is not ready yet; an error gives up the start.
type Waiter func(Progress) error

// SampleProgress reads e's catch-up figures. It reads the process's Prometheus registry (etcd registers its
// rafthttp counters there) and lists the snap dir; both are cheap enough to do every second.
func SampleProgress(e *embed.Etcd) Progress {
	p := Progress{Applied: e.Server.AppliedIndex(), Committed: e.Server.CommittedIndex(), SnapshotBytes: streamingSnapshotBytes(e.Config().Dir), PeerBytes: peerReceivedBytes()}
	select {
	case <-e.Server.ReadyNotify():
		p.Ready = true
	default:
	}
	return p
}

func peerReceivedBytes() int64 {
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil && len(families) == 0 {
		return 0
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != "etcd_network_peer_received_bytes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return int64(sum)
}

// streamingSnapshotBytes is the size of the snapshot database files in the member's snap dir: etcd's
// server/etcdserver/api/snap/db.go streams an incoming snapshot into a "tmp*" file there and renames it to
// "<index>.snap.db" once complete.
func streamingSnapshotBytes(dataDir string) int64 {
	dir := datadir.ToSnapDir(dataDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, en := range entries {
		if !strings.HasPrefix(en.Name(), "tmp") && !strings.HasSuffix(en.Name(), ".snap.db") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, en.Name())); err == nil {
			n += fi.Size()
		}
	}
	return n
}
