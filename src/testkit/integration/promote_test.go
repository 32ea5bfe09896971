package integration

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2/hpack"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/testkit/localcluster"
)

// promoteReplyDropper is a TCP proxy in front of an etcd client port (cleartext gRPC over HTTP/2) that forwards
// everything, except that it cuts the connection instead of delivering the first successful reply to a
// MemberPromote call. etcd has then applied the promote; the caller only sees a broken connection.
type promoteReplyDropper struct {
	ln       net.Listener
	target   string
	promotes atomic.Int32 // MemberPromote requests seen
	dropped  atomic.Int32 // replies dropped (at most 1)
	// refuse, while set, cuts the connection instead of forwarding any MemberPromote request (so no promote
	// reaches the cluster) and no reply is dropped.
	refuse atomic.Bool
}

func newPromoteReplyDropper(t *testing.T, listen, target string) *promoteReplyDropper {
	ln, err := net.Listen("tcp", listen)
	require.NoError(t, err)
	p := &promoteReplyDropper{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.handle(c)
		}
	}()
	return p
}

// readFrame reads one HTTP/2 frame: its 9-byte header and its payload.
func readFrame(r *bufio.Reader) (hdr, payload []byte, err error) {
	hdr = make([]byte, 9)
	if _, err = io.ReadFull(r, hdr); err != nil {
		return nil, nil, err
	}
	payload = make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
	_, err = io.ReadFull(r, payload)
	return hdr, payload, err
}

func frameStream(hdr []byte) uint32 { return binary.BigEndian.Uint32(hdr[5:9]) & 0x7fffffff }

func (p *promoteReplyDropper) handle(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	var once sync.Once
	closeBoth := func() { once.Do(func() { client.Close(); server.Close() }) }
	var mu sync.Mutex
	promoteStreams := map[uint32]bool{}
	go func() {
		defer closeBoth()
		p.forwardRequests(client, server, func(sid uint32) {
			mu.Lock()
			promoteStreams[sid] = true
			mu.Unlock()
		})
	}()
	defer closeBoth()
	br := bufio.NewReader(server)
	for {
		hdr, payload, err := readFrame(br)
		if err != nil {
			return
		}
		mu.Lock()
		isPromote := promoteStreams[frameStream(hdr)]
		mu.Unlock()
		// A reply message (DATA) means the promote succeeded; an error is a trailers-only reply without DATA.
		if hdr[3] == 0x0 && len(payload) > 0 && isPromote && !p.refuse.Load() && p.dropped.CompareAndSwap(0, 1) {
			return
		}
		if _, err := client.Write(append(hdr, payload...)); err != nil {
			return
		}
	}
}

// proxiedJoiner rewrites member `joiner`'s config (of a 3-member layout whose members 0 and 2 run) so that it
// reaches the cluster's client ports only through a promoteReplyDropper in front of member 0: its desired
// member list names the proxy's address for member 0 and an address where nothing listens for member 2 (which
// then answers "refused" to the joiner's probe). Peer traffic uses the live member list's URLs, unproxied.
func (c *cluster) proxiedJoiner(t *testing.T, joiner int, tweak func(*config.Properties)) *promoteReplyDropper {
	pip := net.ParseIP(c.layout.Address(0)).To4()
	pip[3] = 250
	proxyIP := pip.String()
	cfg, err := c.layout.Config(joiner, 3)
	require.NoError(t, err)
	port := strconv.Itoa(cfg.Etcd.ClientPort)
	dropper := newPromoteReplyDropper(t, net.JoinHostPort(proxyIP, port), net.JoinHostPort(c.layout.Address(0), port))
	cfg.Link.Instances[0].Address = proxyIP
	pip[3] = 251
	cfg.Link.Instances[2].Address = pip.String()
	tweak(&cfg.Etcd)
	b, err := localcluster.MarshalConfig(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(c.layout.ConfigPath(joiner), b, 0o600))
	return dropper
}

// TestLostPromoteReplyStillEndsAsVoter joins a member whose client traffic to the cluster passes through a
// proxy that swallows the reply of the promote that took effect. The joiner must notice that it already votes
// (etcd answers "can only promote a learner member") and complete the join instead of rolling back and
// removing a voting member. A writer runs throughout; every acknowledged write is read back.
func TestLostPromoteReplyStillEndsAsVoter(t *testing.T) {
	// Three desired members, so that the joiner's later restart keeps a quorum. Members 0 and 2 form the
	// cluster; member 1 joins last.
	c := newCluster(t, 3, withTLS(false, false))
	c.start(0)
	c.waitReady(0, time.Minute)
	c.start(2)
	c.waitReady(2, 2*time.Minute)
	w := c.writer("/promote")

	// Member 1 reaches the cluster's client ports only through the proxy.
	// Short enough that the old behaviour (retry until the timeout, then roll back) fails the test quickly.
	dropper := c.proxiedJoiner(t, 1, func(p *config.Properties) { p.StartTimeoutInSeconds = 40 })

	c.start(1)
	c.waitReady(1, 2*time.Minute)
	require.EqualValues(t, 1, dropper.dropped.Load(), "the proxy swallowed the successful promote's reply")
	// Ready (a healthy voter) can come before the joiner's next promote attempt, which waits out a backoff
	// after the broken connection: wait for the joiner to finish its start.
	require.Eventually(t, func() bool { return c.logContains(1, "this member is already a voting member") }, time.Minute, 200*time.Millisecond,
		"the joiner completes the join as a voter")
	require.GreaterOrEqual(t, dropper.promotes.Load(), int32(2), "the joiner promoted again after the lost reply")
	logs, err := os.ReadFile(c.layout.LogPath(1))
	require.NoError(t, err)
	require.NotContains(t, string(logs), "rolling back the join")

	res := w.Stop()
	c.requireHealthy(3)
	c.requireNoLoss("/promote", res)
	ids := c.memberIDs(0)
	c.stop(1)
	c.start(1)
	c.waitReady(1, time.Minute)
	require.Equal(t, ids, c.memberIDs(0), "the member restarts as the same voter")
}

