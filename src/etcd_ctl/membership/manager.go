package membership

import (
	"context"
	"errors"
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
}

// Prepare decides how this member starts and performs the membership changes needed before etcd starts (stale
// entry removal, learner add). It waits — logging why — until a decision is certain or ctx ends.
func (m *Manager) Prepare(ctx context.Context) (*Start, error) {
	c := m.Config
	desired, err := m.Peers.Members(ctx)
	if err != nil {
		return nil, err
	}
	others := peers.Others(desired)
	has, err := HasData(c.Paths.DataDir)
	if err != nil {
		return nil, err
	}
	if has {
		st, err := m.prepareRestart(ctx, others)
		if err != nil || st != nil {
			return st, err
		}
		// The data was moved aside: continue as a member without data.
	}
	return m.prepareWithoutData(ctx, others)
}

// prepareRestart returns a restart plan, or nil after moving data aside that does not belong to the live cluster.
func (m *Manager) prepareRestart(ctx context.Context, others []config.Member) (*Start, error) {
	c := m.Config
	self := c.Self()
	id, err := ReadIdentity(c.Paths.DataDir)
	if err != nil {
		return nil, err
	}
	statuses := Probe(ctx, c, others, m.ProbeTimeout)
	eps, clusterID, err := healthy(statuses)
	if err != nil {
		return nil, err
	}
	if len(eps) > 0 && id != nil {
		live := strconv.FormatUint(clusterID, 16)
		if id.ClusterID != live {
			return nil, m.moveAside(fmt.Sprintf("data belongs to cluster %s but the live cluster of this deployment is %s", id.ClusterID, live), "other-cluster")
		}
		list, err := memberList(ctx, c, eps)
		if err != nil {
			return nil, fmt.Errorf("reading the live member list to check this member's data: %w", err)
		}
		var mine *memberInfo
		for _, mm := range list.Members {
			if strconv.FormatUint(mm.ID, 16) == id.MemberID {
				mine = &memberInfo{id: mm.ID, peerURLs: mm.PeerURLs}
			}
		}
		if mine == nil {
			return nil, m.moveAside(fmt.Sprintf("data belongs to member %s, which is no longer in the live cluster %s (it was removed)", id.MemberID, live), "removed-member")
		}
		if len(mine.peerURLs) != 1 || mine.peerURLs[0] != self.PeerURL {
			if err := m.updatePeerURL(ctx, eps, mine.id, self.PeerURL); err != nil {
				return nil, err
			}
		}
	}
	reason := "the data dir holds this member's data; keeping it and the member identity"
	if len(eps) == 0 {
		reason += " (no peer answered, so the cluster is starting up or unreachable; etcd waits for a quorum)"
	}
	m.Log.Info("decided to restart with existing data", zap.String("reason", reason), zap.String("peers", summarize(statuses)))
	return &Start{Kind: KindRestart, Reason: reason, Plan: etcdserver.Plan{State: etcdserver.StateExisting, InitialCluster: []config.Member{self}}}, nil
}

type memberInfo struct {
	id       uint64
	peerURLs []string
}

