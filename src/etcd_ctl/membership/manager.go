package membership

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdserver"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/maintenance"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/peers"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"
)

// Kinds of start.
const (
	KindBootstrap = "bootstrap"
	KindJoin      = "join"
	KindRestart   = "restart"
)

// LockKey is the prefix of the lock that serialises membership changes; it lives in the cluster's keyspace.
const LockKey = "/etcd-release/membership-lock"

// Manager makes the start decision for one member.
type Manager struct {
	Config *config.Config
	// Peers lists the desired members.
	Peers peers.Source
	Log   *zap.Logger
	// ProbeTimeout bounds one probe of one peer.
	ProbeTimeout time.Duration
	// RetryInterval is the pause between rounds of probing while waiting for a cluster.
	RetryInterval time.Duration
	// PromoteTimeout bounds how long a learner may take to catch up before the join is rolled back.
	PromoteTimeout time.Duration
	Now            func() time.Time
}

// NewManager returns a Manager with production timings.
func NewManager(c *config.Config, lg *zap.Logger) *Manager {
	return &Manager{Config: c, Peers: peers.For(c, lg), Log: lg.Named("membership"), ProbeTimeout: 3 * time.Second, RetryInterval: 2 * time.Second,
		PromoteTimeout: time.Duration(c.Etcd.StartTimeoutInSeconds) * time.Second, Now: time.Now}
}

// Start is the decision Prepare made, plus what Complete needs to finish a join.
type Start struct {
	Kind   string
	Plan   etcdserver.Plan
	Reason string

	cli       *clientv3.Client
	session   *concurrency.Session
	mutex     *concurrency.Mutex
	learnerID uint64
	// nonce is the creation nonce of the cluster this member runs in, when known before etcd starts.
	nonce string
	// creator: this member is the deployment's creator (IsCreator).
	creator bool
}

// Prepare decides how this member starts and performs the membership changes needed before etcd starts (stale
// entry removal, learner add). It is thin I/O around Decide: read the data dir, probe the peers, act on the
// decision, or wait — logging why — until a decision is certain or ctx ends.
func (m *Manager) Prepare(ctx context.Context) (*Start, error) {
	c := m.Config
	desired, err := m.Peers.Members(ctx)
	if err != nil {
		return nil, err
	}
	others := peers.Others(desired)
	creator := IsCreator(c, desired)
	lastLog, lastReason := time.Time{}, ""
	for {
		local, err := ReadLocalView(c.Paths.DataDir)
		if err != nil {
			return nil, err
		}
		statuses := Probe(ctx, c, others, m.ProbeTimeout)
		in := DecisionInput{Local: local, Peers: Views(statuses), Creator: creator, SelfName: c.SelfName(), DataDir: c.Paths.DataDir}
		if !local.HasData {
			in.PeerClusters = ProbePeerClusters(ctx, c, others, m.ProbeTimeout)
		}
		d := Decide(in)
		st, err := m.act(ctx, d, local, statuses)
		if st != nil {
			st.creator = creator
		}
		if err != nil || st != nil {
			return st, err
		}
		if d.Action == ActWait && (d.Reason != lastReason || time.Since(lastLog) > 15*time.Second) {
			m.Log.Info("waiting for a cluster to join", zap.String("reason", d.Reason), zap.String("peers", summarize(statuses)))
			lastLog, lastReason = time.Now(), d.Reason
		}
		if d.Action == ActMoveAsideAndJoin {
			continue // the data dir is empty now: decide again as a member without data
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a cluster to join (peers: %s; %s): %w", summarize(statuses), d.Reason, ctx.Err())
		case <-time.After(m.RetryInterval):
		}
	}
}

// act carries out one decision: a Start to run, nil to decide again, or an error that ends the start.
func (m *Manager) act(ctx context.Context, d Decision, local LocalView, statuses []PeerStatus) (*Start, error) {
	c := m.Config
	self := c.Self()
	if d.Action != ActConflict && d.Action != ActWait {
		ClearConflict(c)
	}
	switch d.Action {
	case ActRestart:
		if d.CheckPeerURL {
			if err := m.checkPeerURL(ctx, endpointsOf(statuses, d.ClusterID), local.Identity); err != nil {
				return nil, err
			}
		}
		m.Log.Info("decided to restart with existing data", zap.String("reason", d.Reason), zap.String("peers", summarize(statuses)),
			zap.Int64("revision", local.Revision), zap.Bool("client-writes", local.ClientWrites))
		return &Start{Kind: KindRestart, Reason: d.Reason, nonce: local.Nonce, Plan: etcdserver.Plan{State: etcdserver.StateExisting, InitialCluster: []config.Member{self}}}, nil
	case ActMoveAsideAndJoin:
		return nil, m.moveAside(d.Reason, d.Slug)
	case ActJoin:
		return m.join(ctx, endpointsOf(statuses, d.ClusterID), d.Reason)
	case ActCreate:
		nonce := NewNonce()
		token := TokenWithNonce(c.ClusterToken(), nonce)
		m.Log.Info("decided to create a new cluster", zap.String("reason", d.Reason), zap.String("peers", summarize(statuses)), zap.String("token", token))
		return &Start{Kind: KindBootstrap, Reason: d.Reason, nonce: nonce, Plan: etcdserver.Plan{State: etcdserver.StateNew, InitialCluster: []config.Member{self}, Token: token}}, nil
	case ActConflict:
		_ = WriteConflict(c, d.Conflict.Error())
		m.Log.Error("not starting: two clusters hold client writes", zap.String("reason", d.Reason), zap.String("peers", summarize(statuses)), zap.Error(d.Conflict))
		return nil, d.Conflict
	}
	return nil, nil
}