// forwardRequests copies client→server frame by frame, decoding request headers (HPACK is stateful, so every
// header block is decoded in order) to spot MemberPromote calls; it returns when either side fails.
func (p *promoteReplyDropper) forwardRequests(client, server net.Conn, promote func(stream uint32)) {
	br := bufio.NewReader(client)
	preface := make([]byte, 24) // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	if _, err := io.ReadFull(br, preface); err != nil {
		return
	}
	if _, err := server.Write(preface); err != nil {
		return
	}
	dec := hpack.NewDecoder(4096, nil)
	var block []byte
	for {
		hdr, payload, err := readFrame(br)
		if err != nil {
			return
		}
		typ, flags, sid := hdr[3], hdr[4], frameStream(hdr)
		switch typ {
		case 0x1: // HEADERS: strip padding and priority, then collect the header block
			frag := payload
			if flags&0x8 != 0 {
				frag = frag[1 : len(frag)-int(frag[0])]
			}
			if flags&0x20 != 0 {
				frag = frag[5:]
			}
			block = append(block[:0], frag...)
		case 0x9: // CONTINUATION
			block = append(block, payload...)
		}
		if (typ == 0x1 || typ == 0x9) && flags&0x4 != 0 { // END_HEADERS
			fields, err := dec.DecodeFull(block)
			if err != nil {
				return
			}
			for _, f := range fields {
				if f.Name == ":path" && strings.HasSuffix(f.Value, "/MemberPromote") {
					p.promotes.Add(1)
					if p.refuse.Load() {
						return
					}
					promote(sid)
				}
			}
		}
		if _, err := server.Write(append(hdr, payload...)); err != nil {
			return
		}
	}
}

// TestRepeatedLearnerRollbacksKeepAtMostMaxMovedAside lets a joiner's learner start but never be promoted (the
// proxy cuts every MemberPromote request), so each start ends in a rollback that removes the learner and moves
// its data aside. With etcd.max_moved_aside 2, four rollbacks leave exactly the two newest copies, each
// deletion logged, and `etcd_ctl status` lists them with their size. Once promotes pass again, the member
// joins. A writer runs throughout; every acknowledged write is read back.
func TestRepeatedLearnerRollbacksKeepAtMostMaxMovedAside(t *testing.T) {
	c := newCluster(t, 3, withTLS(false, false))
	c.start(0)
	c.waitReady(0, time.Minute)
	c.start(2)
	c.waitReady(2, 2*time.Minute)
	w := c.writer("/rollbacks")
	dropper := c.proxiedJoiner(t, 1, func(p *config.Properties) { p.StartTimeoutInSeconds = 6; p.MaxMovedAside = 2 })
	dropper.refuse.Store(true)
	dataDir := c.config(1).Paths.DataDir

	var seen []string
	for round := 1; round <= 4; round++ {
		c.start(1)
		p := c.procs[1]
		select {
		case <-p.Done():
		case <-time.After(2 * time.Minute):
			t.Fatalf("round %d: the join was not rolled back", round)
		}
		require.Error(t, p.ExitErr(), "round %d: a rolled-back join exits non-zero so that monit retries", round)
		delete(c.procs, 1)
		copies, err := filepath.Glob(dataDir + ".moved-aside.*")
		require.NoError(t, err)
		require.Len(t, copies, min(round, 2), "round %d: %v", round, copies)
		seen = append(seen, copies[len(copies)-1])
		require.Len(t, c.status(0).Members, 2, "round %d: the learner was removed", round)
	}
	copies, _ := filepath.Glob(dataDir + ".moved-aside.*")
	require.ElementsMatch(t, seen[2:], copies, "the two newest copies are kept")
	logs, err := os.ReadFile(c.layout.LogPath(1))
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(logs), "deleted an old moved-aside copy of the data dir"))
	require.Contains(t, string(logs), "the learner never became a voting member")

	dropper.refuse.Store(false)
	// The last join must not trip over the short timeout the rollback rounds use (the machine may be busy).
	cfg := c.config(1)
	cfg.Etcd.StartTimeoutInSeconds = 120
	b, err := localcluster.MarshalConfig(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(c.layout.ConfigPath(1), b, 0o600))
	c.start(1)
	c.waitReady(1, 2*time.Minute)
	r := c.status(1)
	require.Len(t, r.MovedAside, 2, "status lists the copies")
	for _, m := range r.MovedAside {
		require.Positive(t, m.Bytes, "with their size: %+v", m)
		require.Equal(t, "rolled-back-learner", m.Reason)
	}
	res := w.Stop()
	c.requireHealthy(3)
	c.requireNoLoss("/rollbacks", res)
}