func (m *Manager) moveAside(reason, slug string) error {
	dest, err := MoveAside(m.Config.Paths.DataDir, slug, m.Now())
	if err != nil {
		return err
	}
	m.Log.Warn("moved data dir aside and will rejoin as a new member", zap.String("reason", reason), zap.String("kept-at", dest))
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

func (m *Manager) prepareWithoutData(ctx context.Context, others []config.Member) (*Start, error) {
	c := m.Config
	self := c.Self()
	lastLog := time.Time{}
	for {
		statuses := Probe(ctx, c, others, m.ProbeTimeout)
		eps, _, err := healthy(statuses)
		if err != nil {
			return nil, err
		}
		if len(eps) > 0 {
			return m.join(ctx, eps)
		}
		allRefused := true
		for _, s := range statuses {
			if s.Answer != Refused && s.Answer != Unregistered {
				allRefused = false
			}
		}
		if c.Instance.Bootstrap && allRefused {
			reason := "this is the bootstrap instance, its data dir is empty, and every peer refused connections (or, with consul, is not registered: its name does not exist), so no cluster exists"
			if len(others) == 0 {
				reason = "this is the only instance and its data dir is empty"
			}
			m.Log.Info("decided to create a new cluster", zap.String("reason", reason), zap.String("peers", summarize(statuses)), zap.String("token", c.ClusterToken()))
			return &Start{Kind: KindBootstrap, Reason: reason, Plan: etcdserver.Plan{State: etcdserver.StateNew, InitialCluster: []config.Member{self}}}, nil
		}
		if time.Since(lastLog) > 15*time.Second {
			why := "this is not the bootstrap instance; it only joins an existing cluster, which the bootstrap instance creates"
			if c.Instance.Bootstrap {
				why = "some peers gave no answer (a timeout is not an answer), so a cluster may exist there"
			}
			m.Log.Info("waiting for a cluster to join", zap.String("reason", why), zap.String("peers", summarize(statuses)))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a cluster to join (peers: %s): %w", summarize(statuses), ctx.Err())
		case <-time.After(m.RetryInterval):
		}
	}
}

// join takes the membership lock, removes stale entries of this member and adds it as a learner.
func (m *Manager) join(ctx context.Context, eps []string) (st *Start, err error) {
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
			_ = mu.Unlock(context.Background())
			session.Close()
			cli.Close()
		}
	}()
	m.Log.Info("taking the membership lock", zap.String("reason", "one membership change at a time"), zap.Strings("endpoints", eps))
	if err := mu.Lock(ctx); err != nil {
		return nil, fmt.Errorf("taking the membership lock: %w", err)
	}
	for {
		resp, err := m.addLearner(ctx, cli, self)
		if err == nil {
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
			reason := "the data dir is empty and a healthy cluster answered; joining as a learner, to be promoted once caught up"
			m.Log.Info("decided to join the existing cluster", zap.String("reason", reason), zap.String("learner-id", strconv.FormatUint(resp.Member.ID, 16)))
			return &Start{Kind: KindJoin, Reason: reason, Plan: etcdserver.Plan{State: etcdserver.StateExisting, InitialCluster: initial},
				cli: cli, session: session, mutex: mu, learnerID: resp.Member.ID}, nil
		}
		m.Log.Warn("adding this member as a learner failed; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("adding this member as a learner: %w", err)
		case <-time.After(m.RetryInterval):
		}
	}
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
		if err := m.promote(ctx, st, uint64(e.MemberID())); err != nil {
			return err
		}
	}
	st.release()
	id := Identity{ClusterID: e.Cluster().ID().String(), MemberID: e.MemberID().String(), Name: m.Config.SelfName(), PeerURL: m.Config.Self().PeerURL}
	return WriteIdentity(m.Config.Paths.DataDir, id)
}

func (st *Start) release() {
	if st.mutex != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = st.mutex.Unlock(ctx)
		cancel()
		st.mutex = nil
	}
	if st.session != nil {
		st.session.Close()
		st.session = nil
	}
	if st.cli != nil {
		st.cli.Close()
		st.cli = nil
	}
}

func (m *Manager) promote(ctx context.Context, st *Start, id uint64) error {
	cli := st.cli
	if cli == nil {
		desired, err := m.Peers.Members(ctx)
		if err != nil {
			return err
		}
		if cli, err = etcdclient.New(m.Config, peers.ClientURLs(desired), 5*time.Second); err != nil {
			return err
		}
		defer cli.Close()
	}
	deadline := time.Now().Add(m.PromoteTimeout)
	backoff := 200 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := cli.MemberPromote(pctx, id)
		cancel()
		if err == nil {
			m.Log.Info("promoted this member to a voting member", zap.String("reason", "the learner caught up with the leader"), zap.String("member-id", strconv.FormatUint(id, 16)))
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("promoting learner %x: it did not catch up within %s: %w", id, m.PromoteTimeout, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

// Abort undoes a join whose learner never became a voting member: it removes the learner and moves its data
// aside, so that the next start joins afresh.
func (m *Manager) Abort(st *Start) error {
	defer st.release()
	if st.Kind != KindJoin || st.cli == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if _, err := st.cli.MemberRemove(ctx, st.learnerID); err != nil {
		errs = append(errs, fmt.Errorf("removing learner %x: %w", st.learnerID, err))
	} else {
		m.Log.Warn("removed this learner from the cluster", zap.String("reason", "the join did not complete"))
	}
	if has, _ := HasData(m.Config.Paths.DataDir); has {
		if err := m.moveAside("the data dir belongs to a learner that was rolled back", "rolled-back-learner"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