// endpointsOf returns the client URLs of the voters that answered for cluster id.
func endpointsOf(statuses []PeerStatus, id uint64) []string {
	var eps []string
	for _, s := range statuses {
		if s.Answer == Healthy && s.ClusterID == id {
			eps = append(eps, s.Member.ClientURL)
		}
	}
	return eps
}

// checkPeerURL updates this member's peer URL in its cluster when the advertised one changed.
func (m *Manager) checkPeerURL(ctx context.Context, eps []string, id *Identity) error {
	if len(eps) == 0 || id == nil {
		return nil
	}
	self := m.Config.Self()
	list, err := memberList(ctx, m.Config, eps)
	if err != nil {
		return fmt.Errorf("reading the live member list to check this member's peer URL: %w", err)
	}
	for _, mm := range list.Members {
		if strconv.FormatUint(mm.ID, 16) == id.MemberID && (len(mm.PeerURLs) != 1 || mm.PeerURLs[0] != self.PeerURL) {
			return m.updatePeerURL(ctx, eps, mm.ID, self.PeerURL)
		}
	}
	return nil
}

func (m *Manager) moveAside(reason, slug string) error {
	dest, err := MoveAside(m.Config.Paths.DataDir, slug, m.Now())
	if err != nil {
		return err
	}
	m.Log.Warn("moved data dir aside and will rejoin as a new member", zap.String("reason", reason), zap.String("kept-at", dest))
	m.pruneMovedAside()
	return nil
}

func (m *Manager) updatePeerURL(ctx context.Context, eps []string, id uint64, peerURL string) error {
	cli, err := etcdclient.New(m.Config, eps, 5*time.Second)
	if err != nil {
		return err
	}
	defer cli.Close()
	uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.MemberUpdate(uctx, id, []string{peerURL}); err != nil {
		return fmt.Errorf("updating this member's peer URL to %s: %w", peerURL, err)
	}
	m.Log.Info("updated this member's peer URL in the cluster", zap.String("reason", "the advertised peer URL changed since the member was added"), zap.String("peer-url", peerURL))
	return nil
}

// join takes the membership lock, removes stale entries of this member and adds it as a learner.
func (m *Manager) join(ctx context.Context, eps []string, reason string) (st *Start, err error) {
	c := m.Config
	self := c.Self()
	cli, err := etcdclient.New(c, eps, 5*time.Second)
	if err != nil {
		return nil, err
	}
	// The lock's session is a write, which etcd refuses while the NOSPACE alarm is raised.
	if err := maintenance.AwaitNospaceCleared(ctx, cli, time.Duration(c.Etcd.StartTimeoutInSeconds)*time.Second, m.Log); err != nil {
		cli.Close()
		return nil, fmt.Errorf("before taking the membership lock: %w", err)
	}
	session, err := concurrency.NewSession(cli, concurrency.WithTTL(30), concurrency.WithContext(ctx))
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("opening a session for the membership lock: %w", err)
	}
	mu := concurrency.NewMutex(session, LockKey)
	defer func() {
		if err != nil {
			releaseLock(mu, session)
			cli.Close()
		}
	}()
	m.Log.Info("taking the membership lock", zap.String("reason", "one membership change at a time"), zap.Strings("endpoints", eps))
	if err := mu.Lock(ctx); err != nil {
		return nil, fmt.Errorf("taking the membership lock: %w", err)
	}
	var resp *clientv3.MemberAddResponse
	err = retry.Poll(ctx, retry.Options{Interval: m.RetryInterval, Waiting: func(p retry.Progress) {
		m.Log.Warn("adding this member as a learner failed; retrying", zap.Error(p.Last), zap.Int("attempts", p.Attempts))
	}}, func(ctx context.Context) (err error) {
		resp, err = m.addLearner(ctx, cli, self)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("adding this member as a learner: %w", err)
	}
	initial := make([]config.Member, 0, len(resp.Members))
	for _, mm := range resp.Members {
		name := mm.Name
		if mm.ID == resp.Member.ID {
			name = self.Name
		}
		for _, u := range mm.PeerURLs {
			initial = append(initial, config.Member{Name: name, PeerURL: u})
		}
	}
	m.Log.Info("decided to join the existing cluster", zap.String("reason", reason), zap.String("learner-id", strconv.FormatUint(resp.Member.ID, 16)))
	return &Start{Kind: KindJoin, Reason: reason, Plan: etcdserver.Plan{State: etcdserver.StateExisting, InitialCluster: initial},
		cli: cli, session: session, mutex: mu, learnerID: resp.Member.ID}, nil
}

