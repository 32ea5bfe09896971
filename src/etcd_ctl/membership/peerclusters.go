package membership

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
)

// PeerCluster is what a member's peer URL says about its cluster: the X-Etcd-Cluster-ID of its /members
// answer, the request etcd's own join makes to every member it is given (GetClusterFromRemotePeers in etcd's
// server/etcdserver/api/membership). ClusterID 0: no answer.
type PeerCluster struct {
	Host      string
	ClusterID uint64
	Detail    string
}

// ProbePeerClusters asks every member's peer URL which cluster it serves.
func ProbePeerClusters(ctx context.Context, c *config.Config, members []config.Member, timeout time.Duration) []PeerCluster {
	out := make([]PeerCluster, len(members))
	tc, err := etcdclient.PeerTLSConfig(c)
	if err != nil {
		for i, m := range members {
			out[i] = PeerCluster{Host: m.Host, Detail: err.Error()}
		}
		return out
	}
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
	done := make(chan struct{}, len(members))
	for i, m := range members {
		go func() {
			defer func() { done <- struct{}{} }()
			out[i] = PeerCluster{Host: m.Host}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(m.PeerURL, "/")+"/members", nil)
			if err != nil {
				out[i].Detail = err.Error()
				return
			}
			resp, err := hc.Do(req)
			if err != nil {
				out[i].Detail = err.Error()
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				out[i].Detail = resp.Status
				return
			}
			id, err := strconv.ParseUint(resp.Header.Get("X-Etcd-Cluster-ID"), 16, 64)
			if err != nil {
				out[i].Detail = "no cluster ID in the answer"
				return
			}
			out[i].ClusterID = id
		}()
	}
	for range members {
		<-done
	}
	return out
}