func (m *Manager) addLearner(ctx context.Context, cli *clientv3.Client, self config.Member) (*clientv3.MemberAddResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(cctx)
	if err != nil {
		return nil, fmt.Errorf("listing members: %w", err)
	}
	for _, mm := range list.Members {
		var reason string
		switch {
		case mm.Name == self.Name || slices.Contains(mm.PeerURLs, self.PeerURL):
			reason = "it is a stale entry for this instance, whose data dir is empty"
		case mm.Name == "" && mm.IsLearner:
			reason = "it is a learner that was added but never started; its joiner no longer holds the membership lock"
		default:
			continue
		}
		if _, err := cli.MemberRemove(cctx, mm.ID); err != nil {
			return nil, fmt.Errorf("removing member %x (%s): %w", mm.ID, reason, err)
		}
		m.Log.Info("removed member entry before joining", zap.String("member-id", strconv.FormatUint(mm.ID, 16)), zap.String("name", mm.Name), zap.String("reason", reason))
	}
	resp, err := cli.MemberAddAsLearner(cctx, []string{self.PeerURL})
	if err != nil {
		return nil, fmt.Errorf("adding %s as a learner: %w", self.PeerURL, err)
	}
	return resp, nil
}

// Complete finishes a start once etcd is ready: promotes a learner (retrying while it catches up), releases the
// membership lock, and records the member identity next to the data.
func (m *Manager) Complete(ctx context.Context, st *Start, srv *etcdserver.Server) error {
	e := srv.Etcd().Server
	if st.Kind == KindJoin || e.IsLearner() {
		if err := m.promoteLearner(ctx, st, uint64(e.MemberID()), func() Progress { return etcdserver.SampleProgress(srv.Etcd()) }); err != nil {
			return err
		}
	}
	// Before the lock and the join's client are released: a member just promoted may still see itself as a
	// learner for a moment, so the cluster's nonce is read through the members that let it join.
	st.nonce = m.recordCluster(ctx, st)
	st.release()
	id := Identity{ClusterID: e.Cluster().ID().String(), MemberID: e.MemberID().String(), Name: m.Config.SelfName(), PeerURL: m.Config.Self().PeerURL}
	return WriteIdentityWithNonce(m.Config.Paths.DataDir, id, st.nonce)
}

// recordCluster writes the ClusterRecord of a cluster this member just created, or reads the creation nonce of
// the cluster it joined or restarted in ("" for a cluster created by an earlier release). The nonce only
// sharpens "same cluster" beyond the cluster ID, so failing to record or read it is logged, not fatal.
func (m *Manager) recordCluster(ctx context.Context, st *Start) string {
	if st.Kind != KindBootstrap && st.nonce != "" {
		return st.nonce
	}
	cli := st.cli
	if cli == nil {
		eps := []string{m.Config.Self().ClientURL}
		if desired, err := m.Peers.Members(ctx); err == nil && st.Kind != KindBootstrap && len(peers.Others(desired)) > 0 {
			eps = peers.ClientURLs(peers.Others(desired))
		}
		c, err := etcdclient.New(m.Config, eps, 5*time.Second)
		if err != nil {
			m.Log.Warn("cannot record the cluster's creation nonce", zap.Error(err))
			return st.nonce
		}
		defer c.Close()
		cli = c
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if st.Kind == KindBootstrap {
			rec := ClusterRecord{Nonce: st.nonce, Token: st.Plan.Token, Creator: m.Config.SelfName(), CreatedAt: m.Now().UTC()}
			b, _ := json.Marshal(rec)
			_, err = cli.Put(cctx, ClusterKey, string(b))
			cancel()
			if err == nil {
				return st.nonce
			}
		} else {
			var nonce string
			nonce, err = readNonce(cctx, cli)
			cancel()
			if err == nil {
				return nonce
			}
		}
		select {
		case <-ctx.Done():
			attempt = 5
		case <-time.After(time.Second):
		}
	}
	m.Log.Warn("cannot record the cluster's creation nonce; the identity file carries the cluster ID only", zap.String("key", ClusterKey), zap.Error(err))
	return st.nonce
}

func (st *Start) release() {
	if st.mutex != nil || st.session != nil {
		releaseLock(st.mutex, st.session)
		st.mutex, st.session = nil, nil
	}
	if st.cli != nil {
		st.cli.Close()
		st.cli = nil
	}
}

// Abort undoes a join whose learner never became a voting member (see rollbackJoin in promote.go).
func (m *Manager) Abort(st *Start) error { return m.rollbackJoin(st) }
